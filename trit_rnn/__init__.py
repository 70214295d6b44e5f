"""trit_rnn: orthogonal, unitary and gated RNNs whose recurrence runs in persistent Triton kernels."""

from . import functional, optim, parametrizations
from .modules.deep_transition import DeepTransitionRNN
from .modules.eunn import EUNN
from .modules.full_capacity_urnn import FullCapacityURNN
from .modules.gated import GRU, LSTM
from .modules.goru import GORU
from .modules.kru import KRU
from .modules.orthogonal import OrthogonalRNN
from .modules.urnn import URNN

__version__ = "0.1.0"

__all__ = [
    "OrthogonalRNN",
    "URNN",
    "FullCapacityURNN",
    "EUNN",
    "KRU",
    "LSTM",
    "GRU",
    "GORU",
    "DeepTransitionRNN",
    "functional",
    "optim",
    "parametrizations",
    "__version__",
]
