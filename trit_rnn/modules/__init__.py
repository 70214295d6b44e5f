from .eunn import EUNN
from .full_capacity_urnn import FullCapacityURNN
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
]
