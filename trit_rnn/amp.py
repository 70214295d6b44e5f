"""torch.autocast and this library.

autocast casts the inputs of the ops on its lists (matmul, linear, ...) to its dtype; the library's
own ops are torch.library custom ops, which autocast leaves alone. Two places must not follow
autocast, and run under `autocast_off`:
- the parametrisations (orthogonal.Orthogonal and unitary.Unitary forwards): a bfloat16 exp map,
  Cayley solve or Householder product is ~1e-2 off orthogonal, which the recurrence compounds, and
  a bfloat16 W reaching a float32 backward mixes dtypes;
- the fused dense layer of OrthogonalRNN (functional.dense_rnn): its input projection
  (functional.input_projection) is an F.linear where oneDNN does not run, which autocast would
  make bfloat16 while W stays float32, and the dense op takes one dtype (the triton backend
  rejects the mix).
Under autocast every module thus runs its recurrence in its own dtype (float32, or complex64 for
the unitary cells); the unitary cells' input projection (an F.linear) and the deep transition's
output layers (nn.Linear) run in the autocast dtype.
"""

import contextlib

import torch


def autocast_off(device: torch.device):
    """A context with autocast disabled for device's type (nothing to disable on a device type
    autocast does not know, e.g. meta)."""
    if not torch.amp.is_autocast_available(device.type):
        return contextlib.nullcontext()
    return torch.autocast(device.type, enabled=False)
