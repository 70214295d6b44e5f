"""Eager twins of the custom ops: the same implementation, setup_context and backward as a plain
torch.autograd.Function, used for plain tensors whenever torch.compile is not tracing.

Why: a torch.library custom op with registered autograd pays its Python dispatch (schema
parsing, pytree flattening, the autograd wrapper) on every call and again in the backward:
130 us of a 650 us training step of one step (B = 32, H = 128) on a 2-core VM, a per-sequence
constant that short sequences feel. torch.compile still traces the registered ops, so
fullgraph compilation and opcheck see exactly what they saw before.
"""

from collections.abc import Callable

import torch


def eager_function(name: str, impl: Callable, setup_context: Callable, backward: Callable):
    """An autograd.Function whose forward is impl(*inputs) followed by setup_context(ctx,
    inputs, output), with the op's backward(ctx, *grads)."""

    def forward(ctx, *inputs):
        output = impl(*inputs)
        setup_context(ctx, inputs, output)
        return output

    return type(
        name,
        (torch.autograd.Function,),
        {"forward": staticmethod(forward), "backward": staticmethod(backward)},
    )


_PLAIN = (torch.Tensor, torch.nn.Parameter)


def runs_eagerly(*inputs) -> bool:
    """Whether `call` takes the eager twin for these inputs (None entries allowed)."""
    plain = all(type(x) in _PLAIN for x in inputs if isinstance(x, torch.Tensor))
    return plain and not torch.compiler.is_compiling() and not torch._C._len_torch_dispatch_stack()


def call(op, function, *inputs):
    """Its eager twin `function` (an eager_function class, or a plain callable for a backward op
    without autograd) for plain tensors outside torch.compile and any dispatch mode, else the
    custom op: traced tensors (fake, functional: aot_autograd, opcheck, make_fx), other
    subclasses and an active TorchDispatchMode (a tracer, a FLOP counter, a spy) see the op."""
    if not runs_eagerly(*inputs):
        return op(*inputs)
    apply = getattr(function, "apply", function)
    return apply(*inputs)
