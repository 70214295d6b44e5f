"""The complex branch of functional.dense_recurrence: validates complex arguments, explains errors,
picks a backend and calls the complex custom ops (trit_rnn/autograd/complex_dense.py)."""

import torch

from . import dispatch
from .autograd import complex_checkpointed as _checkpointed_ops
from .autograd import complex_dense as _complex_ops
from .nonlinearity import Nonlinearity
from .validation import (
    COMPLEX_DTYPES,
    REAL_DTYPE_OF_COMPLEX,
    check_checkpoint_every,
    check_eps,
    check_same,
    check_same_kind,
    check_shape,
    check_tensor,
    describe,
)
from .varlen import check_lengths, run_segments

COMPLEX_NONLINEARITIES = (Nonlinearity.IDENTITY, Nonlinearity.MODRELU)


def _complex_supports(hidden_size: int, dtype: torch.dtype, device: torch.device):
    from .kernels.dense_complex import launch

    return launch.supports(hidden_size, dtype, device)


def _check_act_bias(act_bias, pre: torch.Tensor, H: int) -> None:
    """modReLU's bias is real: the real dtype of pre's complex dtype, one per hidden unit."""
    real_dtype = REAL_DTYPE_OF_COMPLEX[pre.dtype]
    if not isinstance(act_bias, torch.Tensor):
        raise TypeError(f"act_bias must be a torch.Tensor; got {type(act_bias).__name__}")
    if act_bias.dtype != real_dtype:
        raise TypeError(
            f"act_bias must be real with dtype {real_dtype} (modReLU's bias for {pre.dtype} pre); "
            f"got {act_bias.dtype}"
        )
    if act_bias.dim() != 1:
        raise ValueError(f"act_bias must be 1-D; got {describe(act_bias)}")
    check_shape(act_bias, "act_bias", (H,), "one modReLU bias per hidden unit")
    if act_bias.device != pre.device:
        raise ValueError(
            f"act_bias must be on the same device as pre [T, B, H] ({pre.device}); got {act_bias.device}"
        )


def _check_complex_args(pre, weight_hh, h0, nonlinearity, act_bias):
    """pre is complex [T, B, H]; checks the rest against it and returns the parsed Nonlinearity."""
    T, B, H = pre.shape
    where = "taken from pre [T, B, H]"
    for value, argument in ((weight_hh, "weight_hh"), (h0, "h0")):
        check_same_kind(value, argument, pre, "pre [T, B, H]")
    check_tensor(weight_hh, "weight_hh", ndim=2, dtypes=COMPLEX_DTYPES)
    check_shape(weight_hh, "weight_hh", (H, H), f"hidden size {where}")
    check_same(weight_hh, "weight_hh", pre, "pre [T, B, H]")
    if h0 is not None:
        check_tensor(h0, "h0", ndim=2, dtypes=COMPLEX_DTYPES)
        check_shape(h0, "h0", (B, H), f"batch and hidden size {where}")
        check_same(h0, "h0", pre, "pre [T, B, H]")
    nl = Nonlinearity.parse(nonlinearity)
    if nl not in COMPLEX_NONLINEARITIES:
        allowed = " or ".join(repr(n.value) for n in COMPLEX_NONLINEARITIES)
        raise ValueError(
            f"nonlinearity must be {allowed} for complex pre ({pre.dtype}); got {nonlinearity!r}"
        )
    if nl is Nonlinearity.MODRELU:
        if act_bias is None:
            raise ValueError('act_bias [H] is required with nonlinearity="modrelu"; got None')
        _check_act_bias(act_bias, pre, H)
    elif act_bias is not None:
        raise ValueError(f'act_bias is used only with nonlinearity="modrelu"; got nonlinearity={nl.value!r}')
    return nl


def _choose_backend(backend: str, pre: torch.Tensor) -> str:
    dispatch.parse_backend(backend)
    H = pre.shape[-1]
    chosen, reason = dispatch.resolve_backend(
        backend, pre.device, lambda: _complex_supports(H, pre.dtype, pre.device)
    )
    dispatch.log_choice("dense_recurrence (complex)", backend, chosen, reason)
    return chosen


def complex_dense_recurrence(
    pre, weight_hh, h0, *, nonlinearity, act_bias, eps, backend, checkpoint_every, lengths=None
):
    """functional.dense_recurrence for complex pre [T, B, H] (already checked to be a non-empty 3-D
    complex tensor); see its docstring."""
    from .functional import ragged_by_segments

    nl = _check_complex_args(pre, weight_hh, h0, nonlinearity, act_bias)
    eps = check_eps(eps)
    check_checkpoint_every(checkpoint_every)
    lengths = check_lengths(lengths, pre.shape[0], pre.shape[1])
    chosen = _choose_backend(backend, pre)
    # Lazily conjugated inputs (x.conj()) are materialised: backends read the planes directly.
    pre, weight_hh = pre.resolve_conj(), weight_hh.resolve_conj()
    h0 = h0.resolve_conj() if h0 is not None else None
    if ragged_by_segments(chosen, lengths, checkpoint_every):

        def run(chunk, states):
            outputs, h_n = _complex_call(
                chunk, weight_hh, states[0], act_bias, nl, eps, chosen, checkpoint_every
            )
            return outputs, (h_n,)

        outputs, (h_n,) = run_segments(run, pre, (h0,), lengths)
        return outputs, h_n
    lengths = lengths.to(pre.device) if lengths is not None else None
    return _complex_call(pre, weight_hh, h0, act_bias, nl, eps, chosen, checkpoint_every, lengths)


def _complex_call(pre, weight_hh, h0, act_bias, nl, eps, chosen, checkpoint_every, lengths=None):
    if checkpoint_every is None:
        return _complex_ops.complex_dense_recurrence_op(
            pre, weight_hh, h0, act_bias, lengths, nl.value, eps, chosen
        )
    outputs, h_n, _ = _checkpointed_ops.complex_dense_recurrence_checkpointed_op(
        pre, weight_hh, h0, act_bias, nl.value, eps, chosen, checkpoint_every
    )
    return outputs, h_n
