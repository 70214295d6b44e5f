// Reused CPU buffers for the big tensors of the time loops (saved activations, step gradients,
// the input projection): what a training step allocates, the next one takes back.
//
// Why: a fresh tensor of tens of MB comes from mmap, and every 4 KB page of it faults on first
// touch. On a 2-core VM 97 MB of fresh buffers cost 30-50 ms to fill against 7-10 ms for warm
// ones, a fifth of an LSTM training step at B = 32, T = 1000, H = 128. torch's CPU allocator keeps
// nothing, so the loops keep their own buffers, as the CUDA caching allocator does on a GPU.
//
// A buffer is free again when nothing but this pool holds its storage (storage().use_count() == 1:
// every view, saved tensor and Python object holds a reference). Idle buffers above the byte cap
// (set_workspace_limit, TRIT_RNN_CPU_WORKSPACE_MB in Python) are released, oldest first.
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/accumulate.h>

#include <mutex>
#include <vector>

namespace {

// Below this a buffer is a few pages: malloc's own free lists already reuse it.
constexpr int64_t kMinPooledBytes = 1 << 20;

struct Pool {
  std::mutex mutex;
  std::vector<at::Tensor> buffers;  // flat [numel] tensors
  int64_t limit_bytes = int64_t(2) << 30;
};

Pool& pool() {
  static Pool instance;
  return instance;
}

bool idle(const at::Tensor& buffer) { return buffer.storage().use_count() == 1; }

// Releases idle buffers, oldest first, until the idle ones hold at most limit bytes.
void trim(Pool& p, int64_t limit) {
  int64_t idle_bytes = 0;
  for (const auto& buffer : p.buffers) idle_bytes += idle(buffer) ? int64_t(buffer.nbytes()) : 0;
  for (auto it = p.buffers.begin(); it != p.buffers.end() && idle_bytes > limit;) {
    if (idle(*it)) {
      idle_bytes -= int64_t(it->nbytes());
      it = p.buffers.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace

// A tensor of these sizes, from an idle buffer of this dtype (the smallest that is large enough
// and at most 5/4 of the request, so that outputs a caller keeps waste little) or a new one kept
// for later; small or non-CPU requests are plain.
at::Tensor workspace_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  const int64_t numel = c10::multiply_integers(sizes);
  const int64_t nbytes = numel * int64_t(options.dtype().itemsize());
  Pool& p = pool();
  if (nbytes < kMinPooledBytes || options.device().type() != at::kCPU || p.limit_bytes == 0) {
    return at::empty(sizes, options);
  }
  std::lock_guard<std::mutex> lock(p.mutex);
  const at::Tensor* best = nullptr;
  for (const auto& buffer : p.buffers) {
    const int64_t size = int64_t(buffer.nbytes());
    if (buffer.dtype() == options.dtype() && size >= nbytes && 4 * size <= 5 * nbytes && idle(buffer) &&
        (best == nullptr || size < int64_t(best->nbytes()))) {
      best = &buffer;
    }
  }
  if (best != nullptr) return best->narrow(0, 0, numel).view(sizes);
  p.buffers.push_back(at::empty({numel}, options));
  at::Tensor result = p.buffers.back().view(sizes);
  trim(p, p.limit_bytes);
  return result;
}

at::Tensor workspace_empty_op(at::IntArrayRef sizes, at::ScalarType dtype) {
  return workspace_empty(sizes, at::TensorOptions().dtype(dtype));
}

// The byte cap on idle buffers; 0 releases them all and turns the pool off. Returns the bytes the
// pool holds afterwards (busy buffers included).
int64_t set_workspace_limit(int64_t limit_bytes) {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  p.limit_bytes = std::max<int64_t>(0, limit_bytes);
  trim(p, p.limit_bytes);
  int64_t held = 0;
  for (const auto& buffer : p.buffers) held += int64_t(buffer.nbytes());
  return held;
}
