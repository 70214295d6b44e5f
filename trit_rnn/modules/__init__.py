from .deep_transition import DeepTransitionRNN
from .eunn import EUNN
from .full_capacity_urnn import FullCapacityURNN
from .gated import GRU, LSTM
from .goru import GORU
from .kru import KRU
from .orthogonal import OrthogonalRNN
from .stacked import StackedRecurrence
from .unitary_recurrence import UnitaryRecurrence
from .urnn import URNN

__all__ = [
    "OrthogonalRNN",
    "StackedRecurrence",
    "UnitaryRecurrence",
    "URNN",
    "FullCapacityURNN",
    "EUNN",
    "KRU",
    "LSTM",
    "GRU",
    "GORU",
    "DeepTransitionRNN",
]
