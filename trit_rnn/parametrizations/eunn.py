"""The EUNN matrix (Jing et al. 2017): layers of disjoint 2x2 rotations, W = D F_{L-1} ... F_1 F_0
(column form; layer F_0 acts first, D = diag(exp(i delta)) last, complex mode only).

A pair (a, b) of a layer acts as [[cos t, -e^{ip} sin t], [sin t, e^{ip} cos t]] on (x_a, x_b)
(p = 0 in real mode). A unit that a layer leaves unpaired passes through unchanged.

- tunable style, capacity L: layer l pairs (0,1), (2,3), ... when l is even and (1,2), (3,4), ...
  when l is odd, so any size works (an odd size leaves the last unit of the even layers unpaired;
  the odd layers always leave unit 0 and, for an even size, the last unit unpaired).
  Real parameters: ceil(L/2) floor(n/2) + floor(L/2) floor((n-1)/2) angles, i.e. L(n-1)/2 for an
  even L; complex mode has as many phases p plus n phases delta: L(n-1) + n, = n^2 at L = n (all of
  U(n)).
- FFT style: log2(n) layers, layer k pairs (j, j + 2^k) for every j whose bit k is 0; n must be a
  power of two. Real: (n/2) log2 n parameters; complex: n log2 n + n.
"""

import math

import torch
from torch import nn

from ..validation import check_positive_int
from .unitary import COMPLEX_OF, Unitary, check_real_dtype


def tunable_pairs(size: int, capacity: int) -> list[list[tuple[int, int]]]:
    """The pairs of each of the `capacity` layers of the tunable style."""
    return [[(a, a + 1) for a in range(layer % 2, size - 1, 2)] for layer in range(capacity)]


def fft_pairs(size: int) -> list[list[tuple[int, int]]]:
    """The pairs of each of the log2(size) layers of the FFT style; size must be a power of two."""
    if size & (size - 1):
        raise ValueError(
            f"the FFT-style EUNN needs a power-of-two hidden size; got {size} "
            f"(the tunable style, fft=False, takes any size)"
        )
    layers = []
    for k in range(size.bit_length() - 1):
        stride = 1 << k
        layers.append([(a, a + stride) for a in range(size) if not a & stride])
    return layers


class EUNNUnitary(Unitary):
    """W [n, n] from layers of 2x2 rotations: unitary (complex=True) or orthogonal (complex=False).

    Parameters: `angles` [P] (t of every pair, layer by layer), and in complex mode `pair_phases` [P]
    (p) and `diagonal_phases` [n] (delta). Init: all U(-pi, pi) (as the EUNN paper).

    Args:
        size: n.
        capacity: number of layers of the tunable style (default 2); not used with fft=True.
        fft: the FFT style (log2 n layers) instead of the tunable one.
        complex: unitary W on a complex state (True) or orthogonal W on a real state (False).
    """

    def __init__(
        self,
        size: int,
        capacity: int | None = None,
        *,
        fft: bool = False,
        complex: bool = True,
        generator: torch.Generator | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__(size)
        if not isinstance(fft, bool):
            raise TypeError(f"fft must be a bool; got {fft!r}")
        if not isinstance(complex, bool):
            raise TypeError(f"complex must be a bool; got {complex!r}")
        if fft and capacity is not None:
            raise ValueError(
                f"capacity sets the number of layers of the tunable style; the FFT style has log2(n) "
                f"layers: leave capacity unset with fft=True (got capacity={capacity!r})"
            )
        self.fft = fft
        self.complex = complex
        self.capacity = None if fft else check_positive_int(2 if capacity is None else capacity, "capacity")
        dtype = check_real_dtype(dtype)
        layers = fft_pairs(size) if fft else tunable_pairs(size, self.capacity)
        self.num_layers = len(layers)
        self._register_layer_indices(layers, device)
        num_pairs = sum(len(pairs) for pairs in layers)
        factory = {"device": device, "dtype": dtype}
        self.angles = nn.Parameter(torch.empty(num_pairs, **factory))
        if complex:
            self.pair_phases = nn.Parameter(torch.empty(num_pairs, **factory))
            self.diagonal_phases = nn.Parameter(torch.empty(size, **factory))
        self.reset_parameters(generator)

    def _register_layer_indices(self, layers, device) -> None:
        """Per layer and unit [L, n]: the partner unit (itself when unpaired), the index of the pair's
        parameters (0 when unpaired), and the role: 1 for the first unit of a pair, 2 for the
        second, 0 for an unpaired unit."""
        shape = (len(layers), self.size)
        partner = torch.arange(self.size).repeat(len(layers), 1)
        pair_index = torch.zeros(shape, dtype=torch.long)
        role = torch.zeros(shape, dtype=torch.long)
        index = 0
        for layer, pairs in enumerate(layers):
            for a, b in pairs:
                partner[layer, a], partner[layer, b] = b, a
                pair_index[layer, a] = pair_index[layer, b] = index
                role[layer, a], role[layer, b] = 1, 2
                index += 1
        # Derived from the sizes: not part of the state_dict.
        self.register_buffer("partner", partner.to(device), persistent=False)
        self.register_buffer("pair_index", pair_index.to(device), persistent=False)
        self.register_buffer("role", role.to(device), persistent=False)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        for p in self.parameters():
            p.copy_((torch.rand(p.shape, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi)

    @property
    def state_dtype(self) -> torch.dtype:
        return COMPLEX_OF[self.angles.dtype] if self.complex else self.angles.dtype

    def layer_coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(diagonal, off_diagonal) [L, n]: layer l maps x to x * diagonal[l] + x[partner[l]] *
        off_diagonal[l]. First unit a of a pair: (cos t, -e^{ip} sin t); second unit b:
        (e^{ip} cos t, sin t); unpaired: (1, 0)."""
        if self.angles.numel() == 0:
            ones = torch.ones(self.role.shape, dtype=self.state_dtype, device=self.angles.device)
            return ones, torch.zeros_like(ones)
        t = self.angles[self.pair_index]
        cos, sin = torch.cos(t), torch.sin(t)
        first, second = self.role == 1, self.role == 2
        if self.complex:
            rotation = torch.polar(torch.ones_like(t), self.pair_phases[self.pair_index])
            cos, sin = cos.to(self.state_dtype), sin.to(self.state_dtype)
        else:
            rotation = torch.ones_like(t)
        one, zero = torch.ones_like(cos), torch.zeros_like(cos)
        diagonal = torch.where(first, cos, torch.where(second, rotation * cos, one))
        off_diagonal = torch.where(first, -rotation * sin, torch.where(second, sin, zero))
        return diagonal, off_diagonal

    def transform(self, h: torch.Tensor) -> torch.Tensor:
        diagonal, off_diagonal = self.layer_coefficients()
        compiling = torch.compiler.is_compiling()
        for layer in range(self.num_layers):
            h = h * diagonal[layer] + self._partners(h, layer, compiling) * off_diagonal[layer]
        if self.complex:
            h = h * torch.polar(torch.ones_like(self.diagonal_phases), self.diagonal_phases)
        return h

    def _partners(self, h: torch.Tensor, layer: int, compiling: bool) -> torch.Tensor:
        """h [..., n] with each unit replaced by its partner's value in this layer. Under
        torch.compile it is a product with the permutation matrix (exact: one 1 per column):
        inductor (torch 2.13, CPU) corrupts the heap when the backward of this gather feeds a
        concatenation with other weights (GORU's [W_r; W_g; U]), reproduced without this library's
        ops; eagerly the gather is O(n) per row instead of O(n^2)."""
        if not compiling:
            return h[..., self.partner[layer]]
        eye = torch.eye(self.size, dtype=h.dtype, device=h.device)
        return h @ eye[:, self.partner[layer]]

    def extra_repr(self) -> str:
        style = "fft=True" if self.fft else f"capacity={self.capacity}"
        return f"{super().extra_repr()}, {style}, complex={self.complex}"
