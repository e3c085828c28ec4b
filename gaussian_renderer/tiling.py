"""Binning of Gaussians into small compute tiles: per-tile candidate lists in depth order.

A Gaussian may only be drawn in the 16x16 tiles of its rectangle (``projection.py``), and only
where α = o·exp(-q/2) >= 1/255, i.e. inside the ellipse q <= 2 ln(255 o). Work is done on
COMPUTE_TILE x COMPUTE_TILE pixel blocks: a Gaussian is listed for a block when the block meets
both its 16x16-tile rectangle and the bounding box of that ellipse. Every skipped (block,
Gaussian) pair has α < 1/255 at all of the block's pixels, so the result is exactly that of
evaluating the whole rectangle, with a fraction of the work. Gaussians with o < 1/255 are never
drawn and are not listed.

Pairs are generated front to back and stably sorted by block, so each block's list is sorted by
view depth (ties by index).
"""
import math
from typing import NamedTuple

import torch

from gaussian_renderer.rules import ALPHA_MIN, TILE

COMPUTE_TILE = 8
PIXELS_PER_TILE = COMPUTE_TILE * COMPUTE_TILE


class TileBins(NamedTuple):
    gaussian_ids: torch.Tensor  # [M] int64, each pair's Gaussian, block-major then front to back
    pair_tiles: torch.Tensor    # [M] int64, each pair's block
    tile_starts: torch.Tensor   # [T + 1] int64 offsets of each block's list
    tiles_x: int                # blocks per row
    tiles_y: int

    @property
    def num_tiles(self) -> int:
        return self.tiles_x * self.tiles_y

    def tile_centres(self, tiles: torch.Tensor, dtype) -> torch.Tensor:
        """Pixel coordinates [len(tiles), 2] of the centres of blocks."""
        half = (COMPUTE_TILE - 1) / 2.0
        x = (tiles % self.tiles_x) * COMPUTE_TILE + half
        y = torch.div(tiles, self.tiles_x, rounding_mode="floor") * COMPUTE_TILE + half
        return torch.stack([x, y], dim=1).to(dtype)


def local_pixel_offsets(device, dtype) -> torch.Tensor:
    """Offsets (u, v) [P, 2] of a block's pixels from its centre; pixel p = (p % S, p // S)."""
    p = torch.arange(PIXELS_PER_TILE, device=device)
    half = (COMPUTE_TILE - 1) / 2.0
    return torch.stack([p % COMPUTE_TILE - half, p // COMPUTE_TILE - half], dim=1).to(dtype)


def bin_gaussians(pixel_means, conics, opacities, tile_rects, view_depths, radii,
                  image_height: int, image_width: int) -> TileBins:
    """pixel_means [N,2], conics [N,3], opacities [N], tile_rects [N,4] (16-px tiles, half-open),
    view_depths [N], radii [N] (0 = not drawn)."""
    tiles_x = math.ceil(image_width / COMPUTE_TILE)
    tiles_y = math.ceil(image_height / COMPUTE_TILE)
    device = pixel_means.device
    drawable = (radii > 0) & (opacities.detach() >= ALPHA_MIN)
    candidates = torch.nonzero(drawable).squeeze(1)
    ids = candidates[torch.argsort(view_depths[candidates].detach(), stable=True)]  # front to back

    lo, hi = _pixel_range(pixel_means[ids], conics[ids], opacities[ids], tile_rects[ids],
                          image_height, image_width)
    blo = torch.div(lo, COMPUTE_TILE, rounding_mode="floor")
    bhi = torch.div(hi, COMPUTE_TILE, rounding_mode="floor")
    nonempty = (hi >= lo).all(dim=1)
    width = torch.where(nonempty, bhi[:, 0] - blo[:, 0] + 1, torch.zeros_like(blo[:, 0]))
    counts = width * (bhi[:, 1] - blo[:, 1] + 1)

    owner = torch.repeat_interleave(torch.arange(ids.numel(), device=device), counts)
    first = torch.cumsum(counts, 0) - counts
    local = torch.arange(owner.numel(), device=device) - first[owner]
    w = width[owner]
    tx = blo[owner, 0] + local % w
    ty = blo[owner, 1] + torch.div(local, w, rounding_mode="floor")
    pair_tiles, perm = torch.sort(ty * tiles_x + tx, stable=True)

    per_tile = torch.bincount(pair_tiles, minlength=tiles_x * tiles_y)
    tile_starts = torch.zeros(tiles_x * tiles_y + 1, dtype=torch.int64, device=device)
    tile_starts[1:] = torch.cumsum(per_tile, 0)
    return TileBins(ids[owner[perm]], pair_tiles, tile_starts, tiles_x, tiles_y)


def _pixel_range(means, conics, opacities, tile_rects, image_height, image_width):
    """Inclusive pixel ranges lo, hi [n, 2] (x, y) where the Gaussians can reach α >= 1/255,
    within their 16-px tile rectangle and the image. Slightly conservative (float64, margin)."""
    m, q, o = means.detach().double(), conics.detach().double(), opacities.detach().double()
    a, b, c = q.unbind(1)
    det = (a * c - b * b).clamp_min(1e-300)
    reach2 = 2.0 * torch.log((o * 255.0).clamp_min(1.0)) * (1.0 + 1e-6) + 1e-6
    half = torch.stack([(reach2 * c / det).sqrt(), (reach2 * a / det).sqrt()], dim=1) + 1e-4
    lo = torch.ceil(m - half).clamp(-1e9, 1e9).long()
    hi = torch.floor(m + half).clamp(-1e9, 1e9).long()
    rect_lo = tile_rects[:, :2] * TILE
    rect_hi = tile_rects[:, 2:] * TILE - 1
    size = torch.tensor([image_width - 1, image_height - 1], device=means.device)
    lo = torch.maximum(torch.maximum(lo, rect_lo), torch.zeros_like(lo))
    hi = torch.minimum(torch.minimum(hi, rect_hi), size)
    return lo, hi
