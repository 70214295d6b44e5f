// The CPU time loops of the torch backend's dense real, gated (LSTM, GRU/GORU) and complex
// modReLU recurrences, compiled on first use by trit_rnn/backends/compiled_loops.py (with skew_exp.cpp,
// the skew exp map's forward and backward, and workspace.cpp in the same module).
//
// Why: a Python loop pays every PyTorch op's dispatch (4-9 us each on a 2-core VM) once per step,
// and a gated step is a dozen small ops. Here each step is one GEMM (torch's own BLAS) and one
// fused, vectorised pass over the [B, G*H] row, split over torch's threads. The equations and
// tensor contracts are those of backends/torch_gated.py and backends/torch_complex.py; the Python
// wrappers pass contiguous tensors in the compute dtype and check nothing here can see.
// Per-operator ATen headers, not torch/extension.h: the build takes ~10 s instead of ~50.
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <ATen/core/Tensor.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/ops/add.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/view_as_real.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "step_gemm.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <set>

// workspace.cpp: reused buffers for the [T, ...] tensors
at::Tensor workspace_empty(at::IntArrayRef sizes, const at::TensorOptions& options);

namespace {

using at::Tensor;
using at::vec::Vectorized;

enum Candidate : int64_t { TANH = 0, RELU = 1, IDENTITY = 2, MODRELU = 3 };

// exp(x) for the gates: ATen's exp_u20 for float (a polynomial, 9.4 against 13.7 us for 20480
// sigmoids with Sleef's exp on AVX-512, at 2e-7 relative error in the sigmoid; Sleef's exp for
// double). exp_u20 clamps its argument, which would turn a NaN into a finite number: NaN is passed
// through so that a diverging run still shows NaN.
template <typename T>
inline Vectorized<T> gate_exp(const Vectorized<T>& x) {
  return Vectorized<T>::blendv(x.exp_u20(), x, x.isnan());
}

template <typename T>
inline Vectorized<T> sigmoid(const Vectorized<T>& x) {
  const Vectorized<T> one(T(1));
  return one / (one + gate_exp(x.neg()));
}

// tanh(x) = 2 sigmoid(2x) - 1: 3.0 against 9.6 us for 4096 floats with Sleef's tanh (AVX-512),
// at an absolute error of a few ulp of 1 (the Python loops use the same form).
template <typename T>
inline Vectorized<T> fast_tanh(const Vectorized<T>& x) {
  const Vectorized<T> one(T(1)), two(T(2));
  return two / (one + gate_exp((x * two).neg())) - one;
}

// f(a) of the GRU candidate; act_bias only for modReLU: sign(a) relu(|a| + b).
template <typename T>
inline Vectorized<T> candidate(const Vectorized<T>& a, const Vectorized<T>& b, int64_t kind) {
  const Vectorized<T> zero(T(0));
  switch (kind) {
    case TANH:
      return fast_tanh(a);
    case RELU:
      return at::vec::maximum(a, zero);
    case IDENTITY:
      return a;
    default: {
      const Vectorized<T> m = at::vec::maximum(a.abs() + b, zero);
      return Vectorized<T>::blendv(Vectorized<T>::blendv(zero, m.neg(), a < zero), m, a > zero);
    }
  }
}

// f'(a) written from n = f(a): 1 - n^2 (tanh), [n != 0] (relu, modReLU), 1 (identity).
template <typename T>
inline Vectorized<T> candidate_derivative(const Vectorized<T>& n, int64_t kind) {
  const Vectorized<T> one(T(1)), zero(T(0));
  if (kind == TANH) return one - n * n;
  if (kind == IDENTITY) return one;
  return Vectorized<T>::blendv(one, zero, n == zero);
}

// Calls body(j, count) over 0..H in vector-width pieces (the last may be partial).
template <typename T, typename Body>
inline void for_lanes(int64_t H, const Body& body) {
  constexpr int64_t V = Vectorized<T>::size();
  for (int64_t j = 0; j < H; j += V) body(j, std::min<int64_t>(V, H - j));
}

// The loops index raw pointers: a strided tensor would be read wrongly, so it is refused.
inline void check_contiguous(std::initializer_list<std::pair<const char*, const Tensor*>> tensors) {
  for (const auto& [name, tensor] : tensors) {
    TORCH_CHECK(tensor->is_contiguous() && !tensor->is_conj(), "time_loops: ", name, " must be contiguous");
  }
}

template <typename T>
inline Vectorized<T> load(const T* p, int64_t n) {
  return Vectorized<T>::loadu(p, n);
}

// v + bias[offset..] where a bias is given (bias null: none), as the gated passes add theirs.
template <typename T>
inline Vectorized<T> plus_bias(const Vectorized<T>& v, const T* bias, int64_t offset, int64_t n) {
  return bias ? v + load(bias + offset, n) : v;
}

// body(b0, rows) for contiguous blocks of batch rows, one block per intra-op thread. The rows of
// a batch are independent sequences, so each thread walks the whole time loop for its own rows,
// one single-threaded GEMM of [rows, K] per step (StepGemm: MKL, single-threaded inside the region,
// or the packed kernel of step_gemm.cpp), and
// the threads never wait for each other between steps. On a 2-core Xeon VM at B = 32: [16, 128] x
// [128, 512] on one thread takes 19 us where [32, 128] x [128, 512] on two takes 20 us plus a
// parallel region per step, and [16, 512] x [512, 128] 14 us against 28.
template <typename Body>
inline void for_row_blocks(int64_t B, const Body& body) {
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), B));
  const int64_t per_block = (B + blocks - 1) / blocks;
  // The workers' ops dispatch as the caller's do (below autograd, grad mode), not with fresh
  // thread-local state, in which a weight that requires grad would make mm_out refuse.
  const at::ThreadLocalState caller_state;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    at::ThreadLocalStateGuard guard(caller_state);
    for (int64_t k = begin; k < end; ++k) {
      const int64_t b0 = k * per_block, rows = std::min(per_block, B - b0);
      if (rows > 0) body(b0, rows);
    }
  });
}

// Row b0 of step t of x [T, B, width] (contiguous): where a row block's pass reads and writes.
template <typename T>
inline T* step_row(const Tensor& x, int64_t t, int64_t b0) {
  return x.data_ptr<T>() + (t * x.size(1) + b0) * x.size(2);
}

// The [rows, width] views of rows b0.. of each step of x [T, B, width], what a row block's GEMMs
// read, one at a time through one tensor whose storage offset moves. Unbinding x into T views
// up front cost about 2 us a view (20 ms per row block and pass at T = 10,000; the dense forward
// at T = 10,000 took 141.5 ms with them and 123.3 ms without). view(t) returns that one tensor,
// so a view is valid only until the next call. With T = 0 there is no view to give.
class StepRowsView {
 public:
  StepRowsView(const Tensor& x, int64_t b0, int64_t rows)
      : view_(x.size(0) > 0 ? x.narrow(1, b0, rows).select(0, 0) : Tensor()),
        first_(view_.defined() ? view_.storage_offset() : 0),
        stride_(x.stride(0)),
        steps_(x.size(0)) {}
  const Tensor& view(int64_t t) {
    view_.unsafeGetTensorImpl()->set_storage_offset(first_ + t * stride_);
    return view_;
  }
  int64_t size() const { return steps_; }

 private:
  Tensor view_;  // [rows, width]
  int64_t first_, stride_, steps_;
};

// A gradient summed over every step and row of a backward pass, deterministically: each step's
// rows in T (`step`, which the pass accumulates into), then across steps in double (end_step),
// then the row blocks in order (add, write).
template <typename T>
class OrderedSum {
 public:
  explicit OrderedSum(int64_t width) : width_(width) {}

  struct Block {
    std::vector<T> step;                // [width] this step's rows
    std::vector<double> total;          // [width] every step so far
    void end_step() {
      for (size_t k = 0; k < total.size(); ++k) total[k] += double(step[k]);
    }
  };

  Block block() const { return {std::vector<T>(width_), std::vector<double>(width_)}; }

  void add(int64_t b0, Block&& block) {
    std::lock_guard<std::mutex> lock(mutex_);
    parts_.emplace_back(b0, std::move(block.total));
  }

  void write(T* out) {
    std::sort(parts_.begin(), parts_.end());
    std::vector<double> sum(width_, 0.0);
    for (const auto& [b0, part] : parts_) {
      for (int64_t k = 0; k < width_; ++k) sum[k] += part[k];
    }
    for (int64_t k = 0; k < width_; ++k) out[k] = T(sum[k]);
  }

 private:
  int64_t width_;
  std::mutex mutex_;
  std::vector<std::pair<int64_t, std::vector<double>>> parts_;  // (b0, [width]) per row block
};

// One row block's forward time loop: per step q = h_{t-1} @ weight_t [rows, N] (gemm) into one reused
// buffer (pre_t is added in the pass: addmm_out would copy it first), then pass(t, q, h_prev)
// with q [rows, N] and h_{t-1} [rows, H]; the pass writes h_t into outputs, the next GEMM's input.
template <typename T, typename Pass>
inline void forward_rows(const StepGemm& gemm, int64_t N, const Tensor& h0, const Tensor& outputs,
                         int64_t b0, int64_t rows, const Pass& pass) {
  Tensor q = at::empty({rows, N}, outputs.options());  // [rows, N]
  StepRowsView states(outputs, b0, rows);         // T x [rows, H], one at a time
  const Tensor h_first = h0.narrow(0, b0, rows);  // [rows, H]
  for (int64_t t = 0; t < states.size(); ++t) {
    const Tensor& h = t == 0 ? h_first : states.view(t - 1);
    gemm(q, h);
    pass(t, q.data_ptr<T>(), h.data_ptr<T>());
  }
}

// ---------------------------------------------------------------------------------------------
// Dense real recurrence (the orthogonal and deep-stacked RNNs): h_t = f(pre_t + h_{t-1} W^T),
// f one of the candidate activations (tanh, relu, identity, modReLU with act_bias [H]).

template <typename T>
void dense_forward_impl(const Tensor& pre, const Tensor& weight_t, const Tensor& h0,
                        const std::optional<Tensor>& act_bias, int64_t kind, Tensor& outputs) {
  const int64_t B = pre.size(1), H = pre.size(2);
  const T* ab = act_bias ? act_bias->data_ptr<T>() : nullptr;  // [H]
  const StepGemm gemm(weight_t);  // shared by the row blocks
  for_row_blocks(B, [&](int64_t b0, int64_t rows) {
    forward_rows<T>(gemm, H, h0, outputs, b0, rows, [&](int64_t t, const T* q_t, const T*) {
      const T* p_t = step_row<T>(pre, t, b0);
      T* h_t = step_row<T>(outputs, t, b0);
      for (int64_t b = 0; b < rows; ++b) {
        const T *p = p_t + b * H, *q = q_t + b * H;
        T* h = h_t + b * H;
        for_lanes<T>(H, [&](int64_t j, int64_t n) {
          const Vectorized<T> bias = ab ? load(ab + j, n) : Vectorized<T>(T(0));
          candidate(load(p + j, n) + load(q + j, n), bias, kind).store(h + j, n);
        });
      }
    });
  });
}

Tensor dense_forward(const Tensor& pre, const Tensor& weight_t, const Tensor& h0,
                     const std::optional<Tensor>& act_bias, int64_t kind) {
  check_contiguous({{"pre", &pre}, {"h0", &h0}});
  if (act_bias) check_contiguous({{"act_bias", &*act_bias}});
  Tensor outputs = workspace_empty(pre.sizes(), pre.options());
  AT_DISPATCH_FLOATING_TYPES(pre.scalar_type(), "dense_forward", [&] {
    dense_forward_impl<scalar_t>(pre, weight_t, h0, act_bias, kind, outputs);
  });
  return outputs;
}

// dz [T, B, H]: dz_t = dh_t f'(h_t) with dh_t = grad_out_t + dz_{t+1} @ W, and dh_last at t = T-1.
// With d_act_bias defined (modReLU) it also sums dz_t sign(h_t) over every step and row into
// d_act_bias [H] (OrderedSum), read back from the pass instead of from two more passes over
// [T, B, H].
template <typename T>
void dense_backward_impl(const Tensor& grad_out, const Tensor& dh_last, const Tensor& outputs, const Tensor& weight,
                         int64_t kind, Tensor& dz, Tensor& d_act_bias) {
  const int64_t T_ = outputs.size(0), B = outputs.size(1), H = outputs.size(2);
  const bool sums = d_act_bias.defined();
  const Vectorized<T> zero(T(0));
  OrderedSum<T> sum(sums ? H : 0);
  const StepGemm gemm(weight);  // shared by the row blocks
  for_row_blocks(B, [&](int64_t b0, int64_t rows) {
    Tensor q = at::empty({rows, H}, outputs.options());  // [rows, H] dz_{t+1} @ W
    StepRowsView d_steps(dz, b0, rows);                  // T x [rows, H], one at a time
    const T* qp = q.data_ptr<T>();
    auto block_sum = sum.block();
    T* ss = block_sum.step.data();
    for (int64_t t = T_ - 1; t >= 0; --t) {
      const bool last = t == T_ - 1;
      if (!last) gemm(q, d_steps.view(t + 1));
      const T* g_t = last ? dh_last.data_ptr<T>() + b0 * H : step_row<T>(grad_out, t, b0);
      const T* h_t = step_row<T>(outputs, t, b0);
      T* d_t = step_row<T>(dz, t, b0);
      for (int64_t b = 0; b < rows; ++b) {
        const T *g = g_t + b * H, *h = h_t + b * H, *qb = qp + b * H;
        T* d = d_t + b * H;
        for_lanes<T>(H, [&](int64_t j, int64_t n) {
          const Vectorized<T> dh = last ? load(g + j, n) : load(g + j, n) + load(qb + j, n);
          const Vectorized<T> h_j = load(h + j, n);
          const Vectorized<T> d_j = dh * candidate_derivative(h_j, kind);
          d_j.store(d + j, n);
          if (sums) {  // dz sign(h): -dz where h < 0, dz where h > 0, 0 where h = 0 (dz is 0 there)
            const Vectorized<T> signed_d = Vectorized<T>::blendv(d_j, d_j.neg(), h_j < zero);
            T* s_j = ss + j;
            (b == 0 ? signed_d : load(s_j, n) + signed_d).store(s_j, n);
          }
        });
      }
      block_sum.end_step();
    }
    sum.add(b0, std::move(block_sum));
  });
  if (sums) sum.write(d_act_bias.data_ptr<T>());
}

// Returns {dz, dh0 = dz_0 @ W, d_act_bias}: d_act_bias [H] = sum of dz sign(h) when act_bias_grad,
// else empty [0].
std::vector<Tensor> dense_backward(const Tensor& grad_out, const Tensor& dh_last, const Tensor& outputs,
                                   const Tensor& weight, int64_t kind, bool act_bias_grad) {
  check_contiguous({{"grad_out", &grad_out}, {"dh_last", &dh_last}, {"outputs", &outputs}});
  Tensor dz = workspace_empty(outputs.sizes(), outputs.options());
  Tensor d_act_bias = at::empty({act_bias_grad ? outputs.size(2) : 0}, outputs.options());
  Tensor sums = act_bias_grad ? d_act_bias : Tensor();
  AT_DISPATCH_FLOATING_TYPES(outputs.scalar_type(), "dense_backward", [&] {
    dense_backward_impl<scalar_t>(grad_out, dh_last, outputs, weight, kind, dz, sums);
  });
  return {dz, at::mm(dz[0], weight), d_act_bias};
}

// ---------------------------------------------------------------------------------------------
// GRU / GORU

template <typename T>
void gru_forward_impl(const Tensor& pre, const Tensor& weight_t, const std::optional<Tensor>& bias,
                      const Tensor& h0, const std::optional<Tensor>& act_bias, int64_t kind,
                      Tensor& outputs, Tensor& gates, Tensor& hidden_n) {
  const int64_t B = pre.size(1), H = pre.size(2) / 3;
  const T* bh = bias ? bias->data_ptr<T>() : nullptr;          // [3H], added in the pass
  const T* ab = act_bias ? act_bias->data_ptr<T>() : nullptr;  // [H]
  const StepGemm gemm(weight_t);  // shared by the row blocks
  for_row_blocks(B, [&](int64_t b0, int64_t rows) {
    forward_rows<T>(gemm, weight_t.size(1), h0, outputs, b0, rows, [&](int64_t t, const T* q_t, const T* hp) {
      const T* p_t = step_row<T>(pre, t, b0);
      T* a_t = step_row<T>(gates, t, b0);
      T* qn_t = step_row<T>(hidden_n, t, b0);
      T* h_t = step_row<T>(outputs, t, b0);
      for (int64_t b = 0; b < rows; ++b) {
        const T *p = p_t + b * 3 * H, *qq = q_t + b * 3 * H, *hb = hp + b * H;
        T *a = a_t + b * 3 * H, *qn = qn_t + b * H, *ho = h_t + b * H;
        auto qv = [&](int64_t k, int64_t j, int64_t n) {
          return plus_bias(load(qq + k * H + j, n), bh, k * H + j, n);
        };
        for_lanes<T>(H, [&](int64_t j, int64_t n) {
          auto r = sigmoid(load(p + j, n) + qv(0, j, n));
          auto z = sigmoid(load(p + H + j, n) + qv(1, j, n));
          auto q_n = qv(2, j, n);
          auto cand = candidate(load(p + 2 * H + j, n) + r * q_n,
                                ab ? load(ab + j, n) : Vectorized<T>(T(0)), kind);
          r.store(a + j, n);
          z.store(a + H + j, n);
          cand.store(a + 2 * H + j, n);
          q_n.store(qn + j, n);
          ((load(hb + j, n) - cand) * z + cand).store(ho + j, n);
        });
      }
    });
  });
}

std::vector<Tensor> gru_forward(const Tensor& pre, const Tensor& weight_t, const std::optional<Tensor>& bias,
                                const Tensor& h0, const std::optional<Tensor>& act_bias, int64_t kind) {
  check_contiguous({{"pre", &pre}, {"h0", &h0}});
  if (bias) check_contiguous({{"bias", &*bias}});
  if (act_bias) check_contiguous({{"act_bias", &*act_bias}});
  const int64_t T_ = pre.size(0), B = pre.size(1), H = pre.size(2) / 3;
  Tensor outputs = workspace_empty({T_, B, H}, pre.options());
  Tensor gates = workspace_empty({T_, B, 3 * H}, pre.options());
  Tensor hidden_n = workspace_empty({T_, B, H}, pre.options());
  AT_DISPATCH_FLOATING_TYPES(pre.scalar_type(), "gru_forward", [&] {
    gru_forward_impl<scalar_t>(pre, weight_t, bias, h0, act_bias, kind, outputs, gates, hidden_n);
  });
  return {outputs, gates, hidden_n};
}

// d_pre [T, B, 3H] and d_hidden [T, B, 3H] (equal but in the n block: d_pre holds d a_n there,
// d_hidden d q_n = d a_n r); returns dh0 = grad carried to h0.
template <typename T>
void gru_backward_impl(const Tensor& grad_out, const Tensor& dh_last, const Tensor& outputs,
                       const Tensor& gates, const Tensor& hidden_n, const Tensor& h0, const Tensor& weight,
                       int64_t kind, Tensor& d_pre, Tensor& d_hidden, Tensor& dh) {
  const int64_t T_ = outputs.size(0), B = outputs.size(1), H = outputs.size(2);
  const Vectorized<T> one(T(1));
  // dh_t = carry + q: carry = grad_out_t + dh_{t+1} z_{t+1} (written by the pass of step t+1) and
  // q = d_hidden_{t+1} @ W; dh_last at t = T-1.
  const StepGemm gemm(weight);  // shared by the row blocks
  for_row_blocks(B, [&](int64_t b0, int64_t rows) {
    Tensor carry = at::empty({rows, H}, outputs.options());  // [rows, H]
    Tensor q = at::empty({rows, H}, outputs.options());      // [rows, H]
    StepRowsView d_steps(d_hidden, b0, rows);                // T x [rows, 3H], one at a time
    T* carry_p = carry.data_ptr<T>();
    for (int64_t t = T_ - 1; t >= 0; --t) {
      const bool last = t == T_ - 1;
      if (!last) gemm(q, d_steps.view(t + 1));
      const T* a_t = step_row<T>(gates, t, b0);
      const T* qn_t = step_row<T>(hidden_n, t, b0);
      const T* hp = (t > 0 ? step_row<T>(outputs, t - 1, b0) : h0.data_ptr<T>() + b0 * H);
      const T* g_prev = t > 0 ? step_row<T>(grad_out, t - 1, b0) : nullptr;
      const T* first = last ? dh_last.data_ptr<T>() + b0 * H : carry_p;
      const T* second = last ? nullptr : q.data_ptr<T>();
      T* dp_t = step_row<T>(d_pre, t, b0);
      T* dq_t = step_row<T>(d_hidden, t, b0);
      for (int64_t b = 0; b < rows; ++b) {
        const T *a = a_t + b * 3 * H, *qn = qn_t + b * H, *hb = hp + b * H;
        const T *d1 = first + b * H, *d2 = second ? second + b * H : nullptr;
        const T* gp = g_prev ? g_prev + b * H : nullptr;
        T *dp = dp_t + b * 3 * H, *dq = dq_t + b * 3 * H, *c = carry_p + b * H;
        for_lanes<T>(H, [&](int64_t j, int64_t n) {
          auto r = load(a + j, n), z = load(a + H + j, n), cand = load(a + 2 * H + j, n);
          auto g = d2 ? load(d1 + j, n) + load(d2 + j, n) : load(d1 + j, n);  // read before c is written
          auto d_n = g * (one - z) * candidate_derivative(cand, kind);
          auto d_r = d_n * load(qn + j, n) * r * (one - r);
          auto d_z = g * (load(hb + j, n) - cand) * z * (one - z);
          d_r.store(dp + j, n);
          d_r.store(dq + j, n);
          d_z.store(dp + H + j, n);
          d_z.store(dq + H + j, n);
          d_n.store(dp + 2 * H + j, n);
          (d_n * r).store(dq + 2 * H + j, n);
          auto direct = g * z;
          (gp ? direct + load(gp + j, n) : direct).store(c + j, n);
        });
      }
    }
    gemm(q, d_steps.view(0));
    Tensor dh_rows = dh.narrow(0, b0, rows);  // [rows, H], contiguous
    at::add_out(dh_rows, carry, q);
  });
}

std::vector<Tensor> gru_backward(const Tensor& grad_out, const Tensor& dh_last, const Tensor& outputs,
                                 const Tensor& gates, const Tensor& hidden_n, const Tensor& h0,
                                 const Tensor& weight, int64_t kind) {
  check_contiguous({{"grad_out", &grad_out}, {"dh_last", &dh_last}, {"outputs", &outputs}, {"gates", &gates},
                    {"hidden_n", &hidden_n}, {"h0", &h0}});
  const int64_t T_ = outputs.size(0), B = outputs.size(1), H = outputs.size(2);
  Tensor d_pre = workspace_empty({T_, B, 3 * H}, outputs.options());
  Tensor d_hidden = workspace_empty({T_, B, 3 * H}, outputs.options());
  Tensor dh = at::empty({B, H}, outputs.options());
  AT_DISPATCH_FLOATING_TYPES(outputs.scalar_type(), "gru_backward", [&] {
    gru_backward_impl<scalar_t>(grad_out, dh_last, outputs, gates, hidden_n, h0, weight, kind, d_pre, d_hidden, dh);
  });
  return {d_pre, d_hidden, dh};
}

// ---------------------------------------------------------------------------------------------
// LSTM

// bias [4H] (or none) is added in the pass: folded into pre by the caller it would cost a pass
// over [T, B, 4H] (131 MB at T = 1000, B = 32, H = 256) and its gradient another.
template <typename T>
void lstm_forward_impl(const Tensor& pre, const Tensor& weight_t, const std::optional<Tensor>& bias,
                       const Tensor& h0, const Tensor& c0, Tensor& outputs, Tensor& gates, Tensor& cells) {
  const int64_t B = pre.size(1), H = pre.size(2) / 4;
  const T* bias_p = bias ? bias->data_ptr<T>() : nullptr;  // [4H]
  const StepGemm gemm(weight_t);  // shared by the row blocks
  for_row_blocks(B, [&](int64_t b0, int64_t rows) {
    forward_rows<T>(gemm, weight_t.size(1), h0, outputs, b0, rows, [&](int64_t t, const T* q_t, const T*) {
      const T* c_prev = t > 0 ? step_row<T>(cells, t - 1, b0) : c0.data_ptr<T>() + b0 * H;  // [rows, H]
      const T* p_t = step_row<T>(pre, t, b0);
      T* g_t = step_row<T>(gates, t, b0);
      T* c_t = step_row<T>(cells, t, b0);
      T* h_t = step_row<T>(outputs, t, b0);
      for (int64_t b = 0; b < rows; ++b) {
        const T *qq = q_t + b * 4 * H, *p = p_t + b * 4 * H, *cp = c_prev + b * H;
        T *gt = g_t + b * 4 * H, *ct = c_t + b * H, *ht = h_t + b * H;
        auto a = [&](int64_t k, int64_t j, int64_t n) {
          return plus_bias(load(p + k * H + j, n) + load(qq + k * H + j, n), bias_p, k * H + j, n);
        };
        for_lanes<T>(H, [&](int64_t j, int64_t n) {
          auto i = sigmoid(a(0, j, n)), f = sigmoid(a(1, j, n));
          auto g = fast_tanh(a(2, j, n)), o = sigmoid(a(3, j, n));
          auto c = f * load(cp + j, n) + i * g;
          i.store(gt + j, n);
          f.store(gt + H + j, n);
          g.store(gt + 2 * H + j, n);
          o.store(gt + 3 * H + j, n);
          c.store(ct + j, n);
          (o * fast_tanh(c)).store(ht + j, n);
        });
      }
    });
  });
}

std::vector<Tensor> lstm_forward(const Tensor& pre, const Tensor& weight_t, const std::optional<Tensor>& bias,
                                 const Tensor& h0, const Tensor& c0) {
  check_contiguous({{"pre", &pre}, {"h0", &h0}, {"c0", &c0}});
  if (bias) check_contiguous({{"bias", &*bias}});
  const int64_t T_ = pre.size(0), B = pre.size(1), H = pre.size(2) / 4;
  Tensor outputs = workspace_empty({T_, B, H}, pre.options());
  Tensor gates = workspace_empty({T_, B, 4 * H}, pre.options());
  Tensor cells = workspace_empty({T_, B, H}, pre.options());
  AT_DISPATCH_FLOATING_TYPES(pre.scalar_type(), "lstm_forward", [&] {
    lstm_forward_impl<scalar_t>(pre, weight_t, bias, h0, c0, outputs, gates, cells);
  });
  return {outputs, gates, cells};
}

// d_gates [T, B, 4H]; dc carries dc_{t+1} f_{t+1} between steps and ends as dc0 = dc_1 f_1.
// With d_bias defined it also sums d_gates over every step and row into d_bias [4H] (the bias's
// gradient, read back from the pass instead of from a [T, B, 4H] buffer; OrderedSum).
template <typename T>
void lstm_backward_impl(const Tensor& grad_out, const Tensor& dh_last, const Tensor& gates, const Tensor& cells,
                        const Tensor& c0, const Tensor& weight, Tensor& d_gates, Tensor& dc, Tensor& d_bias) {
  const int64_t T_ = cells.size(0), B = cells.size(1), H = cells.size(2);
  const Vectorized<T> one(T(1));
  const bool sums = d_bias.defined();
  OrderedSum<T> sum(sums ? 4 * H : 0);
  const StepGemm gemm(weight);  // shared by the row blocks
  for_row_blocks(B, [&](int64_t b0, int64_t rows) {
    Tensor q = at::empty({rows, H}, cells.options());  // [rows, H] d_gates_{t+1} @ W
    StepRowsView d_steps(d_gates, b0, rows);           // T x [rows, 4H], one at a time
    T* dc_p = dc.data_ptr<T>() + b0 * H;               // [rows, H]
    auto block_sum = sum.block();
    T* ss = block_sum.step.data();
    for (int64_t t = T_ - 1; t >= 0; --t) {
      // dh_t = grad_out_t + d_gates_{t+1} @ W (dh_last at t = T-1), summed in the pass
      const bool last = t == T_ - 1;
      if (!last) gemm(q, d_steps.view(t + 1));
      const T* g_t = step_row<T>(gates, t, b0);
      const T* c_t = step_row<T>(cells, t, b0);
      const T* cp_t = t > 0 ? step_row<T>(cells, t - 1, b0) : c0.data_ptr<T>() + b0 * H;
      const T* first = last ? dh_last.data_ptr<T>() + b0 * H : step_row<T>(grad_out, t, b0);
      const T* second = last ? nullptr : q.data_ptr<T>();
      T* dg_t = step_row<T>(d_gates, t, b0);
      for (int64_t b = 0; b < rows; ++b) {
        const T *gt = g_t + b * 4 * H, *ct = c_t + b * H, *cp = cp_t + b * H;
        const T *d1 = first + b * H, *d2 = second ? second + b * H : nullptr;
        T *dg = dg_t + b * 4 * H, *dcb = dc_p + b * H;
        for_lanes<T>(H, [&](int64_t j, int64_t n) {
          auto i = load(gt + j, n), f = load(gt + H + j, n), g = load(gt + 2 * H + j, n);
          auto o = load(gt + 3 * H + j, n);
          auto tanh_c = fast_tanh(load(ct + j, n));
          auto g_h = d2 ? load(d1 + j, n) + load(d2 + j, n) : load(d1 + j, n);
          auto g_c = load(dcb + j, n) + g_h * o * (one - tanh_c * tanh_c);
          const Vectorized<T> d[4] = {g_c * g * i * (one - i), g_c * load(cp + j, n) * f * (one - f),
                                      g_c * i * (one - g * g), g_h * tanh_c * o * (one - o)};
          for (int64_t k = 0; k < 4; ++k) {
            d[k].store(dg + k * H + j, n);
            if (sums) {
              T* s_k = ss + k * H + j;
              (b == 0 ? d[k] : load(s_k, n) + d[k]).store(s_k, n);
            }
          }
          (g_c * f).store(dcb + j, n);
        });
      }
      block_sum.end_step();
    }
    sum.add(b0, std::move(block_sum));
  });
  if (sums) sum.write(d_bias.data_ptr<T>());
}

// Returns {d_gates, dc0, d_bias}: d_bias [4H] = sum of d_gates when bias_grad, else empty [0].
std::vector<Tensor> lstm_backward(const Tensor& grad_out, const Tensor& dh_last, const Tensor& dc_last,
                                  const Tensor& gates, const Tensor& cells, const Tensor& c0, const Tensor& weight,
                                  bool bias_grad) {
  check_contiguous({{"grad_out", &grad_out}, {"dh_last", &dh_last}, {"dc_last", &dc_last}, {"gates", &gates},
                    {"cells", &cells}, {"c0", &c0}});
  const int64_t T_ = cells.size(0), B = cells.size(1), H = cells.size(2);
  Tensor d_gates = workspace_empty({T_, B, 4 * H}, cells.options());
  Tensor dc = dc_last.clone();
  Tensor d_bias = at::empty({bias_grad ? 4 * H : 0}, cells.options());
  Tensor sums = bias_grad ? d_bias : Tensor();
  AT_DISPATCH_FLOATING_TYPES(cells.scalar_type(), "lstm_backward", [&] {
    lstm_backward_impl<scalar_t>(grad_out, dh_last, gates, cells, c0, weight, d_gates, dc, sums);
  });
  return {d_gates, dc, d_bias};
}

// ---------------------------------------------------------------------------------------------
// Complex modReLU recurrence: h = z relu(|z| + b) / (|z| + eps), z = pre_t + h_{t-1} W^T.
// Interleaved (re, im) scalars; plain loops (sqrt and division only, no transcendental calls).
// The step GEMMs are real: a complex [B, H] row read as real [B, 2H] times the [2H, 2H] real form
// of the complex matrix (torch_complex.realified) gives the interleaved product. MKL's real GEMM
// at [32, 128] x [128, 128] takes 9 us where its complex one at [32, 64] x [64, 64] takes 17.

inline Tensor as_real_rows(const Tensor& x) {  // [B, H] complex -> [B, 2H] real view
  return at::view_as_real(x).view({x.size(0), 2 * x.size(1)});
}

template <typename R>
void complex_forward_impl(const Tensor& pre, const Tensor& weight_t, const Tensor& h0, const Tensor& act_bias,
                          double eps, Tensor& outputs) {
  const int64_t T_ = pre.size(0), B = pre.size(1), H = pre.size(2);
  const R* ab = act_bias.data_ptr<R>();  // [H]
  const R e = static_cast<R>(eps);
  const StepGemm gemm(weight_t);  // shared by the row blocks
  for_row_blocks(B, [&](int64_t b0, int64_t rows) {
    StepRowsView states(outputs, b0, rows), previous(outputs, b0, rows);  // T x [rows, H] complex
    const Tensor h_first = h0.narrow(0, b0, rows);                          // [rows, H] complex
    for (int64_t t = 0; t < T_; ++t) {
      Tensor z_rows = as_real_rows(states.view(t));  // [rows, 2H]
      gemm(z_rows, as_real_rows(t == 0 ? h_first : previous.view(t - 1)));  // pre_t is added in the pass
      R* zr = reinterpret_cast<R*>(z_rows.data_ptr());
      const R* pr = reinterpret_cast<const R*>(pre.data_ptr()) + 2 * (t * B + b0) * H;
      for (int64_t b = 0; b < rows; ++b) {
        R* row = zr + 2 * b * H;
        const R* p = pr + 2 * b * H;
        for (int64_t j = 0; j < H; ++j) {
          const R re = row[2 * j] + p[2 * j], im = row[2 * j + 1] + p[2 * j + 1];
          const R m = std::sqrt(re * re + im * im);
          const R shifted = m + ab[j];
          const R s = std::max(shifted, R(0)) / (m + e);
          row[2 * j] = re * s;
          row[2 * j + 1] = im * s;
        }
      }
    }
  });
}

Tensor complex_modrelu_forward(const Tensor& pre, const Tensor& weight_t, const Tensor& h0, const Tensor& act_bias,
                               double eps) {
  check_contiguous({{"pre", &pre}, {"act_bias", &act_bias}});
  Tensor outputs = workspace_empty(pre.sizes(), pre.options());
  AT_DISPATCH_FLOATING_TYPES(act_bias.scalar_type(), "complex_modrelu_forward", [&] {
    complex_forward_impl<scalar_t>(pre, weight_t, h0, act_bias, eps, outputs);
  });
  return outputs;
}

// dz_t = p g + q conj(g) with g = grad_out_t + dz_{t+1} conj(W) (g_T = last), p and q the modReLU
// VJP coefficients of backends/torch_complex.py's modrelu_vjp_coefficients, from z_t.
template <typename R>
void complex_backward_impl(const Tensor& grad_out, const Tensor& last, const Tensor& z, const Tensor& weight_c,
                           const Tensor& act_bias, double eps, Tensor& dz) {
  const int64_t T_ = z.size(0), B = z.size(1), H = z.size(2);
  const R* ab = act_bias.data_ptr<R>();
  const R e = static_cast<R>(eps);
  const R tiny = std::numeric_limits<R>::min();
  const StepGemm gemm(weight_c);  // shared by the row blocks
  for_row_blocks(B, [&](int64_t b0, int64_t rows) {
    Tensor q = at::empty({rows, H}, last.options());             // [rows, H] complex dz_{t+1} conj(W)
    Tensor zeros = at::zeros({rows, 2 * H}, act_bias.options());  // [rows, 2H] what g_T adds instead of q
    Tensor q_rows = as_real_rows(q);
    StepRowsView dz_steps(dz, b0, rows);  // T x [rows, H] complex, one at a time
    for (int64_t t = T_ - 1; t >= 0; --t) {
      const bool final_step = t == T_ - 1;  // g_T = last; else g_t = grad_out_t + q, summed in the pass
      if (!final_step) gemm(q_rows, as_real_rows(dz_steps.view(t + 1)));
      const R* g1 = reinterpret_cast<const R*>(final_step ? last.data_ptr() : grad_out.data_ptr()) +
                    2 * ((final_step ? 0 : t * B) + b0) * H;
      const R* g2 = reinterpret_cast<const R*>((final_step ? zeros : q_rows).data_ptr());
      const R* zr = reinterpret_cast<const R*>(z.data_ptr()) + 2 * (t * B + b0) * H;
      R* out = reinterpret_cast<R*>(dz.data_ptr()) + 2 * (t * B + b0) * H;
      // branch-free (selects, no conditional division) so that the compiler vectorises it
      for (int64_t b = 0; b < rows; ++b) {
        for (int64_t j = 0; j < H; ++j) {
          const int64_t k = 2 * (b * H + j);
          const R re = zr[k], im = zr[k + 1];
          const R g_re = g1[k] + g2[k], g_im = g1[k + 1] + g2[k + 1];
          const R squared = re * re + im * im;
          const R m = std::sqrt(squared);
          const R denominator = m + e;
          const R shifted = m + ab[j];
          const R s = std::max(shifted, R(0)) / denominator;  // 0 where inactive
          const R active = shifted > R(0) ? R(1) : R(0);
          const R half_k = active * m * ((e - ab[j]) * R(0.5)) / (denominator * denominator);
          const R p = s + half_k;
          const R c = half_k / std::max(squared, tiny);  // q = c z^2
          const R q_re = c * (re * re - im * im), q_im = c * (2 * re * im);
          // p g + q conj(g)
          out[k] = p * g_re + q_re * g_re + q_im * g_im;
          out[k + 1] = p * g_im + q_im * g_re - q_re * g_im;
        }
      }
    }
  });
}

Tensor complex_modrelu_backward(const Tensor& grad_out, const Tensor& last, const Tensor& z, const Tensor& weight_c,
                                const Tensor& act_bias, double eps) {
  check_contiguous({{"grad_out", &grad_out}, {"last", &last}, {"z", &z}, {"act_bias", &act_bias}});
  Tensor dz = workspace_empty(z.sizes(), z.options());
  AT_DISPATCH_FLOATING_TYPES(act_bias.scalar_type(), "complex_modrelu_backward", [&] {
    complex_backward_impl<scalar_t>(grad_out, last, z, weight_c, act_bias, eps, dz);
  });
  return dz;
}

// dL/db [H] = sum over rows of Re(conj(dz) z) (m + eps) / ((m + eps)^2 + eps (b - eps)), the
// bulk formula of autograd/complex_gradients.py's act_bias_grad in one pass, summed in double.
template <typename R>
void complex_bias_grad_impl(const Tensor& z, const Tensor& dz, const Tensor& act_bias, double eps, Tensor& out) {
  const int64_t H = z.size(-1), rows = z.numel() / std::max<int64_t>(H, 1);
  const R* zr = reinterpret_cast<const R*>(z.data_ptr());
  const R* dr = reinterpret_cast<const R*>(dz.data_ptr());
  const R* ab = act_bias.data_ptr<R>();
  const R e = static_cast<R>(eps);
  const R tiny = std::numeric_limits<R>::min();
  std::vector<double> sums(H, 0.0);
  for (int64_t row = 0; row < rows; ++row) {
    const R *zz = zr + 2 * row * H, *dd = dr + 2 * row * H;
    for (int64_t j = 0; j < H; ++j) {
      const R re = zz[2 * j], im = zz[2 * j + 1];
      const R along = dd[2 * j] * re + dd[2 * j + 1] * im;
      const R shifted = std::sqrt(re * re + im * im) + e;
      const R denominator = std::max(shifted * shifted + e * (ab[j] - e), tiny);
      sums[j] += static_cast<double>(along * shifted / denominator);
    }
  }
  R* o = out.data_ptr<R>();
  for (int64_t j = 0; j < H; ++j) o[j] = static_cast<R>(sums[j]);
}

Tensor complex_modrelu_bias_grad(const Tensor& z, const Tensor& dz, const Tensor& act_bias, double eps) {
  check_contiguous({{"z", &z}, {"dz", &dz}, {"act_bias", &act_bias}});
  Tensor out = at::empty_like(act_bias);
  AT_DISPATCH_FLOATING_TYPES(act_bias.scalar_type(), "complex_modrelu_bias_grad", [&] {
    complex_bias_grad_impl<scalar_t>(z, dz, act_bias, eps, out);
  });
  return out;
}

// How many threads an at::parallel_for region of `tasks` tasks runs on. A check on the build: without
// -fopenmp, ATen's parallel_for (inline in its headers) compiles to a serial loop, silently.
int64_t parallel_threads(int64_t tasks) {
  std::mutex mutex;
  std::set<int> ids;
  at::parallel_for(0, tasks, 1, [&](int64_t, int64_t) {
    std::lock_guard<std::mutex> lock(mutex);
    ids.insert(at::get_thread_num());
  });
  return int64_t(ids.size());
}

}  // namespace

// skew_exp.cpp
std::vector<Tensor> skew_exp_divided_differences(const Tensor& theta, double tiny_angle, double tiny_pair);
std::vector<Tensor> skew_exp_forward(const Tensor& source, bool from_triangle, bool polish, double tiny_angle);
Tensor skew_exp_backward(const Tensor& grad_w, const Tensor& theta, const Tensor& v, const Tensor& u,
                         bool from_triangle, double tiny_angle, double tiny_pair);
// step_gemm.cpp (StepGemm's kind and a product through it, for tests; the bulk packed GEMM)
Tensor step_gemm_matmul(const Tensor& a, const Tensor& b);
Tensor packed_matmul(const Tensor& a, const Tensor& b, const std::optional<Tensor>& bias);
// narrow_grad.cpp
Tensor narrow_weight_grad(const Tensor& grad, const Tensor& x);
// workspace.cpp
Tensor workspace_empty_op(at::IntArrayRef sizes, at::ScalarType dtype);
int64_t set_workspace_limit(int64_t limit_bytes);

// Loaded as a plain shared library (torch.ops.trit_rnn_cpu.*): no Python bindings to compile.
TORCH_LIBRARY(trit_rnn_cpu, m) {
  m.def("dense_forward", &dense_forward);
  m.def("dense_backward", &dense_backward);
  m.def("gru_forward", &gru_forward);
  m.def("gru_backward", &gru_backward);
  m.def("lstm_forward", &lstm_forward);
  m.def("lstm_backward", &lstm_backward);
  m.def("complex_modrelu_forward", &complex_modrelu_forward);
  m.def("complex_modrelu_backward", &complex_modrelu_backward);
  m.def("complex_modrelu_bias_grad", &complex_modrelu_bias_grad);
  m.def("skew_exp_divided_differences", &skew_exp_divided_differences);
  m.def("skew_exp_forward", &skew_exp_forward);
  m.def("skew_exp_backward", &skew_exp_backward);
  m.def("parallel_threads", &parallel_threads);
  m.def("step_gemm_kind", &step_gemm_kind);
  m.def("step_gemm_matmul", &step_gemm_matmul);
  m.def("packed_gemm_available", &packed_gemm_available);
  m.def("packed_gemm_preferred", &packed_gemm_preferred);
  m.def("packed_matmul", &packed_matmul);
  m.def("narrow_weight_grad", &narrow_weight_grad);
  m.def("workspace_empty", &workspace_empty_op);
  m.def("set_workspace_limit", &set_workspace_limit);
}
