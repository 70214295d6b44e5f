// The skew exp map exp(S) of trit_rnn/parametrizations/skew_exp.py, forward and backward, each as
// one op: the same equations as its PyTorch path (see that module's docstring), written with
// U = V^T S so that the forward takes three GEMMs and the backward six, and with the element-wise
// steps as plain loops over [n, n] instead of a dozen PyTorch ops each (about 5 us of dispatch
// apiece on a 2-core VM, against a 128^3 GEMM's 24 us). The divided differences take about fifty
// element-wise ops in PyTorch (0.8 ms at n = 128) and one pass here.
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/linalg_eigh.h>
#include <ATen/ops/mm.h>

#include <cmath>
#include <tuple>
#include <vector>

namespace {

using at::Tensor;

inline double sinc(double x, double tiny_angle) {
  return std::abs(x) < tiny_angle ? 1 - x * x / 6 : std::sin(x) / x;
}

// The skew matrix S [n, n] of source: source itself, or A - A^T with A = triu(source, 1).
template <typename T>
Tensor skew_of(const Tensor& source, bool from_triangle) {
  if (!from_triangle) return source;
  const int64_t n = source.size(0);
  Tensor skew = at::empty({n, n}, source.options());  // [n, n]
  const T* a = source.data_ptr<T>();
  T* s = skew.data_ptr<T>();
  for (int64_t j = 0; j < n; ++j) {
    s[j * n + j] = T(0);
    for (int64_t k = j + 1; k < n; ++k) {
      s[j * n + k] = a[j * n + k];
      s[k * n + j] = -a[j * n + k];
    }
  }
  return skew;
}

// W = V (diag(cos theta) V^T + diag(sinc theta) U), U = V^T S, then optionally one polish step
// W (3I - W^T W) / 2. Returns {W, theta, V, U}: what the backward needs (S itself is not).
template <typename T>
std::vector<Tensor> forward_impl(const Tensor& source, bool from_triangle, bool polish, double tiny_angle) {
  const int64_t n = source.size(0);
  const Tensor skew = skew_of<T>(source, from_triangle);  // [n, n]
  auto [lam, vectors] = at::linalg_eigh(at::mm(skew.t(), skew), "L");  // [n], [n, n]
  Tensor v = vectors.contiguous();                                      // LAPACK's are column-major
  Tensor theta = lam.clamp_min(0).sqrt();                               // [n]
  Tensor u = at::mm(v.t(), skew);                                  // [n, n]
  Tensor c = at::empty({n, n}, source.options());                  // [n, n]
  const T *th = theta.data_ptr<T>(), *vp = v.data_ptr<T>(), *up = u.data_ptr<T>();
  T* cp = c.data_ptr<T>();
  for (int64_t j = 0; j < n; ++j) {
    const T cos_j = T(std::cos(double(th[j]))), sinc_j = T(sinc(th[j], tiny_angle));
    for (int64_t k = 0; k < n; ++k) cp[j * n + k] = cos_j * vp[k * n + j] + sinc_j * up[j * n + k];
  }
  Tensor w = at::mm(v, c);  // [n, n]
  if (polish) w = at::addmm(w, w, at::mm(w.t(), w), 1.5, -0.5);
  return {w, theta, v, u};
}

// The per-angle terms of the divided differences: half-angle sines and cosines, sinc, lam.
struct Angles {
  std::vector<double> theta, sin_h, cos_h, sinc_theta, lam;  // [n] each
  double tiny_angle, tiny_pair;

  template <typename T>
  Angles(const T* th, int64_t n, double tiny_angle_, double tiny_pair_)
      : theta(th, th + n), sin_h(n), cos_h(n), sinc_theta(n), lam(n), tiny_angle(tiny_angle_), tiny_pair(tiny_pair_) {
    for (int64_t j = 0; j < n; ++j) {
      sin_h[j] = std::sin(theta[j] / 2);
      cos_h[j] = std::cos(theta[j] / 2);
      sinc_theta[j] = sinc(theta[j], tiny_angle);
      lam[j] = theta[j] * theta[j];
    }
  }

  // (f[lam_j, lam_k], g[lam_j, lam_k]) for f = cos(sqrt l), g = sinc(sqrt l): the formulas and
  // branches of skew_exp.py's divided_differences. Both are symmetric in (j, k).
  std::pair<double, double> at(int64_t j, int64_t k) const {
    const double* th = theta.data();
    // a = (theta_j + theta_k) / 2, b = (theta_j - theta_k) / 2 by angle addition of the halves
    const double a = (th[j] + th[k]) / 2, b = (th[j] - th[k]) / 2;
    const double sin_a = sin_h[j] * cos_h[k] + sin_h[k] * cos_h[j];
    const double sin_b = sin_h[j] * cos_h[k] - sin_h[k] * cos_h[j];
    const double cos_a = cos_h[j] * cos_h[k] - sin_h[j] * sin_h[k];
    const double cos_b = cos_h[j] * cos_h[k] + sin_h[j] * sin_h[k];
    const double sinc_a = a < tiny_angle ? 1 - a * a / 6 : sin_a / a;
    const double sinc_b = std::abs(b) < tiny_angle ? 1 - b * b / 6 : sin_b / b;
    double g;
    if (a + std::abs(b) < tiny_pair) {
      const double lj = lam[j], lk = lam[k];
      g = -1.0 / 6 + (lj + lk) / 120 - (lj * lj + lj * lk + lk * lk) / 5040;
    } else if (a >= 3 * std::abs(b)) {
      g = (cos_a * sinc_b - sinc_a * cos_b) / (2 * th[j] * th[k]);
    } else {
      g = (sinc_theta[j] - sinc_theta[k]) / (lam[j] - lam[k]);
    }
    return {-0.5 * sinc_a * sinc_b, g};
  }
};

}  // namespace

// (f[lam_j, lam_k], g[lam_j, lam_k]) [n, n] float64 at lam = theta^2 (Angles::at), for the tests.
std::vector<Tensor> skew_exp_divided_differences(const Tensor& theta, double tiny_angle, double tiny_pair) {
  TORCH_CHECK(theta.scalar_type() == at::kDouble && theta.dim() == 1 && theta.is_contiguous(),
              "skew_exp_divided_differences: theta must be a contiguous float64 [n]");
  const int64_t n = theta.size(0);
  const Angles angles(theta.data_ptr<double>(), n, tiny_angle, tiny_pair);
  Tensor dd_cos = at::empty({n, n}, theta.options());   // [n, n]
  Tensor dd_sinc = at::empty({n, n}, theta.options());  // [n, n]
  double* fc = dd_cos.data_ptr<double>();
  double* fs = dd_sinc.data_ptr<double>();
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t k = 0; k < n; ++k) std::tie(fc[j * n + k], fs[j * n + k]) = angles.at(j, k);
  }
  return {dd_cos, dd_sinc};
}

std::vector<Tensor> skew_exp_forward(const Tensor& source, bool from_triangle, bool polish, double tiny_angle) {
  TORCH_CHECK(source.dim() == 2 && source.size(0) == source.size(1) && source.is_contiguous(),
              "skew_exp_forward: source must be a contiguous square matrix");
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(source.scalar_type(), "skew_exp_forward", [&] {
    out = forward_impl<scalar_t>(source, from_triangle, polish, tiny_angle);
  });
  return out;
}

// dL/dS from G = dL/dW, with the inner matrix X = F_f o (V^T G V) + F_g o (V^T G U^T) of the
// Daleckii-Krein formula: dL/dS = -U^T (X + X^T) V^T + V (sinc(theta) o V^T G), using S V = -U^T.
// Returned as the skew part (grad - grad^T) / 2, or through A = triu(source, 1) as
// triu(grad - grad^T, 1).
template <typename T>
Tensor backward_impl(const Tensor& grad_w, const Tensor& theta, const Tensor& v, const Tensor& u, bool from_triangle,
                     double tiny_angle, double tiny_pair) {
  const int64_t n = v.size(0);
  const T* th = theta.data_ptr<T>();
  const Angles angles(th, n, tiny_angle, tiny_pair);
  Tensor g_v = at::mm(v.t(), grad_w);                                               // [n, n]
  Tensor along_cos = at::mm(g_v, v);                                                // [n, n]
  Tensor along_sinc = at::mm(g_v, u.t());                                           // [n, n]
  Tensor y = at::empty({n, n}, v.options());                                        // [n, n] X + X^T
  Tensor scaled = at::empty({n, n}, v.options());                                   // [n, n] sinc o V^T G
  const T *ac = along_cos.data_ptr<T>(), *as = along_sinc.data_ptr<T>(), *gv = g_v.data_ptr<T>();
  T *yp = y.data_ptr<T>(), *sp = scaled.data_ptr<T>();
  for (int64_t j = 0; j < n; ++j) {
    const T sinc_j = T(angles.sinc_theta[j]);
    for (int64_t k = 0; k < n; ++k) sp[j * n + k] = sinc_j * gv[j * n + k];
    for (int64_t k = j; k < n; ++k) {  // F symmetric: X_jk + X_kj = F_jk (A_jk + A_kj) + ...
      const int64_t jk = j * n + k, kj = k * n + j;
      const auto [fc, fs] = angles.at(j, k);
      const T sum = T(fc) * (ac[jk] + ac[kj]) + T(fs) * (as[jk] + as[kj]);
      yp[jk] = sum;
      yp[kj] = sum;
    }
  }
  Tensor grad = at::addmm(at::mm(v, scaled), at::mm(u.t(), y), v.t(), 1, -1);  // [n, n]
  Tensor out = at::empty({n, n}, v.options());                                 // [n, n]
  const T* gp = grad.data_ptr<T>();
  T* op = out.data_ptr<T>();
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t k = 0; k < n; ++k) {
      const T d = gp[j * n + k] - gp[k * n + j];
      op[j * n + k] = from_triangle ? (k > j ? d : T(0)) : d / 2;
    }
  }
  return out;
}

Tensor skew_exp_backward(const Tensor& grad_w, const Tensor& theta, const Tensor& v, const Tensor& u,
                         bool from_triangle, double tiny_angle, double tiny_pair) {
  TORCH_CHECK(grad_w.is_contiguous() && theta.is_contiguous() && v.is_contiguous() && u.is_contiguous(),
              "skew_exp_backward: every operand must be contiguous");
  Tensor out;
  AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "skew_exp_backward", [&] {
    out = backward_impl<scalar_t>(grad_w, theta, v, u, from_triangle, tiny_angle, tiny_pair);
  });
  return out;
}
