"""The per-cell pointwise steps of the gated kernel family (LSTM, GRU) and their backward.

A cell is data for the templates in forward.py / backward.py: its code (the CELL constexpr), its
number of recurrent matrices G, and the @triton.jit functions below. The gate layout and the
equations are torch.nn.LSTM's (i, f, g, o) and torch.nn.GRU's (r, z, n), as stated in the contract
at the top of trit_rnn/backends/torch_gated.py; the GRU's candidate activation is a constexpr
(tanh; modReLU for the GORU; relu, identity), codes of kernels/activations.py.

Every function works on [BLOCK_B, BLOCK_H] tiles of the state dtype. No libdevice (the interpreter
has none): sigmoid is tl.sigmoid, tanh is built from exp (kernels/activations.py). The backward
functions read the activations the forward stored (gates after their nonlinearity), never the
pre-activations.
"""

import triton
import triton.language as tl

from ..activations import activate, derivative_from_output, tanh

LSTM = tl.constexpr(0)
GRU = tl.constexpr(1)

# cell name -> CELL constexpr code, and number of recurrent matrices (gate blocks) G.
CELLS = {"lstm": 0, "gru": 1}
GATES = {"lstm": 4, "gru": 3}


@triton.jit
def lstm_step(a_i, a_f, a_g, a_o, c):
    """One LSTM step from the gate pre-activations a = pre_t + h_{t-1} @ weight_hh^T and c_{t-1}:
    i, f, o = sigmoid(a_i, a_f, a_o), g = tanh(a_g), c_t = f c_{t-1} + i g, h_t = o tanh(c_t).
    Returns (i, f, g, o, c_t, h_t)."""
    i = tl.sigmoid(a_i)  # [BLOCK_B, BLOCK_H]
    f = tl.sigmoid(a_f)  # [BLOCK_B, BLOCK_H]
    g = tanh(a_g)  # [BLOCK_B, BLOCK_H]
    o = tl.sigmoid(a_o)  # [BLOCK_B, BLOCK_H]
    c = f * c + i * g  # [BLOCK_B, BLOCK_H]
    h = o * tanh(c)  # [BLOCK_B, BLOCK_H]
    return i, f, g, o, c, h


@triton.jit
def lstm_step_backward(dh, dc, i, f, g, o, c, c_prev):
    """The LSTM step's backward. dh = dL/dh_t (all of it), dc = the part of dL/dc_t that comes from
    step t + 1 (dc_{t+1} f_{t+1}, or grad_cn at t = T), c = c_t, c_prev = c_{t-1}:
        dc_t = dc + dh o (1 - tanh(c_t)^2)
        d a_i = dc_t g i (1 - i),  d a_f = dc_t c_{t-1} f (1 - f),  d a_g = dc_t i (1 - g^2),
        d a_o = dh tanh(c_t) o (1 - o)
    Returns (d a_i, d a_f, d a_g, d a_o, dc_t f_t): the last is what step t - 1 receives (dc0 at t = 1)."""
    tanh_c = tanh(c)  # [BLOCK_B, BLOCK_H]
    dc = dc + dh * o * (1.0 - tanh_c * tanh_c)  # [BLOCK_B, BLOCK_H]
    d_i = dc * g * i * (1.0 - i)  # [BLOCK_B, BLOCK_H]
    d_f = dc * c_prev * f * (1.0 - f)  # [BLOCK_B, BLOCK_H]
    d_g = dc * i * (1.0 - g * g)  # [BLOCK_B, BLOCK_H]
    d_o = dh * tanh_c * o * (1.0 - o)  # [BLOCK_B, BLOCK_H]
    return d_i, d_f, d_g, d_o, dc * f


@triton.jit
def gru_step(p_r, p_z, p_n, q_r, q_z, q_n, h, act_bias, ACTIVATION: tl.constexpr):
    """One GRU step from pre_t's blocks p and q = h_{t-1} @ weight_hh^T + bias_hh's blocks:
    r, z = sigmoid(p_r + q_r, p_z + q_z), n = f(p_n + r q_n), h_t = (1 - z) n + z h_{t-1}.
    f: tanh (GRU), modReLU with act_bias [1, BLOCK_H] (GORU), relu or identity (activations.py).
    Returns (r, z, n, h_t)."""
    r = tl.sigmoid(p_r + q_r)  # [BLOCK_B, BLOCK_H]
    z = tl.sigmoid(p_z + q_z)  # [BLOCK_B, BLOCK_H]
    n = activate(p_n + r * q_n, act_bias, ACTIVATION)  # [BLOCK_B, BLOCK_H]
    h = n + z * (h - n)  # [BLOCK_B, BLOCK_H]
    return r, z, n, h


@triton.jit
def gru_step_backward(dh, r, z, n, q_n, h_prev, ACTIVATION: tl.constexpr):
    """The GRU step's backward. dh = dL/dh_t, q_n the recurrent part of the candidate (bias
    included), h_prev = h_{t-1}; f'(a_n) is written from n = f(a_n) (activations.py: 1 - n^2 for
    tanh, [n != 0] for relu and modReLU, 1 for identity):
        d a_n = dh (1 - z) f'(a_n),  d a_z = dh (h_{t-1} - n) z (1 - z),  d a_r = d a_n q_n r (1 - r)
    Returns (d a_r, d a_z, d a_n, d q_n = d a_n r, dh z): d pre is (d a_r, d a_z, d a_n), d q is
    (d a_r, d a_z, d q_n), and dh z is the direct part of dL/dh_{t-1}."""
    d_n = dh * (1.0 - z) * derivative_from_output(n, ACTIVATION)  # [BLOCK_B, BLOCK_H]
    d_z = dh * (h_prev - n) * z * (1.0 - z)  # [BLOCK_B, BLOCK_H]
    d_r = d_n * q_n * r * (1.0 - r)  # [BLOCK_B, BLOCK_H]
    return d_r, d_z, d_n, d_n * r, dh * z
