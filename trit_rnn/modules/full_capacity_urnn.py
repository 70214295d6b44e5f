"""FullCapacityURNN (Wisdom et al. 2016): the uRNN cell with W any unitary matrix, trained on U(n)
by a Riemannian Cayley step."""

from ..parametrizations.full_unitary import FullUnitary
from ..unitary_optim import make_unitary_optimizer
from .unitary_recurrence import UnitaryRecurrence


class FullCapacityURNN(UnitaryRecurrence):
    """A complex-state RNN whose recurrent matrix W is a free complex parameter [H, H]
    (`recurrent[index].weight`, Haar-random unitary at init) kept unitary by the optimizer from
    `make_optimizer`: a plain torch.optim step would leave the unitary group.

    Args: input_size, hidden_size, num_layers as torch.nn.RNN; the keyword options of
    UnitaryRecurrence (bias, batch_first, bidirectional, readout, eps, backend, device, dtype).
    Output: [Re h, Im h] per direction by default (2 * hidden_size features).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, **options):
        super().__init__(input_size, hidden_size, num_layers, complex_state=True, **options)
        self._build(lambda **factory: FullUnitary(self.hidden_size, **factory))

    def make_optimizer(self, lr, *, rule="rmsprop", unitary_lr=None, extra_params=(), **kwargs):
        """One torch.optim.Optimizer for the whole model: its step() applies the Cayley step
        W <- (I + a/2 A)^{-1} (I - a/2 A) W, A = G W^H - W G^H, G = the gradient of W, a = unitary_lr
        (default lr) to the recurrent matrices, and `rule` ("rmsprop" or "adam", kwargs go to its
        constructor) at lr to every other parameter, and to `extra_params` (e.g. those of a readout
        layer outside this module). See trit_rnn.unitary_optim."""
        unitary = list(self.recurrent_parameters())
        unitary_ids = {id(p) for p in unitary}
        others = [p for p in self.parameters() if id(p) not in unitary_ids] + list(extra_params)
        return make_unitary_optimizer(unitary, others, lr, rule=rule, unitary_lr=unitary_lr, **kwargs)


__all__ = ["FullCapacityURNN"]
