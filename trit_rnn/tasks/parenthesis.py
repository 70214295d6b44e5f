"""The parenthesis task (after GORU: Jing, Gulcehre et al.), with a protocol defined here (the
reference's details were not recoverable).

Alphabet (input one-hot, depth 2K + N): symbols 0..K-1 open a bracket of kind k, K..2K-1 close
one of kind k, 2K..2K+N-1 are noise. Defaults: K = 10 kinds, N = 10 noise symbols.
Each step, independently: with probability `noise_prob` (0.5) a noise symbol (uniform over N);
otherwise a kind k (uniform over K) and a bracket of that kind: an opening one if k's depth is 0, a
closing one if it is `max_depth` (4), else opening or closing with probability 1/2 each. So every
sequence is well nested per kind and each kind's depth stays in 0..max_depth.

Target: at every step and for every kind, the nesting depth of that kind after reading the step's
symbol (the count of its unclosed brackets), a class in 0..max_depth. The readout has
K * (max_depth + 1) outputs per step, read as [K, max_depth + 1] logits. Loss: cross-entropy
averaged over steps, samples and kinds. Accuracy: the fraction of (step, sample, kind) depths right.

Baseline: the best input-blind predictor, which predicts at step t the marginal distribution pi_t
of one kind's depth. That depth is a birth-death Markov chain started at 0 (each step it moves with
probability q = (1 - noise_prob) / K, up from 0, down from max_depth, else up or down with 1/2),
so pi_t is exact by dynamic programming and the baseline loss is (1/T) sum_t H(pi_t) in nats
(`parenthesis_baseline`). It grows with T towards the entropy of the stationary distribution.
"""

import torch

from .base import Task, check_positive_int, make_generator, per_step_log_probs

PAREN_KINDS = 10
PAREN_NOISE = 10
PAREN_NOISE_PROB = 0.5
PAREN_MAX_DEPTH = 4


def _check_options(kinds, noise_symbols, noise_prob, max_depth):
    check_positive_int(kinds, "kinds")
    check_positive_int(max_depth, "max_depth")
    if isinstance(noise_symbols, bool) or not isinstance(noise_symbols, int) or noise_symbols < 0:
        raise ValueError(f"noise_symbols must be a non-negative integer; got {noise_symbols!r}")
    if isinstance(noise_prob, bool) or not isinstance(noise_prob, (int, float)) or not 0 <= noise_prob < 1:
        raise ValueError(f"noise_prob must be in [0, 1); got {noise_prob!r}")
    if noise_prob > 0 and noise_symbols == 0:
        raise ValueError("noise_prob > 0 needs noise_symbols >= 1")


def depth_marginals(seq_len: int, kinds=PAREN_KINDS, noise_prob=PAREN_NOISE_PROB, max_depth=PAREN_MAX_DEPTH):
    """[seq_len, max_depth + 1] float64: the distribution of one kind's depth after each step."""
    q = (1.0 - noise_prob) / kinds
    D = max_depth
    move = torch.zeros(D + 1, D + 1, dtype=torch.float64)  # move[a, b] = P(b | a)
    for d in range(D + 1):
        move[d, d] += 1 - q
        if d == 0:
            move[d, 1] += q
        elif d == D:
            move[d, D - 1] += q
        else:
            move[d, d - 1] += q / 2
            move[d, d + 1] += q / 2
    pi = torch.zeros(D + 1, dtype=torch.float64)
    pi[0] = 1.0
    rows = []
    for _ in range(seq_len):
        pi = pi @ move
        rows.append(pi)
    return torch.stack(rows)


def parenthesis_baseline(
    seq_len: int, kinds=PAREN_KINDS, noise_prob=PAREN_NOISE_PROB, max_depth=PAREN_MAX_DEPTH
) -> float:
    """The input-blind baseline's cross-entropy, (1/T) sum_t H(pi_t) (see the module docstring)."""
    pi = depth_marginals(seq_len, kinds, noise_prob, max_depth)
    entropy = -(pi * torch.where(pi > 0, pi.log(), torch.zeros_like(pi))).sum(-1)
    return float(entropy.mean())


def parenthesis_batch(
    batch: int,
    seq_len: int,
    *,
    kinds: int = PAREN_KINDS,
    noise_symbols: int = PAREN_NOISE,
    noise_prob: float = PAREN_NOISE_PROB,
    max_depth: int = PAREN_MAX_DEPTH,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
):
    """Returns (inputs [seq_len, batch, 2 kinds + noise_symbols] one-hot in dtype, targets
    [seq_len, batch, kinds] long in 0..max_depth). Random draws come from `generator`, or from a
    generator seeded with `seed`."""
    check_positive_int(batch, "batch")
    check_positive_int(seq_len, "seq_len")
    _check_options(kinds, noise_symbols, noise_prob, max_depth)
    generator = make_generator(generator, seed)
    is_noise = torch.rand(seq_len, batch, generator=generator) < noise_prob
    noise = torch.randint(0, max(noise_symbols, 1), (seq_len, batch), generator=generator)
    kind = torch.randint(0, kinds, (seq_len, batch), generator=generator)
    coin = torch.rand(seq_len, batch, generator=generator) < 0.5
    rows = torch.arange(batch)
    depth = torch.zeros(batch, kinds, dtype=torch.long)
    symbols = torch.empty(seq_len, batch, dtype=torch.long)
    targets = torch.empty(seq_len, batch, kinds, dtype=torch.long)
    for t in range(seq_len):
        current = depth[rows, kind[t]]
        opens = (current == 0) | ((current < max_depth) & coin[t])
        bracket = ~is_noise[t]
        depth[rows, kind[t]] = torch.where(bracket, current + torch.where(opens, 1, -1), current)
        symbols[t] = torch.where(bracket, torch.where(opens, kind[t], kinds + kind[t]), 2 * kinds + noise[t])
        targets[t] = depth
    inputs = torch.nn.functional.one_hot(symbols, 2 * kinds + noise_symbols).to(
        dtype or torch.get_default_dtype()
    )
    return inputs.to(device), targets.to(device)


class ParenthesisTask(Task):
    """parenthesis_batch as a Task: T' = seq_len steps, 2K + N inputs, K (max_depth + 1) outputs."""

    name = "parenthesis"
    accuracy_name = "per-kind depths right (every step)"

    def __init__(
        self,
        seq_len: int,
        *,
        kinds: int = PAREN_KINDS,
        noise_symbols: int = PAREN_NOISE,
        noise_prob: float = PAREN_NOISE_PROB,
        max_depth: int = PAREN_MAX_DEPTH,
    ):
        check_positive_int(seq_len, "seq_len")
        _check_options(kinds, noise_symbols, noise_prob, max_depth)
        self.seq_len = seq_len
        self.kinds, self.noise_symbols, self.noise_prob, self.max_depth = (
            kinds,
            noise_symbols,
            noise_prob,
            max_depth,
        )
        self.input_size = 2 * kinds + noise_symbols
        self.output_size = kinds * (max_depth + 1)
        self.baseline_loss = parenthesis_baseline(seq_len, kinds, noise_prob, max_depth)

    def batch(self, batch, generator=None):
        return parenthesis_batch(
            batch, self.seq_len, kinds=self.kinds, noise_symbols=self.noise_symbols,
            noise_prob=self.noise_prob, max_depth=self.max_depth, generator=generator,
        )  # fmt: skip

    def _logits(self, outputs):
        return outputs.reshape(*outputs.shape[:-1], self.kinds, self.max_depth + 1)

    def target_count(self, targets) -> int:
        return targets.numel()

    def loss_terms(self, outputs, targets, start=0):
        chunk = targets[start : start + outputs.shape[0]]
        logits = self._logits(outputs).float()
        total = torch.nn.functional.cross_entropy(
            logits.reshape(-1, self.max_depth + 1), chunk.reshape(-1), reduction="sum"
        )
        return total, chunk.numel()

    def accuracy_terms(self, outputs, targets, start=0):
        chunk = targets[start : start + outputs.shape[0]]
        return int((self._logits(outputs).argmax(-1) == chunk).sum()), chunk.numel()

    def baseline_outputs(self, targets):
        """log pi_t for every kind at every step (flattened to K (max_depth + 1) outputs)."""
        pi = depth_marginals(self.seq_len, self.kinds, self.noise_prob, self.max_depth).float()
        logits = per_step_log_probs(pi)[:, None, None, :].expand(-1, targets.shape[1], self.kinds, -1)
        return logits.reshape(self.seq_len, targets.shape[1], self.output_size)


__all__ = ["ParenthesisTask", "depth_marginals", "parenthesis_baseline", "parenthesis_batch"]
