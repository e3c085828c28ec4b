"""Tiled front-to-back alpha compositing with a hand-written backward (the reference's hot loop).

For each pixel, over its block's depth-sorted list (``tiling.py``):
    α_i = min(0.99, o_i exp(-½ dᵀ Σ_i⁻¹ d)),  d = pixel - centre_i,  skipped (α_i = 0) if < 1/255;
    T_i = Π_{j<i} (1 - α_j);  a pixel stops at the first i with T_i (1 - α_i) < 1e-4
    (that Gaussian and every later one are not blended);
    out = Σ_i α_i T_i f_i over features f [N, C],  T_final = Π (1 - α_i) over blended Gaussians.
Colour, depth and hand-mask features are all channels of f; the caller adds T_final·bg to colour.
(The 3DGS "skip if the exponent is > 0" never fires for the positive-definite conics drawn here.)

The exponent is a quadratic polynomial of the pixel offset (u, v) from the block centre, so it is
evaluated for a whole block as one matrix product [P, 6] @ [6, l] with per-(block, Gaussian)
coefficients (``power_coefficients``, plain autograd, which also carries log o). The lists are
walked in slices of LIST_CHUNK for all live blocks at once, carrying each pixel's transmittance
(0 once it stopped); a block leaves the loop when its list ends or all its pixels stopped. The
backward walks the same slices back to front, carrying per pixel
Σ_{j later} α_j T_j (f_j·g) + T_final g_T, which gives
    ∂L/∂α_i = T_i (f_i·g) - (Σ_{j>i} α_j T_j (f_j·g) + T_final g_T) / (1 - α_i).
Derivatives are exact: a clamped α (0.99) or a skipped one passes no gradient.
"""
from typing import List, NamedTuple

import torch

from gaussian_renderer.rules import ALPHA_MAX, ALPHA_MIN, T_MIN
from gaussian_renderer.tiling import COMPUTE_TILE, PIXELS_PER_TILE, TileBins, local_pixel_offsets

LIST_CHUNK = 16  # measured fastest on a 2-core CPU (benchmarks/reference_rasterizer.py)
# Elements (blocks x pixels x slice) of one step: bounds the working memory (~15 live arrays).
MAX_STEP_ELEMENTS = 1 << 22
_PAD_POWER = -1.0e4  # exponent of the padding entry: exp() is exactly 0


def power_coefficients(pixel_means, conics, opacities, bins: TileBins) -> torch.Tensor:
    """k [M, 6] per (block, Gaussian) pair with log α_raw(u, v) = k · (1, u, v, u², uv, v²), (u, v)
    the pixel offset from the block centre. pixel_means [N,2], conics [N,3], opacities [N].
    Built in float64 so that the cancellation in k0 costs no precision."""
    ids = bins.gaussian_ids
    m = pixel_means[ids].double() - bins.tile_centres(bins.pair_tiles, torch.float64)
    mx, my = m.unbind(1)
    a, b, c = conics[ids].double().unbind(1)
    k0 = opacities[ids].double().log() - 0.5 * (a * mx * mx + 2.0 * b * mx * my + c * my * my)
    k = torch.stack([k0, a * mx + b * my, b * mx + c * my, -0.5 * a, -b, -0.5 * c], dim=1)
    return k.to(pixel_means.dtype)


def _monomials(device, dtype) -> torch.Tensor:
    """(1, u, v, u², uv, v²) [P, 6] of each block pixel."""
    uv = local_pixel_offsets(device, torch.float64)
    u, v = uv.unbind(1)
    return torch.stack([torch.ones_like(u), u, v, u * u, u * v, v * v], dim=1).to(dtype)


class _Step(NamedTuple):
    tiles: torch.Tensor    # [B] blocks processed
    offset: int            # position of the slice in their lists
    T_start: torch.Tensor  # [B, P] transmittance before the slice, 0 where the pixel stopped


class _Padded(NamedTuple):
    """Per-pair tables with one trailing padding entry (index M, α = 0, feature row N = 0)."""
    coefs: torch.Tensor      # [M+1, 6]
    gaussians: torch.Tensor  # [M+1]
    features: torch.Tensor   # [N+1, C]
    monomials: torch.Tensor  # [P, 6]


def _pad(coefs, features, bins) -> _Padded:
    pad_coef = torch.zeros(1, 6, dtype=coefs.dtype, device=coefs.device)
    pad_coef[0, 0] = _PAD_POWER
    pad_id = torch.full((1,), features.shape[0], dtype=torch.int64, device=features.device)
    return _Padded(torch.cat([coefs, pad_coef]), torch.cat([bins.gaussian_ids, pad_id]),
                   torch.cat([features, torch.zeros_like(features[:1])]),
                   _monomials(coefs.device, coefs.dtype))


def _slice_pairs(bins: TileBins, tiles, offset: int, pad_index: int) -> torch.Tensor:
    """Pair indices [B, LIST_CHUNK] of the slice at offset of each block's list (padded)."""
    starts, ends = bins.tile_starts[tiles], bins.tile_starts[tiles + 1]
    pos = starts[:, None] + offset + torch.arange(LIST_CHUNK, device=tiles.device)[None, :]
    return torch.where(pos < ends[:, None], pos, torch.full_like(pos, pad_index))


class _Slice(NamedTuple):
    raw: torch.Tensor        # [B, P, l] o exp(power), unclamped
    alpha: torch.Tensor      # [B, P, l] clamped, 0 where skipped
    before: torch.Tensor     # [B, P, l] T_i
    after: torch.Tensor      # [B, P, l] T_i (1 - α_i)
    active: torch.Tensor     # [B, P, l] bool, blended (a prefix: `after` never grows)
    weights: torch.Tensor    # [B, P, l] α_i T_i where blended, else 0


def _composite_slice(tables: _Padded, pairs, T_start) -> _Slice:
    """pairs [B, l]; T_start [B, P]. Products run sequentially from T_start, as a per-pixel loop."""
    power = torch.matmul(tables.monomials, tables.coefs[pairs].transpose(1, 2))
    raw = torch.exp(power)
    alpha = raw.clamp_max(ALPHA_MAX) * (raw >= ALPHA_MIN)  # (mask products: much faster than where)
    one_minus = 1.0 - alpha
    before = torch.cumprod(torch.cat([T_start[..., None], one_minus[..., :-1]], dim=-1), dim=-1)
    after = before * one_minus
    active = after >= T_MIN
    weights = alpha * before * active
    return _Slice(raw, alpha, before, after, active, weights)


def _groups(tiles: torch.Tensor) -> List[torch.Tensor]:
    size = max(1, MAX_STEP_ELEMENTS // (PIXELS_PER_TILE * LIST_CHUNK))
    return list(torch.split(tiles, size))


def _forward(tables: _Padded, bins: TileBins, inside: torch.Tensor):
    """-> out [T, P, C], T_final [T, P], steps. inside [T, P]: pixel lies in the image."""
    dtype, device = tables.coefs.dtype, tables.coefs.device
    n_tiles, C = bins.num_tiles, tables.features.shape[1]
    out = torch.zeros(n_tiles, PIXELS_PER_TILE, C, dtype=dtype, device=device)
    T_final = torch.ones(n_tiles, PIXELS_PER_TILE, dtype=dtype, device=device)
    T_run = inside.to(dtype)  # pixels outside the image start "stopped"
    counts = bins.tile_starts[1:] - bins.tile_starts[:-1]
    pad_index = tables.coefs.shape[0] - 1
    live, offset, steps = torch.nonzero(counts > 0).squeeze(1), 0, []
    while live.numel() > 0:
        for tiles in _groups(live):
            pairs = _slice_pairs(bins, tiles, offset, pad_index)
            T0 = T_run[tiles]
            s = _composite_slice(tables, pairs, T0)
            out[tiles] += torch.bmm(s.weights, tables.features[tables.gaussians[pairs]])
            n_active = s.active.sum(-1, keepdim=True)
            last = s.after.gather(-1, (n_active - 1).clamp_min(0)).squeeze(-1)
            T_after = torch.where(n_active.squeeze(-1) > 0, last, T0)
            T_final[tiles] = torch.where(T0 > 0, T_after, T_final[tiles])
            T_run[tiles] = torch.where(s.active[..., -1], T_after, torch.zeros_like(T_after))
            steps.append(_Step(tiles, offset, T0))
        offset += LIST_CHUNK
        live = live[(T_run[live] > 0).any(dim=1) & (counts[live] > offset)]
    return out, T_final, steps


def _backward(tables: _Padded, bins: TileBins, steps, T_final, grad_out, grad_T):
    """grad_out [T, P, C], grad_T [T, P] -> (d coefs [M+1, 6], d features [N+1, C])."""
    d_coefs = torch.zeros_like(tables.coefs)
    d_features = torch.zeros_like(tables.features)
    later = T_final * grad_T  # per pixel: Σ over later slices of α_j T_j (f_j·g), plus T_final g_T
    pad_index = tables.coefs.shape[0] - 1
    for step in reversed(steps):
        pairs = _slice_pairs(bins, step.tiles, step.offset, pad_index)
        gaussians = tables.gaussians[pairs]
        feats = tables.features[gaussians]
        s = _composite_slice(tables, pairs, step.T_start)
        g = grad_out[step.tiles]
        f_dot_g = torch.bmm(g, feats.transpose(1, 2))  # [B, P, l]
        running = torch.cumsum(s.weights * f_dot_g, dim=-1)
        total = running[..., -1]
        behind = (later[step.tiles] + total)[..., None] - running
        d_alpha = s.before * f_dot_g - behind / (1.0 - s.alpha)
        smooth = s.active & (s.raw < ALPHA_MAX)
        d_power = d_alpha * s.alpha * smooth
        later[step.tiles] += total
        d_coefs.index_add_(0, pairs.reshape(-1), torch.matmul(d_power.transpose(1, 2), tables.monomials).reshape(-1, 6))
        d_features.index_add_(0, gaussians.reshape(-1), torch.bmm(s.weights.transpose(1, 2), g).reshape(-1, feats.shape[-1]))
    return d_coefs, d_features


def _tiles_to_image(tiles: torch.Tensor, bins: TileBins, height: int, width: int) -> torch.Tensor:
    """[T, P, C] per-block pixels -> [C, H, W]."""
    C, S = tiles.shape[-1], COMPUTE_TILE
    grid = tiles.reshape(bins.tiles_y, bins.tiles_x, S, S, C).permute(4, 0, 2, 1, 3)
    return grid.reshape(C, bins.tiles_y * S, bins.tiles_x * S)[:, :height, :width]


def _image_to_tiles(image: torch.Tensor, bins: TileBins) -> torch.Tensor:
    """[C, H, W] -> [T, P, C], zero-padded to whole blocks."""
    C, H, W = image.shape
    S = COMPUTE_TILE
    padded = image.new_zeros(C, bins.tiles_y * S, bins.tiles_x * S)
    padded[:, :H, :W] = image
    grid = padded.reshape(C, bins.tiles_y, S, bins.tiles_x, S).permute(1, 3, 2, 4, 0)
    return grid.reshape(bins.num_tiles, PIXELS_PER_TILE, C)


class TiledComposite(torch.autograd.Function):
    """(coefs [M,6] from power_coefficients, features [N,C]) -> (image [C,H,W], T_final [H,W])."""

    @staticmethod
    def forward(ctx, coefs, features, bins: TileBins, height: int, width: int):
        tables = _pad(coefs, features, bins)
        ones = torch.ones(1, height, width, dtype=torch.bool, device=coefs.device)
        inside = _image_to_tiles(ones, bins)[..., 0]
        out, T_final, steps = _forward(tables, bins, inside)
        ctx.save_for_backward(coefs, features, T_final)
        ctx.bins, ctx.steps = bins, steps
        return _tiles_to_image(out, bins, height, width), _tiles_to_image(T_final[..., None], bins, height, width)[0]

    @staticmethod
    def backward(ctx, grad_image, grad_T):
        coefs, features, T_final = ctx.saved_tensors
        tables = _pad(coefs, features, ctx.bins)
        d_coefs, d_features = _backward(tables, ctx.bins, ctx.steps, T_final,
                                        _image_to_tiles(grad_image, ctx.bins),
                                        _image_to_tiles(grad_T[None], ctx.bins)[..., 0])
        return d_coefs[:-1], d_features[:-1], None, None, None


def composite(pixel_means, conics, opacities, features, bins: TileBins, height: int, width: int):
    """Differentiable compositing (module docstring): pixel_means [N,2], conics [N,3],
    opacities [N], features [N,C] -> (image [C,H,W], T_final [H,W])."""
    coefs = power_coefficients(pixel_means, conics, opacities, bins)
    return TiledComposite.apply(coefs, features, bins, height, width)
