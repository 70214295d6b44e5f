"""The input projection x W^T + b of every recurrent layer as a custom op, so that its three GEMMs
(forward, input and weight gradients) run on the CPU's fastest GEMM (backends/cpu_gemm.py);
F.linear's CPU GEMM is MKL's, 2.3-2.5x slower on this project's AMD machines. Outside
torch.compile it runs through its eager twin (autograd/eager.py)."""

import torch

from ..backends import cpu_gemm
from . import eager


def project(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x [..., I] @ weight^T + bias [..., N] on cpu_gemm.linear, without autograd (the op's body;
    also the checkpointed layer's recomputation)."""
    flat = x.reshape(-1, x.shape[-1])  # [M, I]
    return cpu_gemm.linear(flat, weight, bias).view(*x.shape[:-1], weight.shape[0])


input_projection_op = torch.library.custom_op("trit_rnn::input_projection", mutates_args=())(project)


@input_projection_op.register_fake
def _projection_fake(x, weight, bias):
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


def _setup_context(ctx, inputs, output):
    x, weight, bias = inputs
    ctx.save_for_backward(x, weight)
    ctx.has_bias = bias is not None


def _backward(ctx, grad):
    x, weight = ctx.saved_tensors
    needs_x, needs_weight, needs_bias = ctx.needs_input_grad
    flat_grad = grad.reshape(-1, grad.shape[-1]).contiguous()  # [M, N]
    d_x = d_weight = d_bias = None
    if needs_x:
        d_x = cpu_gemm.linear_input_grad(flat_grad, weight).view(x.shape)
    if needs_weight:
        d_weight = cpu_gemm.linear_weight_grad(flat_grad, x.reshape(-1, x.shape[-1]))
    if ctx.has_bias and needs_bias:
        d_bias = flat_grad.sum(0)
    return d_x, d_weight, d_bias


input_projection_op.register_autograd(_backward, setup_context=_setup_context)
InputProjection = eager.eager_function("InputProjection", project, _setup_context, _backward)


def input_projection(x, weight, bias):
    """x @ weight^T + bias [..., N] for checked arguments: where oneDNN runs x's dtype, the op while
    torch.compile traces, else its eager twin; elsewhere F.linear itself."""
    if not (cpu_gemm.onednn_runs(x) and x.numel() > 0):
        return torch.nn.functional.linear(x, weight, bias)
    return eager.call(input_projection_op, InputProjection, x, weight, bias)
