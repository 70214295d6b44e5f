"""CPU speed of the complex dense recurrence against the real one at the same real FLOPs: complex H
against real 2H (a complex multiply-add is four real ones, so [B, H] x [H, H] complex costs what
[B, 2H] x [2H, 2H] real does). Forward + backward through dense_recurrence with the torch backend,
every gradient, timed in interleaved rounds; medians per step.

    python -m trit_rnn.perf.complex_speed --seq-len 1000 --batch 32 --hidden 64 --rounds 11
"""

from __future__ import annotations

import argparse

import torch

from ..functional import dense_recurrence
from .timing import time_interleaved


def _fwd_bwd(pre, weight, h0, act_bias, grad_out, nonlinearity: str):
    """One forward + backward (a zero-argument callable) with gradients for every input."""
    leaves = [x.detach().requires_grad_() if x is not None else None for x in (pre, weight, h0, act_bias)]

    def run():
        for leaf in leaves:
            if leaf is not None:
                leaf.grad = None
        outputs, _ = dense_recurrence(
            *leaves[:3], nonlinearity=nonlinearity, act_bias=leaves[3], backend="torch"
        )
        outputs.backward(grad_out)

    return run


def _case(T, B, H, dtype, nonlinearity, generator):
    """pre [T, B, H], a unitary/orthogonal weight [H, H], h0 [B, H], act_bias [H], grad_out [T, B, H]."""

    def randn(*shape):
        return torch.randn(*shape, dtype=dtype, generator=generator)

    real_dtype = torch.float32
    act_bias = None
    if nonlinearity == "modrelu":
        act_bias = torch.rand(H, dtype=real_dtype, generator=generator) * 0.35 - 0.3
    return randn(T, B, H) * 0.5, torch.linalg.qr(randn(H, H))[0], randn(B, H) * 0.5, act_bias, randn(T, B, H)


def compare(T: int, B: int, H: int, nonlinearity: str, rounds: int) -> dict[str, float]:
    """Median seconds per step of the real 2H and the complex H recurrence, measured side by side."""
    generator = torch.Generator().manual_seed(0)
    contestants = {
        f"real H={2 * H}": _fwd_bwd(
            *_case(T, B, 2 * H, torch.float32, nonlinearity, generator), nonlinearity
        ),
        f"complex H={H}": _fwd_bwd(*_case(T, B, H, torch.complex64, nonlinearity, generator), nonlinearity),
    }
    timings = time_interleaved(contestants, rounds=rounds, warmup=1)
    return {name: timing.median / T for name, timing in timings.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--hidden", type=int, default=64, help="complex hidden size (the real one is twice it)"
    )
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--nonlinearity", nargs="+", default=["modrelu", "identity"])
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    for nonlinearity in args.nonlinearity:
        per_step = compare(args.seq_len, args.batch, args.hidden, nonlinearity, args.rounds)
        real = next(iter(per_step.values()))
        for name, seconds in per_step.items():
            print(
                f"{nonlinearity:9s} threads={torch.get_num_threads()} {name:14s} "
                f"{seconds * 1e6:7.1f} us/step  x{seconds / real:.2f}"
            )


if __name__ == "__main__":
    main()
