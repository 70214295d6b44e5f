"""The task generators: shapes, alphabets, seeding, and each stated baseline against the empirical
loss of its baseline predictor on a generated batch."""

import math

import pytest
import torch

from trit_rnn.tasks import (
    ADDING_BASELINE_MSE,
    AddingTask,
    CopyingTask,
    DenoiseTask,
    ParenthesisTask,
    adding_batch,
    copying_baseline,
    copying_batch,
    denoise_baseline,
    denoise_batch,
    make_task,
    parenthesis_baseline,
    parenthesis_batch,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_copying_shapes_alphabet_layout():
    x, y = copying_batch(5, 7, generator=gen())
    assert x.shape == (27, 5, 10) and y.shape == (27, 5) and y.dtype == torch.long
    symbols = x.argmax(-1)
    assert torch.equal(x.sum(-1), torch.ones(27, 5))  # one-hot
    assert ((symbols[:10] >= 1) & (symbols[:10] <= 8)).all()
    assert (symbols[10:16] == 0).all() and (symbols[16] == 9).all() and (symbols[17:] == 0).all()
    assert (y[:17] == 0).all() and torch.equal(y[17:], symbols[:10])


def test_denoise_shapes_alphabet_layout():
    T = 12
    x, y = denoise_batch(64, T, generator=gen())
    assert x.shape == (T + 20, 64, 11) and y.shape == (T + 20, 64)
    symbols = x.argmax(-1)
    assert torch.equal(x.sum(-1), torch.ones(T + 20, 64))
    before = symbols[: T + 9]
    # 10 data symbols in 1..9 at distinct positions, blanks elsewhere, marker at T + 9, blanks after.
    assert ((before > 0) & (before < 10)).sum(0).eq(10).all()
    assert (symbols[T + 9] == 10).all() and (symbols[T + 10 :] == 0).all()
    assert (y[: T + 10] == 0).all()
    for b in range(64):
        data = before[:, b][before[:, b] > 0]
        assert torch.equal(y[T + 10 :, b], data)  # recalled in the order they appeared
    # The data is scattered: not always at the first ten steps.
    assert (symbols[10 : T + 9] > 0).any()


def test_parenthesis_depths_follow_the_symbols():
    K, N, D = 3, 4, 2
    x, y = parenthesis_batch(32, 40, kinds=K, noise_symbols=N, max_depth=D, generator=gen())
    assert x.shape == (40, 32, 2 * K + N) and y.shape == (40, 32, K)
    symbols = x.argmax(-1)
    assert torch.equal(x.sum(-1), torch.ones(40, 32))
    depth = torch.zeros(32, K, dtype=torch.long)
    for t in range(40):
        for b in range(32):
            s = int(symbols[t, b])
            if s < K:
                depth[b, s] += 1
            elif s < 2 * K:
                depth[b, s - K] -= 1
        assert torch.equal(y[t], depth)
    assert y.min() >= 0 and y.max() <= D
    assert (symbols >= 2 * K).any() and (symbols < K).any()  # noise and brackets both occur


def test_adding_shapes_and_markers():
    x, y = adding_batch(16, 10, generator=gen())
    assert x.shape == (10, 16, 2) and y.shape == (16,)
    assert torch.equal(x[..., 1].sum(0), torch.full((16,), 2.0))
    assert (x[:5, :, 1].sum(0) == 1).all() and (x[5:, :, 1].sum(0) == 1).all()
    assert torch.allclose(y, (x[..., 0] * x[..., 1]).sum(0))


@pytest.mark.parametrize(
    "make",
    [
        lambda g, s: copying_batch(4, 6, generator=g, seed=s),
        lambda g, s: denoise_batch(4, 6, generator=g, seed=s),
        lambda g, s: adding_batch(4, 6, generator=g, seed=s),
        lambda g, s: parenthesis_batch(4, 6, generator=g, seed=s),
    ],
    ids=["copying", "denoise", "adding", "parenthesis"],
)
def test_seeding(make):
    a, b, c = make(None, 3), make(gen(3), None), make(None, 4)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))  # seed == a generator so seeded
    assert not all(torch.equal(p, q) for p, q in zip(a, c, strict=True))
    with pytest.raises(ValueError, match="either generator or seed"):
        make(gen(3), 3)


def test_stated_baseline_formulas():
    assert copying_baseline(1000) == pytest.approx(10 * math.log(8) / 1020)
    assert denoise_baseline(100) == pytest.approx(10 * math.log(9) / 120)
    assert CopyingTask(100).baseline_loss == pytest.approx(10 * math.log(8) / 120)
    assert AddingTask(50).baseline_loss == ADDING_BASELINE_MSE == pytest.approx(1 / 6)
    # parenthesis: tends to the stationary entropy; at T = 1 only one kind in K can have moved.
    q = (1 - 0.5) / 10
    assert parenthesis_baseline(1) == pytest.approx(-(q * math.log(q) + (1 - q) * math.log(1 - q)))


@pytest.mark.parametrize(
    "task, batch, rel",
    [
        (CopyingTask(30), 256, 1e-5),  # exact: blanks are certain, the uniform guess is data-blind
        (DenoiseTask(30), 256, 1e-5),
        (AddingTask(20), 20000, 0.03),
        (ParenthesisTask(30, kinds=4, max_depth=3), 4000, 0.02),
    ],
    ids=lambda v: getattr(v, "name", None),
)
def test_baseline_predictor_scores_the_stated_baseline(task, batch, rel):
    x, y = task.batch(batch, gen(1))
    assert x.shape == (task.seq_len, batch, task.input_size)
    outputs = task.baseline_outputs(y)
    assert outputs.shape[-1] == task.output_size
    assert float(task.loss(outputs, y)) == pytest.approx(task.baseline_loss, rel=rel)


@pytest.mark.parametrize("name", ["copying", "denoise", "adding", "parenthesis"])
def test_chunked_loss_terms_add_up_to_the_sequence_loss(name):
    """Truncated BPTT relies on it: the chunks' sums over the sequence's count give its loss."""
    task = make_task(name, 7)
    x, y = task.batch(3, gen(2))
    outputs = torch.randn(task.seq_len, 3, task.output_size, generator=gen(5))
    total = sum(float(task.loss_terms(outputs[s : s + 4], y, s)[0]) for s in range(0, task.seq_len, 4))
    counts = sum(task.loss_terms(outputs[s : s + 4], y, s)[1] for s in range(0, task.seq_len, 4))
    assert counts == task.target_count(y)
    assert total / counts == pytest.approx(float(task.loss(outputs, y)), rel=1e-6)
    if task.has_accuracy:
        correct = sum(task.accuracy_terms(outputs[s : s + 4], y, s)[0] for s in range(0, task.seq_len, 4))
        n = sum(task.accuracy_terms(outputs[s : s + 4], y, s)[1] for s in range(0, task.seq_len, 4))
        assert correct / n == pytest.approx(task.accuracy(outputs, y))


def test_copying_accuracy_counts_the_recall_steps():
    task = CopyingTask(5)
    x, y = task.batch(8, gen())
    perfect = torch.nn.functional.one_hot(y, 9).float() * 10
    assert task.accuracy(perfect, y) == 1.0
    assert float(task.loss(perfect, y)) < 1e-3
    assert task.accuracy(task.baseline_outputs(y), y) < 0.5


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="delay"):
        copying_batch(4, 0)
    with pytest.raises(ValueError, match="batch"):
        denoise_batch(0, 5)
    with pytest.raises(ValueError, match="seq_len"):
        adding_batch(4, 1)
    with pytest.raises(ValueError, match="noise_prob"):
        parenthesis_batch(4, 5, noise_prob=1.5)
    with pytest.raises(ValueError, match="unknown task"):
        make_task("mnist", 10)
    with pytest.raises(ValueError, match="needs seq_len"):
        make_task("copying")
