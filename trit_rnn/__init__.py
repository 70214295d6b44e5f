"""trit_rnn: orthogonal, unitary and gated RNNs whose recurrence runs in persistent Triton kernels."""

from . import functional, optim, parametrizations
from .modules.orthogonal import OrthogonalRNN

__version__ = "0.1.0"

__all__ = ["OrthogonalRNN", "functional", "optim", "parametrizations", "__version__"]
