"""One small instance of every recurrent module, for the tests that apply to all of them
(torch.compile, determinism, autocast, DDP, state_dict, deepcopy/pickle).

    build(name, backend="torch", **overrides) -> nn.Module
    run_module(module, x) -> (output, [state tensors]); loss_of(output, states) -> scalar
    gradients_of(module, x) -> (names, [output, states, input grad, parameter grads])

Sizes are small (input 3, hidden 8: a power of two, as GORU's FFT-style EUNN and KRU's default
2x2 factors need) so that the triton backend stays cheap under the interpreter. FAMILY names one
module per kernel family (dense, complex dense, gated, deep) for the tests that sample families.
"""

import torch

from trit_rnn import EUNN, GORU, GRU, KRU, LSTM, URNN, DeepTransitionRNN, FullCapacityURNN, OrthogonalRNN

INPUT_SIZE = 3
HIDDEN_SIZE = 8

# name -> (class, constructor options beyond input_size, hidden_size and backend)
SPECS = {
    "orthogonal": (OrthogonalRNN, {}),
    "urnn": (URNN, {}),
    "fullcap_urnn": (FullCapacityURNN, {}),
    "eunn": (EUNN, {}),
    "kru": (KRU, {}),
    "lstm": (LSTM, {}),
    "gru": (GRU, {}),
    "goru": (GORU, {}),
    "deep_transition": (DeepTransitionRNN, {"depth": 2, "deep_output": 1}),
}
NAMES = list(SPECS)
# One module per kernel family: kernels/dense, kernels/dense_complex, kernels/gated, kernels/deep.
FAMILY = {"dense": "orthogonal", "complex": "eunn", "gated": "lstm", "deep": "deep_transition"}


def build(name, backend="torch", *, input_size=INPUT_SIZE, hidden_size=HIDDEN_SIZE, **overrides):
    cls, options = SPECS[name]
    return cls(input_size, hidden_size, backend=backend, **{**options, **overrides})


def state_tensors(state):
    """h_n, or (h_n, c_n), as a list of real tensors (a complex state as its real view)."""
    states = list(state) if isinstance(state, tuple) else [state]
    return [torch.view_as_real(s) if s.is_complex() else s for s in states]


def run_module(module, x, hx=None):
    """(output, [state tensors]) of module(x, hx); the state list as state_tensors gives it."""
    output, state = module(x) if hx is None else module(x, hx)
    return output, state_tensors(state)


def output_weights(output):
    """A fixed pattern over (step, feature), the same for every sequence of the batch [T, B, F], so
    that a loss split over batch shards (DDP) weighs each sequence as the whole batch does."""
    T, F = output.shape[0], output.shape[-1]
    return torch.linspace(-1, 1, T * F, dtype=output.dtype, device=output.device).view(T, 1, F)


def loss_of(output, states):
    """A scalar that puts a gradient on every output and every state: sum(output * weights) + the
    sum of the states' squares."""
    return (output * output_weights(output)).sum() + sum(s.square().sum() for s in states)


def gradients_of(module, x, hx=None):
    """Forward and backward once: [output, *states, x.grad, *(parameter grads in named order)],
    detached, and the names in the same order."""
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    output, states = run_module(module, x, hx)
    loss_of(output, states).backward()
    names = ["output"] + [f"state{k}" for k in range(len(states))] + ["input.grad"]
    tensors = [output.detach(), *(s.detach() for s in states), x.grad]
    for name, p in module.named_parameters():
        names.append(f"{name}.grad")
        tensors.append(p.grad.clone() if p.grad is not None else None)
    return names, tensors
