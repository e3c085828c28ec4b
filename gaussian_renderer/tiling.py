"""Binning of Gaussians into 16x16 screen tiles: per-tile candidate lists in depth order.

Each visible Gaussian emits one (tile, gaussian) pair per tile of its rectangle. Pairs are
generated in front-to-back order and stably sorted by tile, so every tile's list is sorted by
view depth (ties by index). Tiles are then grouped into batches of similar list length so the
compositing can work on padded [batch, pixels, list] blocks without wasting much padding.
"""
import math
from typing import List, NamedTuple

import torch

from gaussian_renderer.projection import TILE_SIZE

PIXELS_PER_TILE = TILE_SIZE * TILE_SIZE


class TileBins(NamedTuple):
    gaussian_ids: torch.Tensor  # [M] int64, the pairs' Gaussians, tile-major then front to back
    tile_starts: torch.Tensor   # [T + 1] int64 offsets of each tile's list in gaussian_ids
    tiles_x: int
    tiles_y: int

    @property
    def num_tiles(self) -> int:
        return self.tiles_x * self.tiles_y

    def counts(self) -> torch.Tensor:
        return self.tile_starts[1:] - self.tile_starts[:-1]


def bin_gaussians(tile_rects: torch.Tensor, view_depths: torch.Tensor, radii: torch.Tensor,
                  image_height: int, image_width: int) -> TileBins:
    """tile_rects [N, 4] (x0, y0, x1, y1) half-open, view_depths [N], radii [N] (0 = skip)."""
    tiles_x = math.ceil(image_width / TILE_SIZE)
    tiles_y = math.ceil(image_height / TILE_SIZE)
    device = tile_rects.device
    visible = torch.nonzero(radii > 0).squeeze(1)
    order = torch.argsort(view_depths[visible].detach(), stable=True)
    ids = visible[order]  # front to back
    rect = tile_rects[ids]
    width = rect[:, 2] - rect[:, 0]
    counts = width * (rect[:, 3] - rect[:, 1])

    owner = torch.repeat_interleave(torch.arange(ids.numel(), device=device), counts)
    first = torch.cumsum(counts, 0) - counts
    local = torch.arange(owner.numel(), device=device) - first[owner]
    tx = rect[owner, 0] + local % width[owner]
    ty = rect[owner, 1] + local // width[owner]
    tile = ty * tiles_x + tx
    tile_sorted, perm = torch.sort(tile, stable=True)
    gaussian_ids = ids[owner[perm]]

    per_tile = torch.bincount(tile_sorted, minlength=tiles_x * tiles_y)
    tile_starts = torch.zeros(tiles_x * tiles_y + 1, dtype=torch.int64, device=device)
    tile_starts[1:] = torch.cumsum(per_tile, 0)
    return TileBins(gaussian_ids, tile_starts, tiles_x, tiles_y)


class TileBatch(NamedTuple):
    tiles: torch.Tensor     # [B] int64 tile indices
    ids: torch.Tensor       # [B, L] int64 Gaussian ids front to back, padded with `pad_id`
    pixels: torch.Tensor    # [B, P, 2] pixel coordinates (x, y) of each tile's pixels
    inside: torch.Tensor    # [B, P] bool, pixel lies inside the image


def tile_batches(bins: TileBins, pad_id: int, image_height: int, image_width: int,
                 max_elements: int, dtype: torch.dtype) -> List[TileBatch]:
    """Non-empty tiles, longest lists first, in batches of at most ~max_elements
    (tiles x pixels x chunk) where chunk = min(longest list in the batch, CHUNK)."""
    counts = bins.counts()
    nonempty = torch.nonzero(counts > 0).squeeze(1)
    nonempty = nonempty[torch.argsort(counts[nonempty], descending=True, stable=True)]
    counts_host = counts[nonempty].tolist()
    batches, i = [], 0
    while i < len(counts_host):
        chunk = min(counts_host[i], LIST_CHUNK)
        size = max(1, max_elements // (PIXELS_PER_TILE * chunk))
        tiles = nonempty[i:i + size]
        batches.append(_make_batch(bins, tiles, counts_host[i], pad_id, image_height, image_width, dtype))
        i += size
    return batches


# Length of the slices of a tile's list processed at once (memory bound, and the unit at
# which a batch stops early once all its pixels are saturated).
LIST_CHUNK = 256


def _make_batch(bins, tiles, longest, pad_id, image_height, image_width, dtype) -> TileBatch:
    device = tiles.device
    starts = bins.tile_starts[tiles]
    counts = bins.tile_starts[tiles + 1] - starts
    slot = torch.arange(longest, device=device)
    in_list = slot[None, :] < counts[:, None]
    pos = (starts[:, None] + slot[None, :]).clamp_max(max(bins.gaussian_ids.numel() - 1, 0))
    ids = torch.where(in_list, bins.gaussian_ids[pos], torch.full_like(pos, pad_id))

    local = torch.arange(PIXELS_PER_TILE, device=device)
    px = (tiles % bins.tiles_x)[:, None] * TILE_SIZE + local[None, :] % TILE_SIZE
    py = (tiles // bins.tiles_x)[:, None] * TILE_SIZE + local[None, :] // TILE_SIZE
    inside = (px < image_width) & (py < image_height)
    pixels = torch.stack([px, py], dim=-1).to(dtype)
    return TileBatch(tiles, ids, pixels, inside)
