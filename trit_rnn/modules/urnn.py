"""URNN (Arjovsky, Shah & Bengio 2016): the unitary RNN with W = D3 R2 F^-1 D2 Pi R1 F D1."""

from ..parametrizations.urnn import URNNUnitary
from .unitary_recurrence import UnitaryRecurrence


class URNN(UnitaryRecurrence):
    """A complex-state RNN whose recurrent matrix is the uRNN product of diagonal phases D_k,
    complex reflections R_k, the unitary DFT F and a fixed permutation Pi (7H real parameters per
    layer and direction; see trit_rnn.parametrizations.URNNUnitary). W is materialised densely once
    per forward (the product applied to the identity with torch.fft) and run by the dense op.

    Args: input_size, hidden_size, num_layers as torch.nn.RNN; the keyword options of
    UnitaryRecurrence (bias, batch_first, bidirectional, readout, eps, backend, device, dtype).
    Output: [Re h, Im h] per direction by default (2 * hidden_size features).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, **options):
        super().__init__(input_size, hidden_size, num_layers, complex_state=True, **options)
        self._build(lambda **factory: URNNUnitary(self.hidden_size, **factory))


__all__ = ["URNN"]
