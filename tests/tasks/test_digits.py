"""Sequential digits from scikit-learn's bundled data set (an optional dependency of the library,
listed in the `test` extra: these tests need it)."""

import builtins

import pytest
import torch

from trit_rnn.tasks import DigitsTask, load_digits_split, make_task
from trit_rnn.tasks.digits import digits_permutation


def test_split_is_fixed_disjoint_and_scaled():
    train_x, train_y, test_x, test_y = load_digits_split()
    again = load_digits_split()
    assert train_x.shape == (1437, 64) and test_x.shape == (360, 64)
    assert torch.equal(train_x, again[0]) and torch.equal(test_y, again[3])
    assert 0 <= float(train_x.min()) and float(train_x.max()) == 1.0
    assert set(train_y.tolist()) == set(range(10)) == set(test_y.tolist())
    # no test image appears among the training images
    assert not (test_x[:, None, :] == train_x[None, :, :]).all(-1).any(-1).all()


def test_batches_seeding_and_permutation():
    task, permuted = make_task("digits"), make_task("pdigits")
    x, y = task.batch(5, torch.Generator().manual_seed(0))
    x2, y2 = task.batch(5, torch.Generator().manual_seed(0))
    assert x.shape == (64, 5, 1) and y.shape == (5,) and torch.equal(x, x2) and torch.equal(y, y2)
    px, py = permuted.batch(5, torch.Generator().manual_seed(0))
    assert torch.equal(py, y) and torch.equal(px[:, :, 0], x[digits_permutation(), :, 0])
    ex, ey = task.eval_set()
    assert ex.shape == (64, 360, 1) and torch.equal(ey, task.test_labels)


def test_baseline_is_the_class_prior_on_the_test_split():
    task = DigitsTask()
    ex, ey = task.eval_set()
    outputs = task.baseline_outputs(ey)
    assert float(task.loss(outputs, ey)) == pytest.approx(task.baseline_loss, rel=1e-6)
    assert task.baseline_loss == pytest.approx(2.3026, abs=0.02)  # near ln 10: balanced classes
    assert task.accuracy(outputs, ey) == pytest.approx(task.baseline_accuracy)


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError, match=r"trit-rnn\[tasks\]"):
        DigitsTask()
