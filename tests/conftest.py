"""Test configuration: run every Triton kernel under the interpreter on CPU tensors.

TRITON_INTERPRET is read when ``@triton.jit`` decorates a function, so it is set here, before any
kernel module is imported.
"""

import os
import tempfile

os.environ["TRITON_INTERPRET"] = "1"
# Autotune choices made by the tests go to a throw-away cache, never the user's.
os.environ["TRIT_RNN_CACHE_DIR"] = tempfile.mkdtemp(prefix="trit_rnn_test_cache_")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402


def _widen_bf16_dot_in_interpreter():
    """The interpreter multiplies the raw uint16 bit patterns of bfloat16 dot operands (triton
    3.7-3.9). Widen them to float32 (bits << 16) so that bf16 kernels are checked, not garbage."""
    from triton.runtime import interpreter

    builder_cls = interpreter.InterpreterBuilder
    original = builder_cls.create_dot
    if getattr(original, "_trit_rnn_widened", False):
        return

    def _as_float32(handle):
        if handle.dtype.primitive_bitwidth == 16 and handle.dtype.is_bf16():
            return (handle.data.astype(np.uint32) << 16).view(np.float32)
        return handle.data

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        if a.dtype.is_bf16() or b.dtype.is_bf16():
            product = np.matmul(_as_float32(a), _as_float32(b), dtype=np.float32)
            return interpreter.TensorHandle(product + d.data, d.dtype.scalar)
        return original(self, a, b, d, input_precision, max_num_imprecise_acc)

    create_dot._trit_rnn_widened = True
    builder_cls.create_dot = create_dot


_widen_bf16_dot_in_interpreter()
# One intra-op thread: the tests' tensors are tiny, and on a machine shared with other jobs each
# small op of a second OpenMP thread waits for a worker pushed off the CPU (one training step was
# measured 44 ms with 1 thread against 2,980 ms with 2 while another job ran).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
