"""The torch.nn.RNN call convention shared by every recurrent module: input layout (time-major,
batch_first, unbatched), initial states, stacked layers and bidirectional directions.

A subclass owns the parameters of each (layer, direction) and implements `_run_direction`, which
maps one direction's input [T, B, I] and initial state [B, H] to (outputs [T, B, H], h_n [B, H]).
A cell with several states (the LSTM's h and c) sets `state_names`: hx is then a tuple of one
[L*D, B, H] tensor per state, `_run_direction` takes and returns tuples of [B, H] states, and the
module returns the tuple of their finals. `dropout` > 0 drops out every layer's output but the
last's in training, as torch.nn.RNN/LSTM/GRU.
Cells whose state is not what they output (a complex state read out as [Re h, Im h]) override
`direction_features`, `_direction_output` and `state_dtype`; a cell with layers after the
recurrence (a deep output) overrides `_output_layers`.

Variable lengths (trit_rnn.varlen): `lengths=` with a padded batch, or a PackedSequence input as
torch.nn.RNN takes it (the output is then packed the same way). Every layer and direction gets the
lengths; a reverse direction reads each sequence from its own end.
"""

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..validation import check_positive_int, check_tensor, describe
from ..varlen import check_lengths, permute, reverse_padded


class StackedRecurrence(nn.Module):
    state_names: tuple[str, ...] = ("h_0",)

    def __init__(
        self, input_size, hidden_size, num_layers=1, *, batch_first=False, bidirectional=False, dropout=0.0
    ):
        super().__init__()
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.num_layers = check_positive_int(num_layers, "num_layers")
        if not isinstance(batch_first, bool):
            raise TypeError(f"batch_first must be a bool; got {batch_first!r}")
        if not isinstance(bidirectional, bool):
            raise TypeError(f"bidirectional must be a bool; got {bidirectional!r}")
        self.batch_first = batch_first
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(f"dropout must be a probability in [0, 1]; got {dropout!r}")
        self.dropout = float(dropout)

    def direction_features(self) -> int:
        """Features one direction passes to the next layer (the next layer's input has this many per
        direction)."""
        return self.hidden_size

    def layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.direction_features() * self.num_directions

    def _direction_output(self, outputs: torch.Tensor, last_layer: bool) -> torch.Tensor:
        """One direction's states [T, B, H] -> its features: the next layer's input, or (last layer)
        the module's output."""
        return outputs

    def state_dtype(self, input_dtype: torch.dtype) -> torch.dtype:
        """The dtype of hx and h_n for an input of `input_dtype`."""
        return input_dtype

    @staticmethod
    def suffix(layer: int, direction: int) -> str:
        """torch.nn.RNN's parameter-name suffix: l0, l0_reverse, l1, ..."""
        return f"l{layer}" + ("_reverse" if direction == 1 else "")

    def _check_index(self, layer: int, direction: int) -> None:
        if not (isinstance(layer, int) and 0 <= layer < self.num_layers):
            raise ValueError(f"layer must be an int in [0, {self.num_layers}); got {layer!r}")
        if not (isinstance(direction, int) and 0 <= direction < self.num_directions):
            raise ValueError(f"direction must be an int in [0, {self.num_directions}); got {direction!r}")

    def _run_direction(
        self,
        layer: int,
        direction: int,
        x: torch.Tensor,
        h0: torch.Tensor | None,
        lengths: torch.Tensor | None,
    ):
        """One direction's (outputs [T, B, H], h_n [B, H]) of x [T, B, I]; lengths: None or the
        CPU int64 [B] of trit_rnn.varlen.check_lengths (outputs zero past each end)."""
        raise NotImplementedError

    def _output_layers(self, output: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """What comes after the last recurrent layer: nothing by default."""
        return output

    @staticmethod
    def _reverse(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """A reverse direction's view of x [T, B, ...]: each sequence from its own end."""
        return x.flip(0) if lengths is None else reverse_padded(x, lengths)

    @staticmethod
    def _pack_like(output: torch.Tensor, packed: PackedSequence) -> PackedSequence:
        """output [T, B, F] (the caller's row order) packed with the input's layout and indices."""
        index, inverse = packed.sorted_indices, packed.unsorted_indices
        if index is not None:
            output = permute(output, 1, index, inverse)
        lengths = (packed.batch_sizes.unsqueeze(0) > torch.arange(output.shape[1]).unsqueeze(1)).sum(1)
        data = pack_padded_sequence(output, lengths, enforce_sorted=True).data
        return PackedSequence(data, packed.batch_sizes, index, inverse)

    def _prepare_input(self, input, time_major: bool = False):
        check_tensor(input, "input")
        if input.dim() not in (2, 3):
            raise ValueError(
                f"input must be 3-D ([T, B, {self.input_size}], or [B, T, {self.input_size}] with "
                f"batch_first) or 2-D unbatched [T, {self.input_size}]; got {describe(input)}"
            )
        batched = input.dim() == 3
        if not batched:
            input = input.unsqueeze(1)
        elif self.batch_first and not time_major:
            input = input.transpose(0, 1)
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"input's last dimension must be input_size={self.input_size}; got {describe(input)}"
            )
        if input.shape[0] < 1:
            raise ValueError(f"input must have at least one time step; got {describe(input)}")
        reference = next(self.parameters(), None)
        if reference is not None:
            if input.device != reference.device:
                raise ValueError(
                    f"input must be on the device of the module's parameters ({reference.device}); got {input.device}"
                )
            if input.dtype != reference.dtype and not torch.is_autocast_enabled(input.device.type):
                raise TypeError(
                    f"input must have the dtype of the module's parameters ({reference.dtype}); got {input.dtype}"
                )
        return input, batched

    def _prepare_states(self, hx, batch: int, batched: bool, input: torch.Tensor):
        """hx -> a tuple of one [L*D, B, H] tensor per state (None: zeros), checked."""
        if len(self.state_names) == 1:
            return (self._prepare_hx(hx, batch, batched, input),)
        if hx is None:
            return (None,) * len(self.state_names)
        if not isinstance(hx, tuple) or len(hx) != len(self.state_names):
            raise TypeError(
                f"hx must be None or a tuple ({', '.join(self.state_names)}); got {type(hx).__name__}"
            )
        return tuple(
            self._prepare_hx(state, batch, batched, input, f"hx[{k}] ({name})")
            for k, (name, state) in enumerate(zip(self.state_names, hx, strict=True))
        )

    def _prepare_hx(self, hx, batch: int, batched: bool, input: torch.Tensor, argument: str = "hx"):
        if hx is None:
            return None
        check_tensor(hx, argument, dtypes=None)
        expected = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if not batched:
            if hx.dim() != 2:
                raise ValueError(
                    f"{argument} must be 2-D {expected[::2]} for unbatched input; got {describe(hx)}"
                )
            hx = hx.unsqueeze(1)
        if tuple(hx.shape) != expected:
            raise ValueError(
                f"{argument} must have shape {expected} (num_layers * num_directions, batch, hidden_size); got {describe(hx)}"
            )
        if hx.device != input.device:
            raise ValueError(
                f"{argument} must be on the same device as input ({input.device}); got {hx.device}"
            )
        state_dtype = self.state_dtype(input.dtype)
        if hx.dtype != state_dtype:
            raise TypeError(
                f"{argument} must have dtype {state_dtype} (the state of {input.dtype} input); got {hx.dtype}"
            )
        return hx

    def forward(self, input, hx=None, *, lengths=None):
        """input [T, B, I] (or [B, T, I] with batch_first, or unbatched [T, I], or a PackedSequence);
        hx [num_layers * num_directions, B, H] or None (a tuple of them for several states);
        lengths: None, or one length per sequence in [1, T] for a padded batch (a 1-D integer
        tensor or a list of ints). Returns (output [T, B, D*F], h_n [L*D, B, H]) in the input's
        layout, h_n a tuple for several states; F = H unless a subclass's `_direction_output` says
        otherwise. With lengths, outputs past a sequence's end are zero and h_n holds each
        sequence's state at its own last step (the reverse direction's after its first)."""
        packed = input if isinstance(input, PackedSequence) else None
        if packed is not None:
            if lengths is not None:
                raise ValueError("lengths must be None for a PackedSequence input (it carries its own)")
            input, lengths = pad_packed_sequence(packed)  # [T, B, I] in the caller's row order
            x, batched = self._prepare_input(input, time_major=True)
        else:
            x, batched = self._prepare_input(input)
        if lengths is not None and not batched:
            raise ValueError(f"lengths needs batched input; got unbatched input of {describe(input)}")
        lengths = check_lengths(lengths, x.shape[0], x.shape[1])
        states = self._prepare_states(hx, x.shape[1], batched, x)
        single = len(self.state_names) == 1
        finals = []
        last_layer = self.num_layers - 1
        for layer in range(self.num_layers):
            outs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                initial = tuple(s[index] if s is not None else None for s in states)
                xd = x if direction == 0 else self._reverse(x, lengths)
                out, final = self._run_direction(
                    layer, direction, xd, initial[0] if single else initial, lengths
                )
                out = self._direction_output(out, layer == last_layer)
                outs.append(out if direction == 0 else self._reverse(out, lengths))
                finals.append((final,) if single else final)
            x = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
            if self.dropout > 0 and self.training and layer < last_layer:
                x = F.dropout(x, self.dropout, training=True)
        x = self._output_layers(x, lengths)
        final_states = tuple(torch.stack(component) for component in zip(*finals, strict=True))
        if packed is not None:
            return self._pack_like(x, packed), final_states[0] if single else final_states
        if not batched:
            final_states = tuple(s.squeeze(1) for s in final_states)
            x = x.squeeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        return x, final_states[0] if single else final_states

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.batch_first:
            s += ", batch_first=True"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s
