// The compiled loops' step GEMM (step_gemm.h) and the bulk packed GEMM around the loops.
//
// Why a kernel of our own: the loops' steps are small products with a fixed right operand, e.g.
// [16, 256] x [256, 1024] per thread per step for an LSTM at B = 32, H = 256, and on this project's
// AMD EPYC (Zen 3, AVX2) machines MKL's single-threaded sgemm runs them at 68-83 GFLOP/s for both
// threads together where this kernel, with b packed once per call, reaches 121-135 (side by side,
// 200 steps per shape). MKL is known to take a slow path on CPUs not made by Intel; on Intel's
// machines (AVX-512) its kernels are the faster. So the choice is a fixed rule, not a timing, and
// two processes on one machine always run the same kernel (bitwise equal results): the packed
// kernel on an x86 CPU with AVX2 and FMA that is not Intel's, MKL elsewhere.
// TRIT_RNN_LOOP_GEMM=mkl|packed forces one (read at every call). float32 only: float64 is MKL's.
// The kernel is deterministic and independent of the thread count: each element of c is summed
// by one thread in a fixed order.
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS
#include "step_gemm.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

// workspace.cpp
at::Tensor workspace_empty(at::IntArrayRef sizes, const at::TensorOptions& options);

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define TRIT_RNN_PACKED_GEMM 1
#endif

using at::Tensor;

namespace {

constexpr int64_t kPanel = 16;  // columns per packed panel: two 8-float AVX registers

#ifdef TRIT_RNN_PACKED_GEMM
// How a micro-kernel's accumulators start: zero, the bias of their columns, or c itself (c +=).
enum class Start { kZero, kBias, kAccumulate };

// c [MR, 16] = a [MR, K] @ panel [K, 16] (+ the start above); a[r, k] at a + r * a_row + k * a_k,
// so that a transposed operand needs no copy. `width` of the 16 columns are stored. 2 * MR
// accumulators stay in registers (12 of 16 at MR = 6); per k, one broadcast of a per row and two
// loads of the panel.
template <int MR>
inline void micro_kernel(const float* a, int64_t a_row, int64_t a_k, const float* panel, int64_t K, float* c,
                         int64_t ldc, int64_t width, Start start, const float* bias) {
  alignas(32) float tail[kPanel];
  auto initial = [&](int64_t r, int half) {
    if (start == Start::kZero) return _mm256_setzero_ps();
    const float* from = start == Start::kBias ? bias : c + r * ldc;
    if (width == kPanel) return _mm256_loadu_ps(from + 8 * half);
    std::fill(tail, tail + kPanel, 0.f);
    std::copy(from, from + width, tail);
    return _mm256_load_ps(tail + 8 * half);
  };
  // Named accumulators, not an array: GCC kept an array's elements on the stack.
  __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
#define TRIT_RNN_INIT(r)                                  \
  if constexpr (MR > r) {                                 \
    c##r##0 = initial(r, 0);                              \
    c##r##1 = initial(r, 1);                              \
  }
  TRIT_RNN_INIT(0) TRIT_RNN_INIT(1) TRIT_RNN_INIT(2) TRIT_RNN_INIT(3) TRIT_RNN_INIT(4) TRIT_RNN_INIT(5)
#undef TRIT_RNN_INIT
  const float *a0 = a, *a1 = a + a_row, *a2 = a + 2 * a_row, *a3 = a + 3 * a_row, *a4 = a + 4 * a_row,
              *a5 = a + 5 * a_row;
  // unrolled 4x: 140-151 against 129-140 GFLOP/s rolled, at the LSTM's step shapes on the AMD VM
#pragma GCC unroll 4
  for (int64_t k = 0; k < K; ++k) {
    const __m256 b0 = _mm256_load_ps(panel + k * kPanel), b1 = _mm256_load_ps(panel + k * kPanel + 8);
    const int64_t at = k * a_k;
    __m256 x;
#define TRIT_RNN_ROW(r)                             \
  if constexpr (MR > r) {                           \
    x = _mm256_broadcast_ss(a##r + at);             \
    c##r##0 = _mm256_fmadd_ps(x, b0, c##r##0);      \
    c##r##1 = _mm256_fmadd_ps(x, b1, c##r##1);      \
  }
    TRIT_RNN_ROW(0) TRIT_RNN_ROW(1) TRIT_RNN_ROW(2) TRIT_RNN_ROW(3) TRIT_RNN_ROW(4) TRIT_RNN_ROW(5)
#undef TRIT_RNN_ROW
  }
#define TRIT_RNN_STORE(r)                                \
  if constexpr (MR > r) {                                \
    float* out = c + r * ldc;                            \
    if (width == kPanel) {                               \
      _mm256_storeu_ps(out, c##r##0);                    \
      _mm256_storeu_ps(out + 8, c##r##1);                \
    } else {                                             \
      _mm256_store_ps(tail, c##r##0);                    \
      _mm256_store_ps(tail + 8, c##r##1);                \
      std::copy(tail, tail + width, out);                \
    }                                                    \
  }
  TRIT_RNN_STORE(0) TRIT_RNN_STORE(1) TRIT_RNN_STORE(2) TRIT_RNN_STORE(3) TRIT_RNN_STORE(4) TRIT_RNN_STORE(5)
#undef TRIT_RNN_STORE
}

// Rows m0..m1 of c [M, N] from a (strides a_row, a_k) and b as panels [ceil(N / 16), K, 16].
// Panels outside the row loop: one panel (K x 64 bytes) stays in L1/L2 while each row of the
// range uses it. `bias` [N] (or null) is used where start is kBias.
void panel_gemm(const float* a, int64_t a_row, int64_t a_k, int64_t m0, int64_t m1, const float* panels, int64_t K,
                int64_t N, float* c, int64_t ldc, Start start, const float* bias) {
  for (int64_t p = 0; p * kPanel < N; ++p) {
    const float* panel = panels + p * K * kPanel;
    const int64_t n0 = p * kPanel, width = std::min(kPanel, N - n0);
    const float* bias_p = bias ? bias + n0 : nullptr;
    int64_t m = m0;
    for (; m + 6 <= m1; m += 6) {
      micro_kernel<6>(a + m * a_row, a_row, a_k, panel, K, c + m * ldc + n0, ldc, width, start, bias_p);
    }
    const float* am = a + m * a_row;
    float* cm = c + m * ldc + n0;
    switch (m1 - m) {
      case 5: micro_kernel<5>(am, a_row, a_k, panel, K, cm, ldc, width, start, bias_p); break;
      case 4: micro_kernel<4>(am, a_row, a_k, panel, K, cm, ldc, width, start, bias_p); break;
      case 3: micro_kernel<3>(am, a_row, a_k, panel, K, cm, ldc, width, start, bias_p); break;
      case 2: micro_kernel<2>(am, a_row, a_k, panel, K, cm, ldc, width, start, bias_p); break;
      case 1: micro_kernel<1>(am, a_row, a_k, panel, K, cm, ldc, width, start, bias_p); break;
      default: break;
    }
  }
}

// Rows k0..k0+K of b (b[k, n] at b + k * b_k + n * b_n) as panels [ceil(N / 16), K, 16] into
// `panels` (64-byte aligned), zero-padded past N.
void pack_panels_into(const float* b, int64_t b_k, int64_t b_n, int64_t k0, int64_t K, int64_t N, float* panels) {
  for (int64_t p = 0; p * kPanel < N; ++p) {
    const int64_t width = std::min(kPanel, N - p * kPanel);
    for (int64_t k = 0; k < K; ++k) {
      float* dst = panels + (p * K + k) * kPanel;
      const float* src = b + (k0 + k) * b_k + p * kPanel * b_n;
      for (int64_t j = 0; j < width; ++j) dst[j] = src[j * b_n];
      std::fill(dst + width, dst + kPanel, 0.f);
    }
  }
}

int64_t panel_floats(int64_t K, int64_t N) { return (N + kPanel - 1) / kPanel * K * kPanel; }

Tensor pack_panels(const Tensor& b) {  // b [K, N] (any strides) -> [ceil(N / 16), K, 16]
  const int64_t K = b.size(0), N = b.size(1);
  Tensor panels = at::empty({panel_floats(K, N)}, b.options());  // 64-byte aligned (c10's CPU allocator)
  pack_panels_into(b.data_ptr<float>(), b.stride(0), b.stride(1), 0, K, N, panels.data_ptr<float>());
  return panels;
}

void packed_gemm(const float* a, int64_t M, int64_t K, int64_t lda, const float* panels, int64_t N, float* c,
                 int64_t ldc) {
  panel_gemm(a, lda, 1, 0, M, panels, K, N, c, ldc, Start::kZero, nullptr);
}

// Bulk products (packed_matmul), Goto-style:
// each thread takes a range of c's rows and walks K in chunks of kChunk, packing that chunk of b
// into its own panels (a copy of kChunk x N floats against 2 kChunk N x rows of arithmetic), then
// rows in blocks of kRowBlock (their a stays in L2) against every panel (in L1).
constexpr int64_t kChunk = 256, kRowBlock = 48;

void bulk_gemm(const Tensor& a, const Tensor& b, const float* bias, Tensor& c) {
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  const float *ap = a.data_ptr<float>(), *bp = b.data_ptr<float>();
  float* cp = c.data_ptr<float>();
  at::parallel_for(0, (M + kRowBlock - 1) / kRowBlock, 1, [&](int64_t begin, int64_t end) {
    const int64_t m_begin = begin * kRowBlock, m_end = std::min(M, end * kRowBlock);
    Tensor panels = at::empty({panel_floats(std::min(kChunk, std::max<int64_t>(K, 1)), N)}, b.options());
    float* pp = panels.data_ptr<float>();
    // a with rows not contiguous along k (a transposed view, as in the weight gradients): each row
    // block's chunk is copied [kRowBlock, kChunk] first, or every broadcast would touch a new line
    const bool copy_a = a.stride(1) != 1;
    std::vector<float> a_block(copy_a ? kRowBlock * kChunk : 0);
    const int64_t chunks = std::max<int64_t>(1, (K + kChunk - 1) / kChunk);  // one at K = 0: c = 0 or bias
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const int64_t k0 = chunk * kChunk, kc = std::min(kChunk, K - k0);
      pack_panels_into(bp, b.stride(0), b.stride(1), k0, kc, N, pp);
      const Start start = k0 > 0 ? Start::kAccumulate : bias ? Start::kBias : Start::kZero;
      for (int64_t m = m_begin; m < m_end; m += kRowBlock) {
        const int64_t m1 = std::min(m_end, m + kRowBlock);
        if (!copy_a) {
          panel_gemm(ap + k0 * a.stride(1), a.stride(0), a.stride(1), m, m1, pp, kc, N, cp, N, start, bias);
          continue;
        }
        for (int64_t k = 0; k < kc; ++k) {
          const float* src = ap + (k0 + k) * a.stride(1) + m * a.stride(0);
          for (int64_t r = 0; r < m1 - m; ++r) a_block[r * kc + k] = src[r * a.stride(0)];
        }
        panel_gemm(a_block.data(), kc, 1, 0, m1 - m, pp, kc, N, cp + m * N, N, start, bias);
      }
    }
  });
}
#endif

enum class Kind { kMkl, kPacked, kAuto };

bool packed_kernel_built_and_runs() {
#ifdef TRIT_RNN_PACKED_GEMM
  static const bool runs = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return runs;
#else
  return false;
#endif
}

Kind requested_kind() {
  const char* value = std::getenv("TRIT_RNN_LOOP_GEMM");
  const std::string kind = value ? value : "auto";
  TORCH_CHECK(kind == "auto" || kind == "mkl" || kind == "packed",
              "TRIT_RNN_LOOP_GEMM must be auto, mkl or packed; got '", kind, "'");
  return kind == "mkl" ? Kind::kMkl : kind == "packed" ? Kind::kPacked : Kind::kAuto;
}

bool use_packed(at::ScalarType dtype) {
  const Kind kind = requested_kind();
  if (dtype != at::kFloat || !packed_kernel_built_and_runs() || kind == Kind::kMkl) return false;
  return kind == Kind::kPacked || packed_gemm_preferred();
}

}  // namespace

bool packed_gemm_available() { return packed_kernel_built_and_runs(); }

// x86 with AVX2 and FMA (this build's kernel and the CPU running it) from a vendor other than Intel.
bool packed_gemm_preferred() {
#ifdef TRIT_RNN_PACKED_GEMM
  static const bool preferred = packed_kernel_built_and_runs() && !__builtin_cpu_is("intel");
  return preferred;
#else
  return false;
#endif
}

StepGemm::StepGemm(const Tensor& b) : b_(b.contiguous()) {
  TORCH_CHECK(b.dim() == 2, "StepGemm: b must be a matrix");
#ifdef TRIT_RNN_PACKED_GEMM
  if (use_packed(b.scalar_type())) panels_ = pack_panels(b_);
#else
  use_packed(b.scalar_type());  // still rejects a bad TRIT_RNN_LOOP_GEMM
#endif
}

void StepGemm::operator()(Tensor& out, const Tensor& a) const {
#ifdef TRIT_RNN_PACKED_GEMM
  if (panels_.defined()) {
    TORCH_CHECK(a.stride(1) == 1 && out.stride(1) == 1 && a.size(1) == b_.size(0) && out.size(1) == b_.size(1) &&
                    out.size(0) == a.size(0),
                "StepGemm: operands of the wrong shape or stride");
    packed_gemm(a.data_ptr<float>(), a.size(0), a.size(1), a.stride(0), panels_.data_ptr<float>(), b_.size(1),
                out.data_ptr<float>(), out.stride(0));
    return;
  }
#endif
  at::mm_out(out, a, b_);
}

std::string step_gemm_kind(at::ScalarType dtype) { return use_packed(dtype) ? "packed" : "mkl"; }


// a [M, K] @ b [K, N] (+ bias [N]) on the packed kernel, for float32 operands of any strides (a
// transposed view costs no copy): the input projection and its input gradient where
// packed_gemm_preferred() (cpu_gemm.py), any bulk GEMM where forced. The result comes from the
// loops' reused buffers (workspace_empty).
Tensor packed_matmul(const Tensor& a, const Tensor& b, const std::optional<Tensor>& bias) {
  TORCH_CHECK(packed_gemm_available(), "packed_matmul: this build has no AVX2/FMA kernel");
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "packed_matmul: a [M, K] and b [K, N] expected");
  TORCH_CHECK(a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat, "packed_matmul: float32 operands expected");
  Tensor bias_c;
  if (bias) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == b.size(1) && bias->scalar_type() == at::kFloat,
                "packed_matmul: bias [N] float32 expected");
    bias_c = bias->contiguous();
  }
  Tensor c = workspace_empty({a.size(0), b.size(1)}, a.options());
#ifdef TRIT_RNN_PACKED_GEMM
  bulk_gemm(a, b, bias_c.defined() ? bias_c.data_ptr<float>() : nullptr, c);
#endif
  return c;
}

// For tests: a [M, K] @ b [K, N] through StepGemm.
Tensor step_gemm_matmul(const Tensor& a, const Tensor& b) {
  Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
  StepGemm(b.contiguous())(out, a);
  return out;
}
