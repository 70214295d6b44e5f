"""torch-eunn's recurrent unit EURNN: its EUNN layer (a product of `capacity` layers of 2x2 unitary
rotations on a complex state) applied once per step in a Python loop, complex modReLU, the real
part of the state as the output."""

from torch import nn

from .external import require_api

# torch-eunn's own examples train EURNN with capacity 2 ("a small capacity is usually preferred").
DEFAULT_CAPACITY = 2


class TorchEUNNRNN(nn.Module):
    """x [T, B, I] -> (Re h [T, B, H], complex state [B, H, 2] as torch-eunn stores it).

    hidden_size and capacity must be even (torch-eunn's periodic boundaries pair units up)."""

    def __init__(self, input_size, hidden_size, *, capacity=DEFAULT_CAPACITY, device=None, dtype=None):
        super().__init__()
        if hidden_size % 2 or capacity % 2:
            raise ValueError(
                f"torch-eunn needs an even hidden_size and capacity; got {hidden_size} and {capacity}"
            )
        eurnn = require_api("torch_eunn", "EURNN", distribution="torch-eunn", tested="0.2.1")
        # EURNN creates its parameters on the default device and dtype.
        self.rnn = eurnn(input_size, hidden_size, capacity=capacity, output_type="real", batch_first=False)
        self.rnn.to(device=device, dtype=dtype)

    def forward(self, x, hx=None):
        return self.rnn(x.contiguous(), hx)  # EURNN flattens x with .view
