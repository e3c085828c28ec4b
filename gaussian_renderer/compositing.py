"""Tiled front-to-back alpha compositing with a hand-written backward (the reference's hot loop).

For each pixel, over its tile's depth-sorted list (rules in ``projection.py``):
    α_i = min(0.99, o_i exp(power_i)),  power_i = -½ dᵀ Σ_i⁻¹ d,  d = pixel - centre_i
    skipped (α_i = 0) where power_i > 0 or α_i < 1/255;
    T_i = Π_{j<i} (1 - α_j);  a pixel stops at the first i with T_i (1 - α_i) < 1e-4
    (that Gaussian and every later one are not blended);
    out = Σ_i α_i T_i f_i over features f [N, C],  T_final = Π (1 - α_i) over blended Gaussians.
Colour, depth and hand-mask features are all channels of f; the caller adds T_final·bg to colour.

Work is done per batch of tiles as [tiles B, pixels P = 256, list slice l] blocks; a tile's list is
walked in slices of LIST_CHUNK, carrying T and a "stopped" flag, so memory never depends on the
list length and a batch stops as soon as all its pixels are saturated. The backward walks the
slices back to front, carrying Σ_{j>i} α_j T_j (f_j·g) + T_final g_T, which gives
    ∂L/∂α_i = T_i (f_i·g) - (Σ_{j>i} α_j T_j (f_j·g) + T_final g_T) / (1 - α_i).
Derivatives are exact: a clamped α (0.99) or a skipped one passes no gradient.
"""
from typing import List, NamedTuple

import torch

from gaussian_renderer.tiling import (LIST_CHUNK, PIXELS_PER_TILE, TileBatch, TileBins,
                                      tile_batches)

ALPHA_MAX = 0.99
ALPHA_MIN = 1.0 / 255.0
T_MIN = 1e-4
# Elements (tiles x pixels x slice) of one block: bounds the working memory (~20 live blocks).
MAX_BLOCK_ELEMENTS = 1 << 21


class _Footprint(NamedTuple):
    dx: torch.Tensor      # [B, P, l] pixel - centre, x
    dy: torch.Tensor      # [B, P, l]
    gauss: torch.Tensor   # [B, P, l] exp(power)
    raw: torch.Tensor     # [B, P, l] o exp(power), before the clamp
    alpha: torch.Tensor   # [B, P, l] clamped, 0 where skipped
    smooth: torch.Tensor  # [B, P, l] bool: not skipped and not clamped (α differentiable)


def _footprint(pixels, means, conics, opacities) -> _Footprint:
    """pixels [B,P,2]; means [B,l,2]; conics [B,l,3]; opacities [B,l]."""
    dx = pixels[:, :, 0:1] - means[:, None, :, 0]
    dy = pixels[:, :, 1:2] - means[:, None, :, 1]
    a, b, c = conics[:, None, :, 0], conics[:, None, :, 1], conics[:, None, :, 2]
    power = -0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy
    gauss = torch.exp(power)
    raw = opacities[:, None, :] * gauss
    keep = (power <= 0) & (raw >= ALPHA_MIN)
    alpha = torch.where(keep, raw.clamp_max(ALPHA_MAX), torch.zeros_like(raw))
    return _Footprint(dx, dy, gauss, raw, alpha, keep & (raw < ALPHA_MAX))


class _Blend(NamedTuple):
    weights: torch.Tensor       # [B, P, l] α_i T_i of the blended Gaussians, 0 elsewhere
    before: torch.Tensor        # [B, P, l] T_i, transmittance in front of each Gaussian
    active: torch.Tensor        # [B, P, l] bool, blended (before the stop)
    T_after: torch.Tensor       # [B, P] transmittance after the slice
    stopped_after: torch.Tensor  # [B, P] bool


def _blend(alpha, T, stopped) -> _Blend:
    """alpha [B,P,l]; T, stopped [B,P] at the start of the slice. Sequential products from T, as a
    per-pixel loop would compute them."""
    one_minus = 1.0 - alpha
    before = torch.cumprod(torch.cat([T[..., None], one_minus[..., :-1]], dim=-1), dim=-1)
    after = before * one_minus
    active = (after >= T_MIN) & ~stopped[..., None]  # a prefix of the slice: `after` never grows
    weights = torch.where(active, alpha * before, torch.zeros_like(alpha))
    n_active = active.sum(-1, keepdim=True)
    last = after.gather(-1, (n_active - 1).clamp_min(0)).squeeze(-1)
    T_after = torch.where(n_active.squeeze(-1) > 0, last, T)
    return _Blend(weights, before, active, T_after, stopped | ~active[..., -1])


def _gather(tensor, ids):
    """Rows of tensor [N+1, ...] at ids [B, l] -> [B, l, ...]."""
    return tensor[ids.reshape(-1)].reshape(*ids.shape, *tensor.shape[1:])


def _padded(pixel_means, conics, opacities, features):
    """Append one transparent Gaussian (id N) used to pad the tile lists."""
    pad = lambda t: torch.cat([t, torch.zeros_like(t[:1])], dim=0)
    return pad(pixel_means), pad(conics), pad(opacities), pad(features)


class _BatchState(NamedTuple):
    slices: int                    # slices composited before all pixels stopped
    T_starts: List[torch.Tensor]   # per slice [B, P]
    stopped_starts: List[torch.Tensor]
    T_final: torch.Tensor          # [B, P]


def _forward_batch(batch: TileBatch, means, conics, opacities, features):
    B, P = batch.inside.shape
    T = torch.ones(B, P, dtype=means.dtype, device=means.device)
    stopped = ~batch.inside  # pixels outside the image need no work
    out = torch.zeros(B, P, features.shape[1], dtype=means.dtype, device=means.device)
    T_starts, stopped_starts = [], []
    for start in range(0, batch.ids.shape[1], LIST_CHUNK):
        if bool(stopped.all()):
            break
        ids = batch.ids[:, start:start + LIST_CHUNK]
        fp = _footprint(batch.pixels, _gather(means, ids), _gather(conics, ids), _gather(opacities, ids))
        blend = _blend(fp.alpha, T, stopped)
        out = out.baddbmm(blend.weights, _gather(features, ids))
        T_starts.append(T)
        stopped_starts.append(stopped)
        T, stopped = blend.T_after, blend.stopped_after
    return out, _BatchState(len(T_starts), T_starts, stopped_starts, T)


def _backward_batch(batch, state, grad_out, grad_T, means, conics, opacities, features, grads):
    """grad_out [B,P,C], grad_T [B,P]; accumulates into grads (means, conics, opacities, features)."""
    g_means, g_conics, g_opacities, g_features = grads
    later = state.T_final * grad_T  # Σ over later slices of α_j T_j (f_j·g), plus T_final g_T
    for k in reversed(range(state.slices)):
        ids = batch.ids[:, k * LIST_CHUNK:(k + 1) * LIST_CHUNK]
        feats, conic = _gather(features, ids), _gather(conics, ids)
        fp = _footprint(batch.pixels, _gather(means, ids), conic, _gather(opacities, ids))
        blend = _blend(fp.alpha, state.T_starts[k], state.stopped_starts[k])

        f_dot_g = torch.bmm(grad_out, feats.transpose(1, 2))  # [B, P, l]
        contribution = blend.weights * f_dot_g
        running = torch.cumsum(contribution, dim=-1)
        total = running[..., -1]
        behind = (later + total)[..., None] - running
        d_alpha = blend.before * f_dot_g - behind / (1.0 - fp.alpha)
        d_raw = torch.where(blend.active & fp.smooth, d_alpha, torch.zeros_like(d_alpha))
        later = later + total

        flat = ids.reshape(-1)
        g_features.index_add_(0, flat, torch.bmm(blend.weights.transpose(1, 2), grad_out).reshape(flat.numel(), -1))
        g_opacities.index_add_(0, flat, (d_raw * fp.gauss).sum(1).reshape(-1))
        d_power = d_raw * fp.raw
        a, b, c = conic[:, None, :, 0], conic[:, None, :, 1], conic[:, None, :, 2]
        d_conic = torch.stack([(-0.5 * fp.dx * fp.dx * d_power).sum(1),
                               (-fp.dx * fp.dy * d_power).sum(1),
                               (-0.5 * fp.dy * fp.dy * d_power).sum(1)], dim=-1)
        d_mean = torch.stack([((a * fp.dx + b * fp.dy) * d_power).sum(1),
                              ((b * fp.dx + c * fp.dy) * d_power).sum(1)], dim=-1)
        g_conics.index_add_(0, flat, d_conic.reshape(-1, 3))
        g_means.index_add_(0, flat, d_mean.reshape(-1, 2))


def _tiles_to_image(tiles: torch.Tensor, bins: TileBins, height: int, width: int) -> torch.Tensor:
    """[T, P, C] per-tile pixels -> [C, H, W]."""
    C, size = tiles.shape[-1], int(PIXELS_PER_TILE ** 0.5)
    grid = tiles.reshape(bins.tiles_y, bins.tiles_x, size, size, C).permute(4, 0, 2, 1, 3)
    return grid.reshape(C, bins.tiles_y * size, bins.tiles_x * size)[:, :height, :width]


def _image_to_tiles(image: torch.Tensor, bins: TileBins) -> torch.Tensor:
    """[C, H, W] -> [T, P, C], zero-padded to whole tiles."""
    C, H, W = image.shape
    size = int(PIXELS_PER_TILE ** 0.5)
    padded = image.new_zeros(C, bins.tiles_y * size, bins.tiles_x * size)
    padded[:, :H, :W] = image
    grid = padded.reshape(C, bins.tiles_y, size, bins.tiles_x, size).permute(1, 3, 2, 4, 0)
    return grid.reshape(bins.num_tiles, PIXELS_PER_TILE, C)


class TiledComposite(torch.autograd.Function):
    """(pixel_means [N,2], conics [N,3], opacities [N], features [N,C]) -> (image [C,H,W],
    T_final [H,W]); bins: the depth-sorted per-tile lists (see tiling.py)."""

    @staticmethod
    def forward(ctx, pixel_means, conics, opacities, features, bins: TileBins, height: int, width: int):
        N = pixel_means.shape[0]
        padded = _padded(pixel_means, conics, opacities, features)
        batches = tile_batches(bins, N, height, width, MAX_BLOCK_ELEMENTS, pixel_means.dtype)
        C = features.shape[1]
        out_tiles = pixel_means.new_zeros(bins.num_tiles, PIXELS_PER_TILE, C)
        T_tiles = pixel_means.new_ones(bins.num_tiles, PIXELS_PER_TILE)
        states = []
        for batch in batches:
            out, state = _forward_batch(batch, *padded)
            out_tiles[batch.tiles] = out
            T_tiles[batch.tiles] = state.T_final
            states.append(state)
        ctx.save_for_backward(pixel_means, conics, opacities, features)
        ctx.bins, ctx.batches, ctx.states = bins, batches, states
        image = _tiles_to_image(out_tiles, bins, height, width)
        T_final = _tiles_to_image(T_tiles[..., None], bins, height, width)[0]
        return image, T_final

    @staticmethod
    def backward(ctx, grad_image, grad_T):
        pixel_means, conics, opacities, features = ctx.saved_tensors
        padded = _padded(pixel_means, conics, opacities, features)
        grads = tuple(torch.zeros_like(t) for t in padded)
        if grad_image is None:
            grad_image = features.new_zeros(features.shape[1], *grad_T.shape)
        if grad_T is None:
            grad_T = features.new_zeros(grad_image.shape[1:])
        g_tiles = _image_to_tiles(grad_image, ctx.bins)
        gT_tiles = _image_to_tiles(grad_T[None], ctx.bins)[..., 0]
        for batch, state in zip(ctx.batches, ctx.states):
            _backward_batch(batch, state, g_tiles[batch.tiles], gT_tiles[batch.tiles], *padded, grads)
        N = pixel_means.shape[0]
        return grads[0][:N], grads[1][:N], grads[2][:N], grads[3][:N], None, None, None


def composite(pixel_means, conics, opacities, features, bins: TileBins, height: int, width: int):
    """Differentiable tiled compositing; see the module docstring. Returns ([C,H,W], [H,W])."""
    return TiledComposite.apply(pixel_means, conics, opacities, features, bins, height, width)
