"""Sequential digits: scikit-learn's bundled handwritten digits (1797 images of 8x8 pixels, classes
0..9; `sklearn.datasets.load_digits`, shipped with scikit-learn, no download) read one pixel per
step in row-major order: 64 steps of one feature, the pixel's value / 16 in [0, 1]. An offline
stand-in for pixel MNIST (which cannot be downloaded here).

- permuted=True reads the pixels in a fixed random order, np.random.RandomState(92916)
  .permutation(64) (the seed expRNN and scoRNN use for the 784-pixel permutation).
- A fixed split, seeded with SPLIT_SEED: 360 test images (20 %), 1437 training images.
- Training batches are drawn with replacement from the training images by the caller's generator.
- Loss: cross-entropy of the last step's output over the 10 classes; accuracy: the fraction of
  images classified right (the metric is reported on the test split).
- Baseline: predicting the training split's class frequencies for every image; its loss on the
  test split is `DigitsTask.baseline_loss` (close to ln 10 = 2.303: the classes are balanced),
  and its accuracy is the majority class's share (`baseline_accuracy`).

scikit-learn is an optional dependency: pip install 'trit-rnn[tasks]'.
"""

import numpy as np
import torch
from torch.nn import functional as F

from .base import LastStepTask, check_positive_int

DIGITS_STEPS = 64
DIGITS_CLASSES = 10
DIGITS_TEST_SIZE = 360
SPLIT_SEED = 0
PERMUTATION_SEED = 92916


def _load_digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "the sequential-digits task needs scikit-learn (its bundled digits data set): "
            "pip install 'trit-rnn[tasks]' (or pip install scikit-learn)"
        ) from None
    data = load_digits()
    return data.images.reshape(len(data.images), DIGITS_STEPS) / 16.0, data.target


def digits_permutation() -> torch.Tensor:
    """The fixed pixel order of the permuted task."""
    return torch.from_numpy(np.random.RandomState(PERMUTATION_SEED).permutation(DIGITS_STEPS))


def load_digits_split(permuted: bool = False, dtype=None):
    """(train_images [1437, 64], train_labels [1437], test_images [360, 64], test_labels [360]),
    float pixels in [0, 1] in pixel-reading order, long labels."""
    images, labels = _load_digits()
    images = torch.as_tensor(images, dtype=dtype or torch.get_default_dtype())
    labels = torch.as_tensor(labels, dtype=torch.long)
    if permuted:
        images = images[:, digits_permutation()]
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    test, train = order[:DIGITS_TEST_SIZE], order[DIGITS_TEST_SIZE:]
    return images[train], labels[train], images[test], labels[test]


def as_sequences(images: torch.Tensor) -> torch.Tensor:
    """[N, 64] images -> [64, N, 1] time-major sequences."""
    return images.t().unsqueeze(-1).contiguous()


class DigitsTask(LastStepTask):
    """Sequential (optionally permuted) digits as a Task: 64 steps of 1 input, 10 classes read from
    the last step. batch() samples training images; eval_set() is the test split."""

    input_size = 1
    output_size = DIGITS_CLASSES
    seq_len = DIGITS_STEPS
    accuracy_name = "test images classified right"

    def __init__(self, permuted: bool = False):
        if not isinstance(permuted, bool):
            raise ValueError(f"permuted must be a bool; got {permuted!r}")
        self.permuted = permuted
        self.name = "pdigits" if permuted else "digits"
        self.train_images, self.train_labels, self.test_images, self.test_labels = load_digits_split(permuted)
        prior = torch.bincount(self.train_labels, minlength=DIGITS_CLASSES).double()
        self.prior = prior / prior.sum()
        self.baseline_loss = float(-self.prior.log()[self.test_labels].mean())
        self.baseline_accuracy = float((self.test_labels == self.prior.argmax()).double().mean())

    def batch(self, batch, generator=None):
        check_positive_int(batch, "batch")
        index = torch.randint(0, len(self.train_labels), (batch,), generator=generator)
        return as_sequences(self.train_images[index]), self.train_labels[index]

    def eval_set(self, size=None, seed=None):
        """The whole test split (size and seed are ignored: the split is fixed)."""
        return as_sequences(self.test_images), self.test_labels

    def _terms(self, last, targets):
        return F.cross_entropy(last.float(), targets, reduction="sum")

    def accuracy_terms(self, outputs, targets, start=0):
        last = self._last(outputs, start)
        if last is None:
            return 0, 0
        return int((last.argmax(-1) == targets).sum()), targets.shape[0]

    def baseline_outputs(self, targets):
        """log of the training class frequencies at every step."""
        return self.prior.float().log().expand(self.seq_len, targets.shape[0], DIGITS_CLASSES).clone()
