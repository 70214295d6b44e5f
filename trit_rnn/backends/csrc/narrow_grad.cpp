// The weight gradient of a narrow input: c [N, K] = grad^T [N, M] @ x [M, K] for K <= 8 columns
// (an input projection of 1-8 features, as in the pixel, adding and copying tasks), as one pass
// over grad's rows.
//
// Why: it is a read of grad with 2K FLOPs per element, and MKL runs it at 4-13 GFLOP/s: 398 us
// as grad^T x and 130 us as (x^T grad)^T at M = 3200, N = 128, K = 2 on the project's 2-core AMD
// VM, against a few tens of us for reading the 1.6 MB of grad. The checkpointed layer pays it per
// segment, below the size at which cpu_gemm.py times its alternatives.
//
// Each thread owns whole groups of 16 columns of grad and sums all M rows for them in order, so
// every element of c is summed by one thread in a fixed order: the result does not depend on the
// thread count. Register accumulators are added into c every kRowBlock rows, a two-level sum.
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS
#include "step_gemm.h"

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include <algorithm>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define TRIT_RNN_NARROW_GRAD 1
#endif

using at::Tensor;

namespace {

constexpr int64_t kMaxColumns = 8;  // K
constexpr int64_t kRowBlock = 256;

#ifdef TRIT_RNN_NARROW_GRAD
// ct[k, n0 : n0 + 8 NV] += sum over rows [r0, r1) of g[r, n0 : n0 + 8 NV] x[r, k], for k < K; g's
// rows at stride ldg, x [M, K] contiguous, ct [K, N]. NV * K accumulators (at most 8) stay in
// registers.
template <int K, int NV>
void column_group(const float* g, int64_t ldg, const float* x, int64_t r0, int64_t r1, int64_t n0, float* ct,
                  int64_t N) {
  __m256 acc[K][NV];
  for (int k = 0; k < K; ++k)
    for (int v = 0; v < NV; ++v) acc[k][v] = _mm256_setzero_ps();
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = g + r * ldg + n0;
    __m256 lanes[NV];  // [8] each
    for (int v = 0; v < NV; ++v) lanes[v] = _mm256_loadu_ps(row + 8 * v);
#pragma GCC unroll 8
    for (int k = 0; k < K; ++k) {
      const __m256 xk = _mm256_broadcast_ss(x + r * K + k);
      for (int v = 0; v < NV; ++v) acc[k][v] = _mm256_fmadd_ps(lanes[v], xk, acc[k][v]);
    }
  }
  for (int k = 0; k < K; ++k)
    for (int v = 0; v < NV; ++v) {
      float* out = ct + k * N + n0 + 8 * v;
      _mm256_storeu_ps(out, _mm256_add_ps(_mm256_loadu_ps(out), acc[k][v]));
    }
}

// Columns [n_begin, n_end) of ct, block of rows by block of rows (the block's rows of x stay in
// L1 across its column groups): 16 columns at a time (8 for K > 4, whose 2K accumulators would
// not fit the 16 AVX2 registers), then 8, then one by one.
template <int K>
void columns(const float* g, int64_t ldg, const float* x, int64_t M, int64_t n_begin, int64_t n_end, float* ct,
             int64_t N) {
  for (int64_t r0 = 0; r0 < M; r0 += kRowBlock) {
    const int64_t r1 = std::min(M, r0 + kRowBlock);
    int64_t n = n_begin;
    if constexpr (K <= 4) {
      for (; n + 16 <= n_end; n += 16) column_group<K, 2>(g, ldg, x, r0, r1, n, ct, N);
    }
    for (; n + 8 <= n_end; n += 8) column_group<K, 1>(g, ldg, x, r0, r1, n, ct, N);
    for (; n < n_end; ++n) {
      float acc[K] = {};
      for (int64_t r = r0; r < r1; ++r)
        for (int k = 0; k < K; ++k) acc[k] += g[r * ldg + n] * x[r * K + k];
      for (int k = 0; k < K; ++k) ct[k * N + n] += acc[k];
    }
  }
}

template <int K>
void narrow_grad(const float* g, int64_t ldg, const float* x, int64_t M, int64_t N, float* ct) {
  // tasks of 16 columns (the last may hold the 8-wide and single tails)
  const int64_t groups = (N + 15) / 16;
  at::parallel_for(0, groups, 1, [&](int64_t begin, int64_t end) {
    columns<K>(g, ldg, x, M, begin * 16, std::min(N, end * 16), ct, N);
  });
}
#endif

}  // namespace

// c [N, K] = grad^T @ x for float32 grad [M, N] (rows of unit stride) and x [M, K], K <= 8.
Tensor narrow_weight_grad(const Tensor& grad, const Tensor& x) {
  TORCH_CHECK(packed_gemm_available(), "narrow_weight_grad: this build has no AVX2/FMA kernel");
  TORCH_CHECK(grad.dim() == 2 && x.dim() == 2 && grad.size(0) == x.size(0),
              "narrow_weight_grad: grad [M, N] and x [M, K] expected");
  TORCH_CHECK(grad.scalar_type() == at::kFloat && x.scalar_type() == at::kFloat,
              "narrow_weight_grad: float32 operands expected");
  TORCH_CHECK(x.size(1) >= 1 && x.size(1) <= kMaxColumns, "narrow_weight_grad: x must have 1 to ", kMaxColumns,
              " columns, got ", x.size(1));
  TORCH_CHECK(grad.stride(1) == 1 || grad.size(1) == 1, "narrow_weight_grad: grad's rows must have unit stride");
  const int64_t M = grad.size(0), N = grad.size(1), K = x.size(1);
  const Tensor xc = x.contiguous();  // [M, K]
  Tensor ct = at::zeros({K, N}, grad.options());  // [K, N]
#ifdef TRIT_RNN_NARROW_GRAD
  const float *g = grad.data_ptr<float>(), *xp = xc.data_ptr<float>();
  float* out = ct.data_ptr<float>();
  const int64_t ldg = grad.stride(0);
  switch (K) {
    case 1: narrow_grad<1>(g, ldg, xp, M, N, out); break;
    case 2: narrow_grad<2>(g, ldg, xp, M, N, out); break;
    case 3: narrow_grad<3>(g, ldg, xp, M, N, out); break;
    case 4: narrow_grad<4>(g, ldg, xp, M, N, out); break;
    case 5: narrow_grad<5>(g, ldg, xp, M, N, out); break;
    case 6: narrow_grad<6>(g, ldg, xp, M, N, out); break;
    case 7: narrow_grad<7>(g, ldg, xp, M, N, out); break;
    default: narrow_grad<8>(g, ldg, xp, M, N, out); break;
  }
#endif
  return ct.t().contiguous();
}
