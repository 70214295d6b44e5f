"""The pure-PyTorch backend of the gated recurrences (LSTM, GRU), and the contract every gated
backend (this one, kernels/gated/launch.py) implements with the same signatures.

Contract
--------
Gate layout and equations are torch.nn.LSTM's and torch.nn.GRU's (cuDNN's), so that their
state_dicts load unchanged. Storage dtype float32/float64/bfloat16/float16; the state and every
accumulation are compute_dtype (float64 for float64, else float32). All returned tensors are new.

LSTM, G = 4 blocks (i, f, g, o) of H columns:
    a_t = pre_t + h_{t-1} @ weight_hh^T + bias         pre [T, B, 4H] holds x W_ih^T (+ biases)
    i, f, o = sigmoid(a_i, a_f, a_o),  g = tanh(a_g)
    c_t = f * c_{t-1} + i * g,         h_t = o * tanh(c_t)

lstm_forward(pre, weight_hh, h0, c0, bias=None) -> (outputs, h_n, c_n, gates, cells)
    weight_hh [4H, H]; h0, c0 [B, H] or None (zeros); bias [4H] or None (b_ih + b_hh, or in pre).
    outputs [T, B, H] = h_1..h_T and h_n, c_n [B, H] in pre's dtype; gates [T, B, 4H] =
    (i, f, g, o) after their activations and cells [T, B, H] = c_1..c_T, in compute_dtype (what
    the backward reads).
lstm_backward(grad_out, grad_hn, grad_cn, outputs, gates, cells, h0, c0, weight_hh, bias_grad=False)
        -> (d_gates, dh0, dc0, d_bias)
    grad_out [T, B, H] (never None), grad_hn / grad_cn [B, H] or None. d_gates [T, B, 4H] is the
    gradient of a_t (so of pre), dh0 / dc0 [B, H], d_bias [4H] = sum_{t,b} d_gates when bias_grad
    (else None), all in compute_dtype:
        dh_t = grad_out_t + d_gates_{t+1} @ weight_hh   (dh_T = grad_out_T + grad_hn)
        dc_t = dc_{t+1} * f_{t+1} + dh_t * o (1 - tanh(c_t)^2)   (dc_T's first term is grad_cn)
        d a_i = dc_t g i (1 - i),  d a_f = dc_t c_{t-1} f (1 - f),  d a_g = dc_t i (1 - g^2),
        d a_o = dh_t tanh(c_t) o (1 - o)
        dh0 = d_gates_1 @ weight_hh,  dc0 = dc_1 * f_1

GRU, G = 3 blocks (r, z, n); GORU is the same recurrence with a modReLU candidate:
    q_t = h_{t-1} @ weight_hh^T + bias_hh               pre [T, B, 3H] holds x W_ih^T + b_ih
    r, z = sigmoid(pre_r + q_r, pre_z + q_z),  n = f(a_n),  a_n = pre_n + r * q_n
    h_t = (1 - z) * n + z * h_{t-1}
    f = "tanh" (GRU) or "modrelu" (GORU: sign(a) relu(|a| + act_bias), act_bias [H]); "relu" and
    "identity" work too.

gru_forward(pre, weight_hh, bias_hh, h0, act_bias, nonlinearity) -> (outputs, h_n, gates, hidden_n)
    weight_hh [3H, H], bias_hh [3H] or None, act_bias [H] (modReLU only) or None. gates [T, B, 3H] =
    (r, z, n) after their activations and hidden_n [T, B, H] = q_n (the recurrent part of the
    candidate, bias included), compute_dtype.
gru_backward(grad_out, grad_hn, outputs, gates, hidden_n, h0, weight_hh, nonlinearity)
        -> (d_pre, d_hidden, dh0)
    d_pre [T, B, 3H] is the gradient of pre and d_hidden [T, B, 3H] that of q (they differ in the
    n block only: d q_n = d a_n * r), dh0 [B, H], in compute_dtype:
        d a_n = dh_t (1 - z) f'(a_n),  d a_z = dh_t (h_{t-1} - n) z (1 - z),
        f' from n alone: 1 - n^2 (tanh), [n != 0] (relu, modReLU: 1 where the unit is active), 1
        (identity),
        d a_r = d a_n q_n r (1 - r)
        dh_{t-1} = grad_out_{t-1} + dh_t * z + d_hidden_t @ weight_hh,  dh0 likewise at t = 1

What the caller (trit_rnn/autograd/gated.py) computes in bulk, not the backend:
    d weight_hh = sum_t d_{gates or hidden}_t^T h_{t-1} (one GEMM), d bias_hh = sum of d_hidden,
    d act_bias = sum of d a_n sign(n) (modReLU: dn/db = sign(a) where active, and d a_n is 0 where not).

This backend
------------
On a CPU the loops run compiled (compiled_loops.py, csrc/time_loops.cpp: one GEMM and one fused
pass per step, each thread walking the whole sequence for its own block of batch rows) where that
module builds; the Python loops below are the fallback and the reference for them, with the same
equations. No autograd over a loop: per step one GEMM
(cpu_gemm.StepGemm: addmm or oneDNN, whichever is faster here) and a few in-place pointwise ops on views of one [B, G*H] row. The loop reads pre as it is (no bulk
copy: each step's GEMM output is fresh in cache, while a [T, ...] buffer's rows are not) and tanh
is 2 sigmoid(2x) - 1 (a float32 tanh on the CPU costs about 5x a sigmoid at these sizes), so one
sigmoid covers every LSTM gate after the g block is doubled. The backward computes every
coefficient that does not depend on the carried gradient in bulk, a chunk of steps at a time, then
walks the chunk with one GEMM and four or five pointwise ops per step.
"""

import torch

from ..nonlinearity import Nonlinearity
from . import compiled_loops
from .cpu_gemm import StepGemm
from .torch_dense import compute_dtype

# Backward chunk: the coefficients of this many (step, batch, unit) elements at once, so that their
# bulk elementwise passes stay in cache.
_CHUNK_ELEMENTS = 1 << 17


def _chunks(T: int, B: int, H: int):
    """(start, stop) pairs covering 0..T from the end, each a few hundred KB of [L, B, H]."""
    length = max(1, _CHUNK_ELEMENTS // (B * H))
    for stop in range(T, 0, -length):
        yield max(0, stop - length), stop


def _tanh_from_sigmoid_(x: torch.Tensor) -> torch.Tensor:
    """x <- 2 x - 1 in place: tanh(a) from sigmoid(2a)."""
    return x.mul_(2).sub_(1)


def _initial(state, B, H, dtype, device) -> torch.Tensor:
    return state.to(dtype) if state is not None else torch.zeros((B, H), dtype=dtype, device=device)


def _steps_of(pre: torch.Tensor, dtype) -> torch.Tensor:
    """pre itself when the loop can read it as is, else a contiguous compute-dtype copy."""
    if pre.dtype == dtype and pre.is_contiguous():
        return pre
    return pre.to(dtype, memory_format=torch.contiguous_format)


def lstm_forward(pre, weight_hh, h0, c0, bias=None):
    """The LSTM forward of the contract above."""
    T, B, G = pre.shape
    H = G // 4
    dtype = compute_dtype(pre.dtype)
    bias = bias.to(dtype).contiguous() if bias is not None else None
    if T > 0 and compiled_loops.applies(pre, weight_hh):
        h, c = (_initial(s, B, H, dtype, pre.device).contiguous() for s in (h0, c0))
        w_t = weight_hh.to(dtype).t().contiguous()  # [H, 4H]
        outputs, gates, cells = compiled_loops.loops().lstm_forward(
            _steps_of(pre, dtype).contiguous(), w_t, bias, h, c
        )
        last = (outputs[T - 1].to(pre.dtype, copy=True), cells[T - 1].to(pre.dtype, copy=True))
        return outputs.to(pre.dtype), *last, gates, cells
    gemm = StepGemm(weight_hh.to(dtype), B, bias)  # pre_t + h @ W^T + bias
    gates = torch.empty((T, B, G), dtype=dtype, device=pre.device)
    cells = torch.empty((T, B, H), dtype=dtype, device=pre.device)
    outputs = torch.empty((T, B, H), dtype=dtype, device=pre.device)
    h = _initial(h0, B, H, dtype, pre.device)
    c = _initial(c0, B, H, dtype, pre.device)
    steps = zip(
        _steps_of(pre, dtype).unbind(0), gates.unbind(0), cells.unbind(0), outputs.unbind(0), strict=True
    )
    for p, a, c_t, h_t in steps:
        z = gemm(h, p)  # [B, 4H], fresh: in cache, unlike the rows of the [T, ...] buffers
        z[:, 2 * H : 3 * H].mul_(2)
        i, f, g, o = torch.sigmoid(z, out=a).split(H, dim=1)
        _tanh_from_sigmoid_(g)
        torch.mul(f, c, out=c_t).addcmul_(i, g)
        torch.mul(c_t, 2, out=h_t).sigmoid_()
        _tanh_from_sigmoid_(h_t).mul_(o)
        h, c = h_t, c_t
    return outputs.to(pre.dtype), h.to(pre.dtype, copy=True), c.to(pre.dtype, copy=True), gates, cells


def _lstm_coefficients(gates, cells, c_first):
    """For steps [L] of a chunk: k_gates [L, B, 4H] with d a = k_gates * (dc, dc, dc, dh) and
    k_cell [L, B, H] with dc += dh * k_cell. c_first [B, H] is the cell state before the chunk."""
    i, f, g, o = gates.split(gates.shape[-1] // 4, dim=-1)
    tanh_c = torch.tanh(cells)
    c_prev = torch.cat([c_first.unsqueeze(0), cells[:-1]])
    k_gates = torch.cat(
        [g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g), tanh_c * o * (1 - o)], dim=-1
    )
    k_cell = o * (1 - tanh_c * tanh_c)
    return k_gates, k_cell


def lstm_backward(grad_out, grad_hn, grad_cn, outputs, gates, cells, h0, c0, weight_hh, bias_grad=False):
    """The LSTM backward of the contract above (d_bias summed inside the compiled loop's pass)."""
    T, B, H = outputs.shape
    dtype = gates.dtype
    w = weight_hh.to(dtype)  # [4H, H]
    grad = grad_out.to(dtype)
    dc = _initial(grad_cn, B, H, dtype, gates.device).clone()
    c0 = _initial(c0, B, H, dtype, gates.device)
    dh = grad[T - 1] if grad_hn is None else grad[T - 1] + grad_hn.to(dtype)
    if compiled_loops.applies(gates, w):
        operands = (compiled_loops.contiguous_in_workspace(grad, dtype), dh, dc, gates, cells, c0, w)
        d_gates, dc0, d_bias = compiled_loops.loops().lstm_backward(
            *(t.contiguous() for t in operands), bias_grad
        )
        return d_gates, d_gates[0] @ w, dc0, d_bias if bias_grad else None
    grad_steps = grad.unbind(0)
    gemm = StepGemm(w.t(), B)  # d_gates @ W
    d_gates = torch.empty((T, B, 4 * H), dtype=dtype, device=gates.device)
    d_steps, forget = d_gates.unbind(0), gates[:, :, H : 2 * H].unbind(0)
    for start, stop in _chunks(T, B, H):
        c_first = cells[start - 1] if start > 0 else c0
        k_gates, k_cell = _lstm_coefficients(gates[start:stop], cells[start:stop], c_first)
        steps = zip(
            range(stop - 1, start - 1, -1), k_gates.unbind(0)[::-1], k_cell.unbind(0)[::-1], strict=True
        )
        for t, k, k_c in steps:
            if t < T - 1:
                dh = gemm(d_steps[t + 1], grad_steps[t])
                dc.mul_(forget[t + 1])
            dc.addcmul_(dh, k_c)
            d = d_steps[t]
            torch.mul(k[:, : 3 * H].view(B, 3, H), dc.unsqueeze(1), out=d[:, : 3 * H].view(B, 3, H))
            torch.mul(k[:, 3 * H :], dh, out=d[:, 3 * H :])
    d_bias = d_gates.sum((0, 1)) if bias_grad else None
    return d_gates, d_gates[0] @ w, dc * gates[0, :, H : 2 * H], d_bias


def _candidate_(a: torch.Tensor, nonlinearity: Nonlinearity, act_bias, scratch) -> None:
    """a <- f(a) in place for the candidate."""
    if nonlinearity is Nonlinearity.TANH:
        _tanh_from_sigmoid_(a.mul_(2).sigmoid_())
    elif nonlinearity is Nonlinearity.RELU:
        a.relu_()
    elif nonlinearity is Nonlinearity.MODRELU:
        torch.abs(a, out=scratch).add_(act_bias).relu_()
        a.sign_().mul_(scratch)


def gru_forward(pre, weight_hh, bias_hh, h0, act_bias=None, nonlinearity="tanh"):
    """The GRU (and GORU) forward of the contract above."""
    nonlinearity = Nonlinearity(nonlinearity)
    T, B, G = pre.shape
    H = G // 3
    dtype = compute_dtype(pre.dtype)
    bias = bias_hh.to(dtype).contiguous() if bias_hh is not None else None
    act = act_bias.to(dtype).contiguous() if act_bias is not None else None
    if T > 0 and compiled_loops.applies(pre, weight_hh):
        h = _initial(h0, B, H, dtype, pre.device).contiguous()
        w_t = weight_hh.to(dtype).t().contiguous()  # [H, 3H]
        outputs, gates, hidden_n = compiled_loops.loops().gru_forward(
            _steps_of(pre, dtype).contiguous(),
            w_t,
            bias,
            h,
            act,
            compiled_loops.ACTIVATION_CODES[nonlinearity],
        )
        return outputs.to(pre.dtype), outputs[T - 1].to(pre.dtype, copy=True), gates, hidden_n
    gemm = StepGemm(weight_hh.to(dtype), B, bias)  # q = h @ W^T + b
    gates = torch.empty((T, B, G), dtype=dtype, device=pre.device)
    hidden_n = torch.empty((T, B, H), dtype=dtype, device=pre.device)
    outputs = torch.empty((T, B, H), dtype=dtype, device=pre.device)
    scratch = torch.empty((B, H), dtype=dtype, device=pre.device)
    h = _initial(h0, B, H, dtype, pre.device)
    steps = zip(
        _steps_of(pre, dtype).unbind(0), gates.unbind(0), hidden_n.unbind(0), outputs.unbind(0), strict=True
    )
    for p, a, q_n, h_t in steps:
        q = gemm(h)  # [B, 3H]
        torch.add(p[:, : 2 * H], q[:, : 2 * H], out=a[:, : 2 * H]).sigmoid_()
        r, z, n = a.split(H, dim=1)
        q_n.copy_(q[:, 2 * H :])
        _candidate_(torch.addcmul(p[:, 2 * H :], r, q_n, out=n), nonlinearity, act, scratch)
        torch.sub(h, n, out=h_t).mul_(z).add_(n)
        h = h_t
    return outputs.to(pre.dtype), h.to(pre.dtype, copy=True), gates, hidden_n


# The candidate functions as time_loops.cpp numbers them


def _candidate_derivative(n: torch.Tensor, nonlinearity: Nonlinearity) -> torch.Tensor:
    """f'(a) [L, B, H] written from the candidate n = f(a) alone."""
    if nonlinearity is Nonlinearity.TANH:
        return 1 - n * n
    if nonlinearity is Nonlinearity.IDENTITY:
        return torch.ones_like(n)
    return (n != 0).to(n.dtype)  # relu and modReLU: 1 where the unit is active


def _gru_coefficients(gates, hidden_n, h_prev, nonlinearity):
    """For steps [L] of a chunk, contiguous [L, B, H] each: k_n, k_z, k_r with d a_n = dh k_n,
    d a_z = dh k_z, d a_r = d a_n k_r, and the gates r and z. h_prev [L, B, H] are the states
    before each step."""
    r, z, n = gates.split(gates.shape[-1] // 3, dim=-1)
    k_n = (1 - z) * _candidate_derivative(n, nonlinearity)
    k_z = (h_prev - n) * z * (1 - z)
    k_r = hidden_n * r * (1 - r)
    return k_n, k_z, k_r, r.contiguous(), z.contiguous()


def gru_backward(grad_out, grad_hn, outputs, gates, hidden_n, h0, weight_hh, nonlinearity="tanh"):
    """The GRU (and GORU) backward of the contract above."""
    nonlinearity = Nonlinearity(nonlinearity)
    T, B, H = outputs.shape
    dtype = gates.dtype
    w = weight_hh.to(dtype)  # [3H, H]
    states = outputs.to(dtype)
    h0 = _initial(h0, B, H, dtype, gates.device)
    if compiled_loops.applies(gates, w):
        grad = compiled_loops.contiguous_in_workspace(grad_out, dtype)
        last = grad[T - 1] if grad_hn is None else grad[T - 1] + grad_hn.to(dtype)
        operands = (grad, last, states, gates, hidden_n, h0, w)
        d_pre, d_hidden, dh0 = compiled_loops.loops().gru_backward(
            *(t.contiguous() for t in operands), compiled_loops.ACTIVATION_CODES[nonlinearity]
        )
        return d_pre, d_hidden, dh0
    grad_steps = grad_out.to(dtype).unbind(0)
    gemm = StepGemm(w.t(), B)  # d_hidden @ W
    zeros = torch.zeros((B, H), dtype=dtype, device=gates.device)
    d_hidden = torch.empty((T, B, 3 * H), dtype=dtype, device=gates.device)
    d_candidate = torch.empty((T, B, H), dtype=dtype, device=gates.device)
    dh = grad_steps[T - 1] if grad_hn is None else grad_steps[T - 1] + grad_hn.to(dtype)
    for start, stop in _chunks(T, B, H):
        before = (
            states[start - 1 : stop - 1] if start > 0 else torch.cat([h0.unsqueeze(0), states[: stop - 1]])
        )
        coefficients = _gru_coefficients(gates[start:stop], hidden_n[start:stop], before, nonlinearity)
        # per-step views from unbind lists: indexing a tensor per step costs about a microsecond
        steps = zip(
            *(c.unbind(0)[::-1] for c in coefficients),
            d_candidate[start:stop].unbind(0)[::-1],
            d_hidden[start:stop].unbind(0)[::-1],
            (grad_steps[start - 1 : stop - 1] if start > 0 else (zeros, *grad_steps[: stop - 1]))[::-1],
            strict=True,
        )
        for k_n, k_z, k_r, r, z, d_candidate_t, d_hidden_t, grad_before in steps:
            d_n = torch.mul(dh, k_n, out=d_candidate_t)
            # the three blocks in cache, then one contiguous write of the [B, 3H] row
            torch.cat([d_n * k_r, dh * k_z, d_n * r], dim=1, out=d_hidden_t)
            dh = gemm(d_hidden_t, torch.addcmul(grad_before, dh, z))
    d_pre = d_hidden.clone()  # d pre equals d q except in the candidate block
    d_pre[..., 2 * H :] = d_candidate
    return d_pre, d_hidden, dh
