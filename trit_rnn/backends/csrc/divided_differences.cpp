// The divided differences of the skew exp map's backward in one pass over [n, n]: the formulas and
// branches of trit_rnn/parametrizations/skew_exp.py's divided_differences (float64), where they
// take about fifty elementwise PyTorch ops (0.8 ms of a 3 ms training step at n = 128).
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <cmath>
#include <vector>

std::vector<at::Tensor> skew_exp_divided_differences(const at::Tensor& theta, double tiny_angle, double tiny_pair) {
  TORCH_CHECK(theta.scalar_type() == at::kDouble && theta.dim() == 1 && theta.is_contiguous(),
              "skew_exp_divided_differences: theta must be a contiguous float64 [n]");
  const int64_t n = theta.size(0);
  const double* th = theta.data_ptr<double>();
  std::vector<double> sin_h(n), cos_h(n), sinc_theta(n), lam(n);  // [n] each
  for (int64_t j = 0; j < n; ++j) {
    sin_h[j] = std::sin(th[j] / 2);
    cos_h[j] = std::cos(th[j] / 2);
    sinc_theta[j] = std::abs(th[j]) < tiny_angle ? 1 - th[j] * th[j] / 6 : std::sin(th[j]) / th[j];
    lam[j] = th[j] * th[j];
  }
  at::Tensor dd_cos = at::empty({n, n}, theta.options());   // [n, n]
  at::Tensor dd_sinc = at::empty({n, n}, theta.options());  // [n, n]
  double* fc = dd_cos.data_ptr<double>();
  double* fs = dd_sinc.data_ptr<double>();
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t k = 0; k < n; ++k) {
      // a = (theta_j + theta_k) / 2, b = (theta_j - theta_k) / 2 by angle addition of the halves
      const double a = (th[j] + th[k]) / 2, b = (th[j] - th[k]) / 2;
      const double sin_a = sin_h[j] * cos_h[k] + sin_h[k] * cos_h[j];
      const double sin_b = sin_h[j] * cos_h[k] - sin_h[k] * cos_h[j];
      const double cos_a = cos_h[j] * cos_h[k] - sin_h[j] * sin_h[k];
      const double cos_b = cos_h[j] * cos_h[k] + sin_h[j] * sin_h[k];
      const double sinc_a = a < tiny_angle ? 1 - a * a / 6 : sin_a / a;
      const double sinc_b = std::abs(b) < tiny_angle ? 1 - b * b / 6 : sin_b / b;
      fc[j * n + k] = -0.5 * sinc_a * sinc_b;
      double g;
      if (a + std::abs(b) < tiny_pair) {
        const double lj = lam[j], lk = lam[k];
        g = -1.0 / 6 + (lj + lk) / 120 - (lj * lj + lj * lk + lk * lk) / 5040;
      } else if (a >= 3 * std::abs(b)) {
        g = (cos_a * sinc_b - sinc_a * cos_b) / (2 * th[j] * th[k]);
      } else {
        g = (sinc_theta[j] - sinc_theta[k]) / (lam[j] - lam[k]);
      }
      fs[j * n + k] = g;
    }
  }
  return {dd_cos, dd_sinc};
}
