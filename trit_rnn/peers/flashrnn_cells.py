"""flashrnn (NX-AI) cells through its functional entry point `flashrnn.flashrnn(Wx, R, b, ...)`.

flashrnn takes the input projection Wx [B, T, G, heads, head_dim] precomputed, recurrent weights
R [G, heads, head_dim_out, head_dim_in] and a bias b [G, heads, head_dim]; it returns all states
[S, B, T, heads, head_dim] and the last one. One head (head_dim = H) makes R a dense H x H matrix,
the same recurrence as torch.nn.RNN/LSTM.

Backends this adapter offers: "vanilla" (a PyTorch loop over steps, any device) and
"triton_fused" (one Triton kernel per sequence, CUDA only; flashrnn implements it for LSTM and
sLSTM only, with a power-of-two head_dim).
"""

import math

import torch
from torch import nn

from .external import require_api

# gates per step (all of them read the input and the recurrent state) and states per step.
FUNCTIONS = {"elman": (1, 1), "lstm": (4, 2)}
BACKEND_FUNCTIONS = {"vanilla": ("elman", "lstm"), "triton_fused": ("lstm",)}
_DTYPE_NAMES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
}


class FlashRNN(nn.Module):
    """x [T, B, I] -> (h [T, B, H], last states [S, B, H]); for "lstm" the states are (h, c)."""

    def __init__(self, input_size, hidden_size, *, function, backend, num_heads=1, device=None, dtype=None):
        super().__init__()
        if function not in FUNCTIONS:
            raise ValueError(f"function must be one of {', '.join(FUNCTIONS)}; got {function!r}")
        if backend not in BACKEND_FUNCTIONS:
            raise ValueError(f"backend must be one of {', '.join(BACKEND_FUNCTIONS)}; got {backend!r}")
        if function not in BACKEND_FUNCTIONS[backend]:
            raise ValueError(f"flashrnn's {backend!r} backend has no {function!r} cell")
        if hidden_size % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide hidden_size={hidden_size}")
        head_dim = hidden_size // num_heads
        if backend == "triton_fused" and head_dim & (head_dim - 1):
            raise ValueError(f"flashrnn's triton_fused backend needs a power-of-two head_dim; got {head_dim}")
        self._flashrnn = require_api("flashrnn", "flashrnn", distribution="flashrnn", tested="1.0.8")
        self.function, self.backend = function, backend
        self.hidden_size, self.num_heads, self.head_dim = hidden_size, num_heads, head_dim
        self.num_gates, self.num_states = FUNCTIONS[function]
        factory = {"device": device, "dtype": dtype}
        self.input = nn.Linear(input_size, self.num_gates * hidden_size, bias=False, **factory)
        self.recurrent = nn.Parameter(torch.empty(self.num_gates, num_heads, head_dim, head_dim, **factory))
        self.bias = nn.Parameter(torch.empty(self.num_gates, num_heads, head_dim, **factory))
        bound = 1 / math.sqrt(hidden_size)  # torch.nn.RNN's initialisation
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x, hx=None):
        T, B, _ = x.shape
        wx = self.input(x).view(T, B, self.num_gates, self.num_heads, self.head_dim).transpose(0, 1)
        states = None
        if hx is not None:
            # [S, B, H] -> flashrnn's [S, B, 1, heads, head_dim]
            states = hx.reshape(self.num_states, B, 1, self.num_heads, self.head_dim)
        h, last = self._flashrnn(
            wx,
            self.recurrent,
            self.bias,
            states,
            function=self.function,
            backend=self.backend,
            dtype=_DTYPE_NAMES[self.recurrent.dtype],
        )
        out = h[0].transpose(0, 1).reshape(T, B, self.hidden_size)
        return out, last.reshape(self.num_states, B, self.hidden_size)
