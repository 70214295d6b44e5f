"""Variable-length batches in every module: a padded batch with lengths, and PackedSequence input.

The reference is each sequence run alone (its own steps, no padding): the batched run must give the
same outputs (zero past each end), the same final states and, summed over the sequences, the same
gradients, on both backends (triton under the interpreter). The drop-in LSTM/GRU take a
PackedSequence as torch.nn.LSTM/GRU do and return the same packed output and states.
"""

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pack_sequence

from tests.all_modules import INPUT_SIZE, NAMES, build, state_tensors
from tests.tolerances import assert_close

T, B = 5, 3
LENGTHS = [5, 1, 3]  # the full length, a single step, one in between; B = 3 rows
LAYOUTS = {"1 layer": {}, "2 layers, bidirectional": {"num_layers": 2, "bidirectional": True}}
BACKENDS = ("torch", "triton")


def _upstream(shape) -> torch.Tensor:
    """A fixed upstream gradient for an output of this shape ([T, B, ...], complex as its real view)."""
    numel = torch.Size(shape).numel()
    return torch.linspace(-1, 1, numel).view(shape)


def _real(output: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(output) if output.is_complex() else output


def _gradients(module, x, hx, lengths, upstream):
    """(output, [states], [x.grad, *parameter grads]) of one forward and backward whose loss puts
    `upstream` on the output and the squares of the final states on them."""
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    output, states = module(x, hx, lengths=lengths)
    states = state_tensors(states)
    loss = (_real(output) * upstream).sum() + sum(s.square().sum() for s in states)
    loss.backward()
    grads = [x.grad] + [p.grad if p.grad is not None else torch.zeros_like(p) for p in module.parameters()]
    return output.detach(), [s.detach() for s in states], grads


def _initial_state(module, name):
    """A random hx in the module's state dtype (a tuple for the LSTM)."""
    shape = (module.num_layers * module.num_directions, B, module.hidden_size)
    dtype = module.state_dtype(torch.float32)
    if name == "lstm":
        return tuple(torch.randn(shape, dtype=dtype) for _ in range(2))
    return torch.randn(shape, dtype=dtype)


def _rows(hx, b):
    """Sequence b's share of hx (None stays None)."""
    if hx is None:
        return None
    if isinstance(hx, tuple):
        return tuple(h[:, b : b + 1] for h in hx)
    return hx[:, b : b + 1]


def check_against_each_sequence(module, x, hx, lengths):
    """The batched run with lengths against every sequence run alone: outputs, final states and
    the gradients (summed over the sequences for the parameters)."""
    with torch.no_grad():
        shape = _real(module(x, hx, lengths=lengths)[0]).shape
    upstream = _upstream(shape)
    output, states, grads = _gradients(module, x, hx, torch.tensor(lengths), upstream)
    expected = [torch.zeros_like(g) for g in grads]
    for b, length in enumerate(lengths):
        alone, alone_states, alone_grads = _gradients(
            module, x[:length, b : b + 1], _rows(hx, b), None, upstream[:length, b : b + 1]
        )
        assert_close(output[:length, b : b + 1], alone, torch.float32, f"outputs of sequence {b}")
        assert torch.all(output[length:, b] == 0), f"outputs past the end of sequence {b} are not zero"
        for k, (state, state_alone) in enumerate(zip(states, alone_states, strict=True)):
            assert_close(state[:, b : b + 1], state_alone, torch.float32, f"final state {k} of sequence {b}")
        assert torch.all(grads[0][length:, b] == 0), (
            f"input gradient past the end of sequence {b} is not zero"
        )
        expected[0][:length, b : b + 1] = alone_grads[0]
        for total, g in zip(expected[1:], alone_grads[1:], strict=True):
            total += g
    names = ["input"] + [name for name, _ in module.named_parameters()]
    for name, g, e in zip(names, grads, expected, strict=True):
        assert_close(g, e, torch.float32, f"gradient of {name}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", NAMES)
def test_padded_batch_equals_each_sequence_alone(name, layout, backend):
    module = build(name, backend, **LAYOUTS[layout])
    x = torch.randn(T, B, INPUT_SIZE)
    hx = _initial_state(module, name) if layout == "1 layer" else None  # given and default states
    check_against_each_sequence(module, x, hx, LENGTHS)


@pytest.mark.parametrize("name", NAMES)
def test_random_lengths_equal_each_sequence_alone(name):
    """A seeded random draw of lengths in [1, T] over more rows (1 and T among them), bidirectional
    with two layers, torch backend."""
    generator = torch.Generator().manual_seed(7)
    lengths = [9, 1, *torch.randint(1, 10, (4,), generator=generator).tolist()]
    module = build(name, "torch", num_layers=2, bidirectional=True)
    x = torch.randn(9, len(lengths), INPUT_SIZE)
    check_against_each_sequence(module, x, None, lengths)


@pytest.mark.parametrize("name", ["orthogonal", "eunn"])
def test_checkpointed_ragged_batch_on_the_triton_backend(name):
    """With checkpoint_every a ragged batch runs in length segments on the triton backend too."""
    check_against_each_sequence(
        build(name, "triton", checkpoint_every=2), torch.randn(T, B, INPUT_SIZE), None, LENGTHS
    )


@pytest.mark.parametrize("readout", ["real", "complex"])
def test_unitary_readouts_with_lengths(readout):
    check_against_each_sequence(
        build("urnn", "torch", readout=readout), torch.randn(T, B, INPUT_SIZE), None, LENGTHS
    )


@pytest.mark.parametrize(
    "name, options",
    [
        ("orthogonal", {"checkpoint_every": 2}),
        ("urnn", {"checkpoint_every": 2}),
        ("lstm", {"layer_norm": True, "peephole": True}),
        ("gru", {"layer_norm": True}),
        ("deep_transition", {"deep_output": 2, "bidirectional": True}),
        ("gru", {"batch_first": True}),
    ],
)
def test_padded_batch_with_options(name, options):
    """Checkpointing, the step-by-step training options, a deep output and batch_first."""
    module = build(name, "torch", **options)
    x = torch.randn(T, B, INPUT_SIZE)
    if options.get("batch_first"):
        module_time_major = build(name, "torch")
        module_time_major.load_state_dict(module.state_dict())
        out_bf, h_bf = module(x.transpose(0, 1), lengths=LENGTHS)
        out_tm, h_tm = module_time_major(x, lengths=LENGTHS)
        assert torch.equal(out_bf.transpose(0, 1), out_tm) and torch.equal(h_bf, h_tm)
        module = module_time_major
    check_against_each_sequence(module, x, None, LENGTHS)


def test_lengths_as_list_tensor_and_full_are_the_same_call():
    module = build("gru", "torch")
    x = torch.randn(T, B, INPUT_SIZE)
    as_list = module(x, lengths=LENGTHS)
    as_tensor = module(x, lengths=torch.tensor(LENGTHS, dtype=torch.int32))
    assert all(torch.equal(a, b) for a, b in zip(as_list, as_tensor, strict=True))
    full = module(x, lengths=[T] * B)
    plain = module(x)
    assert all(torch.equal(a, b) for a, b in zip(full, plain, strict=True))


def test_padding_values_do_not_leak():
    """Whatever the padding holds (here NaN), outputs and states are those of the real steps."""
    module = build("lstm", "torch")
    x = torch.randn(T, B, INPUT_SIZE)
    poisoned = x.clone()
    for b, length in enumerate(LENGTHS):
        poisoned[length:, b] = float("nan")
    out, (h, c) = module(poisoned, lengths=LENGTHS)
    clean_out, (clean_h, clean_c) = module(x, lengths=LENGTHS)
    assert torch.equal(out, clean_out) and torch.equal(h, clean_h) and torch.equal(c, clean_c)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_packed_sequence_matches_torch_nn(cell, layout, backend):
    """PackedSequence in and out as torch.nn.LSTM/GRU, unsorted batch: the same packed output,
    final states (in the caller's row order) and gradients."""
    options = LAYOUTS[layout]
    torch_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    reference = torch_cls(INPUT_SIZE, 8, **options)
    ours = build(cell, backend, **options)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(T, B, INPUT_SIZE)
    results = []
    for module in (reference, ours):
        leaf = x.clone().requires_grad_()
        packed = pack_padded_sequence(leaf, torch.tensor(LENGTHS), enforce_sorted=False)
        output, state = module(packed)
        assert isinstance(output, PackedSequence)
        states = list(state) if isinstance(state, tuple) else [state]
        loss = (output.data * _upstream(output.data.shape)).sum() + sum(s.square().sum() for s in states)
        loss.backward()
        results.append((output, states, [leaf.grad] + [p.grad for p in module.parameters()]))
    (ref_out, ref_states, ref_grads), (out, states, grads) = results
    assert torch.equal(out.batch_sizes, ref_out.batch_sizes)
    assert torch.equal(out.sorted_indices, ref_out.sorted_indices)
    assert torch.equal(out.unsorted_indices, ref_out.unsorted_indices)
    assert_close(out.data, ref_out.data, torch.float32, "packed output")
    for k, (s, r) in enumerate(zip(states, ref_states, strict=True)):
        assert_close(s, r, torch.float32, f"final state {k}")
    for k, (g, r) in enumerate(zip(grads, ref_grads, strict=True)):
        assert_close(g, r, torch.float32, f"gradient {k}")


def test_pack_sequence_of_every_module_equals_padded_lengths():
    """pack_sequence input gives the padded run's outputs, packed, for the non-drop-in modules too."""
    for name in NAMES:
        module = build(name, "torch", bidirectional=True)
        sequences = [torch.randn(length, INPUT_SIZE) for length in LENGTHS]
        packed_out, packed_state = module(pack_sequence(sequences, enforce_sorted=False))
        padded = torch.nn.utils.rnn.pad_sequence(sequences)
        out, state = module(padded, lengths=LENGTHS)
        unpacked, unpacked_lengths = torch.nn.utils.rnn.pad_packed_sequence(packed_out)
        assert unpacked_lengths.tolist() == LENGTHS
        assert torch.equal(unpacked, out), name
        assert all(
            torch.equal(a, b) for a, b in zip(state_tensors(packed_state), state_tensors(state), strict=True)
        )


def test_torch_compile_with_lengths_matches_eager():
    """Lengths are data the run depends on (they pick the segments and check the range), so the
    graph breaks there: torch.compile without fullgraph gives eager's results."""
    torch._dynamo.reset()
    module = build("gru", "torch", bidirectional=True)
    x = torch.randn(T, B, INPUT_SIZE)
    lengths = torch.tensor(LENGTHS)
    compiled = torch.compile(lambda x, lengths: module(x, lengths=lengths))
    out, h_n = compiled(x, lengths)
    expected_out, expected_h = module(x, lengths=lengths)
    assert_close(out, expected_out, torch.float32, "outputs")
    assert_close(h_n, expected_h, torch.float32, "h_n")
