"""trit_rnn: orthogonal, unitary and gated RNNs whose recurrence runs in persistent Triton kernels."""

__version__ = "0.1.0"
