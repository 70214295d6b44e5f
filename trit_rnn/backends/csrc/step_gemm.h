// The step GEMM of the compiled time loops: out [rows, N] = a [rows, K] @ b [K, N] for one fixed
// right operand b, on MKL (at::mm_out) or on a register-blocked AVX2 kernel over b packed once
// per call (step_gemm.cpp, which says which runs where).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

class StepGemm {
 public:
  // b [K, N]. Construct outside the parallel region: it packs b.
  explicit StepGemm(const at::Tensor& b);
  // out [r, N] and a [r, K], unit stride along their rows (r <= rows is fine)
  void operator()(at::Tensor& out, const at::Tensor& a) const;
  bool packed() const { return panels_.defined(); }

 private:
  at::Tensor b_;
  at::Tensor panels_;  // [ceil(N / 16), K, 16]: b in column panels, zero-padded; undefined for MKL
};

// "packed" or "mkl": what StepGemm runs for this dtype here.
std::string step_gemm_kind(at::ScalarType dtype);
// Whether the packed kernel is built and the CPU runs it; whether it is the default here.
bool packed_gemm_available();
bool packed_gemm_preferred();
