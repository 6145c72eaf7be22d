"""Convolutions by Winograd's minimal filtering, for the CPU in FP32: F(4×4, 3×3) for 3×3
kernels, F(3×3, 2×2) for the 2×2 kernels of ParseNet's upsampling phases.

A direct 3×3 convolution spends 9 multiplications per output value and input channel.
Winograd's algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
2016) computes a 4×4 tile of outputs from the 6×6 input tile under it with 36: each tile is
mapped by fixed matrices into a 36-point transform domain, where the convolution becomes 36
independent matrix products over the channels, and mapped back. That is 4× less arithmetic
in the products, which are large GEMMs that run at the cores' peak; the two transforms are
small fixed matrix products of their own. F(3×3, 2×2) takes 16 multiplications for 9
outputs where direct takes 36 (2.25× less). oneDNN has a Winograd convolution only for
AVX-512 CPUs, so this one is written with torch's GEMMs.

The result is the convolution's, to rounding: the transforms add and subtract values before
multiplying, which costs up to about 1e-5 relative to the largest output in FP32 for
F(4×4, 3×3) and about 2e-6 for F(3×3, 2×2), whose points are 0 and ±1 (a direct
convolution's is about 1e-6). ParseNet's labels and the paste mask are unchanged by that in
the photos measured (docs/benchmarks.md). In BF16 the same rounding would be far larger, so
the fused head uses this for FP32 only.

Work goes in bands of tile rows, so that the memory a layer takes beyond its output is
bounded (about 90 MB) whatever the image size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch


@dataclass(frozen=True)
class Algorithm:
    """One minimal filtering algorithm F(m×m, r×r): m×m outputs of an r×r kernel from the
    (m+r-1)² input window under them, as the matrices Bᵀ (input), G (kernel), Aᵀ (output)."""

    tile: int  # m: outputs per tile side
    kernel: int  # r
    input_matrix: tuple[tuple[float, ...], ...]  # Bᵀ
    kernel_matrix: tuple[tuple[float, ...], ...]  # G
    output_matrix: tuple[tuple[float, ...], ...]  # Aᵀ

    @property
    def window(self) -> int:
        """Input pixels per tile side."""
        return self.tile + self.kernel - 1

    @property
    def points(self) -> int:
        """Points of the transform domain: one channel product (GEMM) each."""
        return self.window * self.window

    @cached_property
    def bias_point(self) -> int:
        """A point whose value reaches every output of the tile once (its column of Aᵀ is all
        ones), so the bias is added by that point's GEMM."""
        columns = list(zip(*self.output_matrix, strict=True))
        one = next(i for i, column in enumerate(columns) if all(v == 1 for v in column))
        return one * self.window + one

    @cached_property
    def input_transform(self) -> torch.Tensor:
        """Bᵀ on flattened input tiles (points × window²), built once."""
        return _on_tiles(self.input_matrix)

    @cached_property
    def output_transform(self) -> torch.Tensor:
        """Aᵀ on flattened transformed tiles (tile² × points), built once."""
        return _on_tiles(self.output_matrix)

    def kernels(self, weight: torch.Tensor) -> torch.Tensor:
        """O×I×r×r kernels as G·w·Gᵀ at each point: points × I × O, computed in float64."""
        outputs, inputs = weight.shape[:2]
        g = torch.tensor(self.kernel_matrix, dtype=torch.float64)
        transformed = g @ weight.double() @ g.T  # O×I×window×window
        return transformed.permute(2, 3, 1, 0).reshape(self.points, inputs, outputs).float()


def _on_tiles(matrix: tuple[tuple[float, ...], ...]) -> torch.Tensor:
    """A 1-D transform M as the 2-D one on flattened tiles: M·d·Mᵀ is kron(M, M) times d's
    values in row order."""
    m = torch.tensor(matrix, dtype=torch.float32)
    return torch.kron(m, m)


# Lavin & Gray's F(4, 3), points 0, ±1, ±2, ∞.
F4x4_3x3 = Algorithm(
    tile=4,
    kernel=3,
    input_matrix=(
        (4, 0, -5, 0, 1, 0),
        (0, -4, -4, 1, 1, 0),
        (0, 4, -4, -1, 1, 0),
        (0, -2, -1, 2, 1, 0),
        (0, 2, -1, -2, 1, 0),
        (0, 4, 0, -5, 0, 1),
    ),
    kernel_matrix=(
        (1 / 4, 0, 0),
        (-1 / 6, -1 / 6, -1 / 6),
        (-1 / 6, 1 / 6, -1 / 6),
        (1 / 24, 1 / 12, 1 / 6),
        (1 / 24, -1 / 12, 1 / 6),
        (0, 0, 1),
    ),
    output_matrix=(
        (1, 1, 1, 1, 1, 0),
        (0, 1, -1, 2, -2, 0),
        (0, 1, 1, 4, 4, 0),
        (0, 1, -1, 8, -8, 1),
    ),
)
# F(3, 2), points 0, ±1, ∞: F(2, 3) with the roles of kernel and output exchanged (its Aᵀ
# transposed is this G, its G transposed this Aᵀ, halves moved into G). For the 2×2 kernels
# of ParseNet's upsampling phases: 16 multiplications for 9 outputs where direct takes 36.
F3x3_2x2 = Algorithm(
    tile=3,
    kernel=2,
    input_matrix=(
        (1, 0, -1, 0),
        (0, 1, 1, 0),
        (0, -1, 1, 0),
        (0, 1, 0, -1),
    ),
    kernel_matrix=(
        (1, 0),
        (1 / 2, 1 / 2),
        (1 / 2, -1 / 2),
        (0, -1),
    ),
    output_matrix=(
        (1, 1, 1, 0),
        (0, 1, -1, 0),
        (0, 1, 1, 1),
    ),
)
ALGORITHMS = {algorithm.kernel: algorithm for algorithm in (F4x4_3x3, F3x3_2x2)}

# Bytes of one transform point's share of a band (tile rows × tiles × the wider of the input
# and output channels × 4): 1 MB was the fastest measured, smaller bands making more and
# smaller calls (docs/benchmarks.md); a band's buffers then total about 90 MB at most.
BAND_BYTES = 1 << 20


class WinogradConv:
    """A stride-1 convolution of a padded channels-last FP32 input (N×C×(H+r-1)×(W+r-1)) by
    r×r kernels and their bias, then a leaky ReLU of slope `slope` or the addition of
    `residual`, by the algorithm for r (F(4×4, 3×3) or F(3×3, 2×2)); H and W whole tiles
    (`fits`). The result goes to `out` where given (any N×O×H×W view, such as the inside of
    the next layer's padded input), else to a new tensor."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        self.algorithm = ALGORITHMS[weight.shape[-1]]
        self.kernels = self.algorithm.kernels(weight).contiguous()
        self.bias = bias.float()

    def output_size(self, padded: torch.Tensor) -> tuple[int, int]:
        """The output's height and width for this input."""
        margin = self.algorithm.kernel - 1
        return padded.shape[-2] - margin, padded.shape[-1] - margin

    def fits(self, padded: torch.Tensor) -> bool:
        """Whether an input's size is whole tiles (otherwise the caller convolves directly)."""
        tile = self.algorithm.tile
        return all(size > 0 and size % tile == 0 for size in self.output_size(padded))

    def __call__(
        self,
        padded: torch.Tensor,
        slope: float | None = None,
        residual: torch.Tensor | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if slope is not None and residual is not None:
            raise ValueError("a leaky ReLU or a residual, not both")
        algorithm, (height, width) = self.algorithm, self.output_size(padded)
        tile, points = algorithm.tile, algorithm.points
        n, channels = padded.shape[:2]
        rows, columns = height // tile, width // tile
        outputs = self.kernels.shape[2]
        shape = (n, outputs, height, width)
        if out is None:
            out = torch.empty(shape, dtype=padded.dtype, memory_format=torch.channels_last)
        elif out.shape != shape:
            raise ValueError(f"an output of shape {tuple(out.shape)} for results of {shape}")
        pixels = padded.permute(0, 2, 3, 1)  # N×H×W×C views of the channels-last tensors
        out_pixels = out.permute(0, 2, 3, 1)
        if residual is not None:
            residual = residual.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1)
        band = max(1, BAND_BYTES // (columns * max(channels, outputs) * 4))
        for first in range(0, rows, band):
            count = min(band, rows - first)
            tiles = self._tiles(pixels, first, count, columns)
            products = self._products(tiles.view(points, -1, channels))
            values = (algorithm.output_transform @ products.view(points, -1)).view(
                tile, tile, n, count, columns, outputs
            )
            target = self._band(out_pixels, first, count)
            added = None if residual is None else self._band(residual, first, count)
            for row in range(tile):  # the values of each row of the tiles to their pixels
                value, pixel = values[row], target[row]
                if added is not None:
                    torch.add(value, added[row], out=pixel)
                elif slope is None:
                    pixel.copy_(value)
                else:
                    torch.ops.aten.leaky_relu.out(value, slope, out=pixel)
        return out

    def _tiles(self, pixels: torch.Tensor, first: int, count: int, columns: int) -> torch.Tensor:
        """The transformed input tiles of a band of tile rows: points × N·count·columns × C."""
        tile, window = self.algorithm.tile, self.algorithm.window
        n, _, _, channels = pixels.shape
        tiles = torch.empty(window, window, n, count, columns, channels, dtype=pixels.dtype)
        s_n, s_h, s_w, s_c = pixels.stride()
        start = pixels.storage_offset() + first * tile * s_h
        shape = (window, n, count, columns, channels)  # a row of every tile, column by column
        strides = (s_w, s_n, tile * s_h, tile * s_w, s_c)
        for row in range(window):
            tiles[row] = pixels.as_strided(shape, strides, start + row * s_h)
        return self.algorithm.input_transform @ tiles.view(self.algorithm.points, -1)

    def _products(self, tiles: torch.Tensor) -> torch.Tensor:
        """The channel products, one GEMM a point (torch's batched GEMM was slower here)."""
        points, bias_point = self.algorithm.points, self.algorithm.bias_point
        products = torch.empty(points, tiles.shape[1], self.kernels.shape[2], dtype=tiles.dtype)
        for point in range(points):
            if point == bias_point:
                torch.addmm(self.bias, tiles[point], self.kernels[point], out=products[point])
            else:
                torch.mm(tiles[point], self.kernels[point], out=products[point])
        return products

    def _band(self, pixels: torch.Tensor, first: int, count: int) -> torch.Tensor:
        """A band of tile rows of an output-sized N×H×W×C tensor, as a view (row in the tile,
        column in the tile, N, tile row, tile column, C)."""
        tile = self.algorithm.tile
        n, _, width, channels = pixels.shape
        band = pixels[:, first * tile : (first + count) * tile]
        view = band.view(n, count, tile, width // tile, tile, channels)
        return view.permute(2, 4, 0, 1, 3, 5)
