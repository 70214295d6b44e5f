from .orthogonal import OrthogonalRNN
from .stacked import StackedRecurrence

__all__ = ["OrthogonalRNN", "StackedRecurrence"]
