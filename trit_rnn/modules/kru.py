"""KRU (Jose, Cisse & Fleuret 2018): the Kronecker recurrent unit, W a Kronecker product of small
complex factors kept near unitary by a penalty."""

from ..parametrizations.kru import KroneckerUnitary
from .unitary_recurrence import UnitaryRecurrence


class KRU(UnitaryRecurrence):
    """A complex-state RNN with W = W_1 (x) ... (x) W_F (trit_rnn.parametrizations.KroneckerUnitary),
    materialised densely once per forward and run by the dense op.

    Args:
        input_size, hidden_size, num_layers: as torch.nn.RNN.
        factors: the factor sizes, multiplying to hidden_size. Default: 2x2 factors, which needs a
            power-of-two hidden_size (other sizes must pass factors, e.g. (3, 4) for 12). 2x2 complex
            factors have 8 log2 H real parameters per layer and direction.
        The keyword options of UnitaryRecurrence (bias, batch_first, bidirectional, readout, eps,
        backend, device, dtype).

    The factors start unitary, but nothing keeps them so: add the soft constraint to the loss,
        loss = task_loss + lam * model.unitarity_penalty()
    with a weight lam of your choosing (the KRU paper's exact weighting is not recorded here; larger
    lam keeps W closer to unitary, lam = 0 trains a free Kronecker-structured W).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, *, factors=None, **options):
        super().__init__(input_size, hidden_size, num_layers, complex_state=True, **options)
        self._build(lambda **factory: KroneckerUnitary(self.hidden_size, factors, **factory))
        self.factors = self.recurrent[0].factors

    def unitarity_penalty(self):
        """sum over layers, directions and factors of |W_f^H W_f - I|_F^2: a real scalar, zero exactly
        when every factor is unitary (then every W is)."""
        return sum(unitary.unitarity_penalty() for unitary in self.recurrent)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, factors={self.factors}"


__all__ = ["KRU"]
