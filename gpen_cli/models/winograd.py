"""3×3 convolutions by Winograd's minimal filtering F(4×4, 3×3), for the CPU in FP32.

A direct 3×3 convolution spends 9 multiplications per output value and input channel.
Winograd's algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
2016) computes a 4×4 tile of outputs from the 6×6 input tile under it with 36: each tile is
mapped by fixed matrices into a 36-point transform domain, where the convolution becomes 36
independent matrix products over the channels, and mapped back. That is 4× less arithmetic
in the products, which are large GEMMs that run at the cores' peak; the two transforms are
small fixed matrix products of their own. oneDNN has a Winograd convolution only for
AVX-512 CPUs, so this one is written with torch's GEMMs.

The result is the convolution's, to rounding: the transforms add and subtract values before
multiplying, which costs up to about 1e-5 relative to the largest output in FP32 (a direct
convolution's is about 1e-6). ParseNet's labels and the paste mask are unchanged by that in
the photos measured (docs/benchmarks.md). In BF16 the same rounding would be far larger, so
the fused head uses this for FP32 only.

Work goes in bands of tile rows, so that the memory a layer takes beyond its output is
bounded (about 90 MB) whatever the image size.
"""

from __future__ import annotations

import torch

TILE = 4  # outputs per tile side: F(4×4, 3×3)
WINDOW = TILE + 2  # input pixels per tile side
POINTS = WINDOW * WINDOW
# Lavin & Gray's matrices for F(4, 3) (input transform Bᵀ, kernel transform G, output Aᵀ).
_BT = (
    (4, 0, -5, 0, 1, 0),
    (0, -4, -4, 1, 1, 0),
    (0, 4, -4, -1, 1, 0),
    (0, -2, -1, 2, 1, 0),
    (0, 2, -1, -2, 1, 0),
    (0, 4, 0, -5, 0, 1),
)
_G = (
    (1 / 4, 0, 0),
    (-1 / 6, -1 / 6, -1 / 6),
    (-1 / 6, 1 / 6, -1 / 6),
    (1 / 24, 1 / 12, 1 / 6),
    (1 / 24, -1 / 12, 1 / 6),
    (0, 0, 1),
)
_AT = (
    (1, 1, 1, 1, 1, 0),
    (0, 1, -1, 2, -2, 0),
    (0, 1, 1, 4, 4, 0),
    (0, 1, -1, 8, -8, 1),
)


def _on_tiles(matrix: tuple[tuple[int, ...], ...]) -> torch.Tensor:
    """A 1-D transform M as the 2-D one on flattened tiles: M·d·Mᵀ is kron(M, M) times d's
    values in row order."""
    m = torch.tensor(matrix, dtype=torch.float32)
    return torch.kron(m, m)


_INPUT_TRANSFORM = _on_tiles(_BT)
_OUTPUT_TRANSFORM = _on_tiles(_AT)
# Aᵀ's column 1 is all ones: a value added at transform point (1, 1) reaches every output of
# the tile once, so the bias is added by the GEMM of that point.
_BIAS_POINT = 1 * WINDOW + 1
# Bytes of one transform point's share of a band (tile rows × tiles × the wider of the input
# and output channels × 4): 1 MB was the fastest measured, smaller bands making more and
# smaller calls (docs/benchmarks.md); a band's buffers then total about 90 MB at most.
BAND_BYTES = 1 << 20


class WinogradConv:
    """A 3×3, stride-1 convolution of a padded channels-last FP32 input (N×C×(H+2)×(W+2)) and
    its bias, then a leaky ReLU of slope `slope` or the addition of `residual`, as
    F(4×4, 3×3); H and W multiples of 4 (`fits`)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        out_channels, in_channels = weight.shape[:2]
        g = torch.tensor(_G, dtype=torch.float64)
        transformed = g @ weight.double() @ g.T  # O×I×6×6
        self.kernels = (
            transformed.permute(2, 3, 1, 0).reshape(POINTS, in_channels, out_channels).float()
        ).contiguous()
        self.bias = bias.float()

    @staticmethod
    def fits(padded: torch.Tensor) -> bool:
        """Whether an input's size is whole tiles (otherwise the caller convolves directly)."""
        height, width = padded.shape[-2] - 2, padded.shape[-1] - 2
        return height > 0 and width > 0 and height % TILE == 0 and width % TILE == 0

    def __call__(
        self,
        padded: torch.Tensor,
        slope: float | None = None,
        residual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if slope is not None and residual is not None:
            raise ValueError("a leaky ReLU or a residual, not both")
        n, channels, height, width = padded.shape
        rows, columns = (height - 2) // TILE, (width - 2) // TILE
        outputs = self.kernels.shape[2]
        out = torch.empty(
            n, outputs, height - 2, width - 2, dtype=padded.dtype, memory_format=torch.channels_last
        )
        pixels = padded.permute(0, 2, 3, 1)  # N×H×W×C views of the channels-last tensors
        out_pixels = out.permute(0, 2, 3, 1)
        if residual is not None:
            residual = residual.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1)
        band = max(1, BAND_BYTES // (columns * max(channels, outputs) * 4))
        for first in range(0, rows, band):
            count = min(band, rows - first)
            tiles = self._tiles(pixels, first, count, columns)
            products = self._products(tiles.view(POINTS, -1, channels))
            values = (_OUTPUT_TRANSFORM @ products.view(POINTS, -1)).view(
                TILE, TILE, n, count, columns, outputs
            )
            target = self._band(out_pixels, first, count)
            added = None if residual is None else self._band(residual, first, count)
            for row in range(TILE):  # the values of each row of the tiles to their pixels
                value, pixel = values[row], target[row]
                if added is not None:
                    torch.add(value, added[row], out=pixel)
                elif slope is None:
                    pixel.copy_(value)
                else:
                    torch.ops.aten.leaky_relu.out(value, slope, out=pixel)
        return out

    def _tiles(self, pixels: torch.Tensor, first: int, count: int, columns: int) -> torch.Tensor:
        """The transformed input tiles of a band of tile rows: 36 × N·count·columns × C."""
        n, _, _, channels = pixels.shape
        tiles = torch.empty(WINDOW, WINDOW, n, count, columns, channels, dtype=pixels.dtype)
        s_n, s_h, s_w, s_c = pixels.stride()
        start = pixels.storage_offset() + first * TILE * s_h
        shape = (WINDOW, n, count, columns, channels)  # a row of every tile, column by column
        strides = (s_w, s_n, TILE * s_h, TILE * s_w, s_c)
        for row in range(WINDOW):
            tiles[row] = pixels.as_strided(shape, strides, start + row * s_h)
        return _INPUT_TRANSFORM @ tiles.view(POINTS, -1)

    def _products(self, tiles: torch.Tensor) -> torch.Tensor:
        """The 36 channel products (one GEMM each: torch's batched GEMM was slower here)."""
        products = torch.empty(POINTS, tiles.shape[1], self.kernels.shape[2], dtype=tiles.dtype)
        for point in range(POINTS):
            if point == _BIAS_POINT:
                torch.addmm(self.bias, tiles[point], self.kernels[point], out=products[point])
            else:
                torch.mm(tiles[point], self.kernels[point], out=products[point])
        return products

    @staticmethod
    def _band(pixels: torch.Tensor, first: int, count: int) -> torch.Tensor:
        """A band of tile rows of an output-sized N×H×W×C tensor, as a view (row in the tile,
        column in the tile, N, tile row, tile column, C)."""
        n, _, width, channels = pixels.shape
        band = pixels[:, first * TILE : (first + count) * TILE]
        view = band.view(n, count, TILE, width // TILE, TILE, channels)
        return view.permute(2, 4, 0, 1, 3, 5)
