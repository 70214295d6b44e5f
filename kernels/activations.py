"""Pointwise activations of the recurrent kernels and their derivatives, selected by a constexpr code.

Every derivative is written as a function of the activation's OUTPUT h, so that a backward kernel
needs only the stored outputs (never the pre-activations). The codes are shared with the
launchers' NONLINEARITIES tables.

No libdevice here: the interpreter has no tl.tanh and no libdevice, so tanh is built from exp.
"""

import triton
import triton.language as tl

IDENTITY = tl.constexpr(0)
TANH = tl.constexpr(1)
RELU = tl.constexpr(2)
MODRELU = tl.constexpr(3)

NONLINEARITIES = {"identity": 0, "tanh": 1, "relu": 2, "modrelu": 3}


@triton.jit
def tanh(x):
    # exp of a non-positive argument never overflows, in any dtype.
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def modrelu(z, act_bias):
    """sign(z) * relu(|z| + act_bias); act_bias broadcasts along the hidden dimension."""
    magnitude = tl.maximum(tl.abs(z) + act_bias, 0.0)
    return tl.where(z > 0, magnitude, tl.where(z < 0, -magnitude, 0.0))


@triton.jit
def activate(z, act_bias, ACTIVATION: tl.constexpr):
    """h = f(z). act_bias is used by modrelu only (pass anything broadcastable otherwise)."""
    if ACTIVATION == TANH:
        h = tanh(z)
    elif ACTIVATION == RELU:
        h = tl.maximum(z, 0.0)
    elif ACTIVATION == MODRELU:
        h = modrelu(z, act_bias)
    else:
        h = z
    return h


@triton.jit
def derivative_from_output(h, ACTIVATION: tl.constexpr):
    """f'(z) written through h = f(z): identity 1, tanh 1 - h^2, relu (h > 0), modrelu (h != 0).

    modrelu: where the unit is active h = z + sign(z) * act_bias, so dh/dz = 1; elsewhere h = 0.
    """
    if ACTIVATION == TANH:
        d = 1.0 - h * h
    elif ACTIVATION == RELU:
        d = tl.where(h > 0, 1.0, 0.0).to(h.dtype)
    elif ACTIVATION == MODRELU:
        d = tl.where(h != 0, 1.0, 0.0).to(h.dtype)
    else:
        d = tl.full(h.shape, 1.0, h.dtype)
    return d
