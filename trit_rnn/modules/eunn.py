"""EUNN (Jing et al. 2017): the efficient unitary RNN, W a product of layers of 2x2 rotations."""

from ..parametrizations.eunn import EUNNUnitary
from .unitary_recurrence import UnitaryRecurrence


class EUNN(UnitaryRecurrence):
    """An RNN whose recurrent matrix is an EUNN product (see trit_rnn.parametrizations.EUNNUnitary),
    materialised densely once per forward (the layers applied to the identity) and run by the dense
    op.

    Args:
        input_size, hidden_size, num_layers: as torch.nn.RNN.
        capacity: layers of the tunable style (default 2), any hidden size (a unit a layer leaves
            unpaired passes through). Recurrent parameters: complex L(H-1) + H, real L(H-1)/2 (even L).
        fft: the FFT style instead, log2(H) layers; hidden_size must be a power of two (ValueError
            otherwise) and capacity left unset. Complex H log2 H + H parameters, real (H/2) log2 H.
        complex: True (default): unitary W on a complex state, complex modReLU, output [Re h, Im h]
            per direction by default (the EUNN paper's tasks read out Re h: readout="real").
            False: orthogonal W on a real state, real modReLU sign(z) relu(|z| + b); the output is
            h itself (hidden_size features per direction), h_n is real, readout must stay unset.
        The keyword options of UnitaryRecurrence (bias, batch_first, bidirectional, readout, eps,
        backend, device, dtype).
    """

    def __init__(
        self, input_size, hidden_size, num_layers=1, *, capacity=None, fft=False, complex=True, **options
    ):
        if not isinstance(complex, bool):
            raise TypeError(f"complex must be a bool; got {complex!r}")
        super().__init__(input_size, hidden_size, num_layers, complex_state=complex, **options)
        self._build(
            lambda **factory: EUNNUnitary(self.hidden_size, capacity, fft=fft, complex=complex, **factory)
        )
        self.capacity = self.recurrent[0].capacity
        self.fft = fft

    def extra_repr(self) -> str:
        style = "fft=True" if self.fft else f"capacity={self.capacity}"
        return f"{super().extra_repr()}, {style}, complex={self.complex_state}"


__all__ = ["EUNN"]
