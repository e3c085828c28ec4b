"""Naive dense compositing in plain autograd: every pixel against every visible Gaussian.

Same rules as ``compositing.py`` (including the 16x16-tile footprint of each Gaussian) but
written the obvious way, O(H·W·N) memory. It exists to check the tiled kernel and its
hand-written backward, and as the benchmark's baseline; use it on small scenes only.
"""
import torch

from gaussian_renderer.rules import ALPHA_MAX, ALPHA_MIN, T_MIN, TILE


def dense_composite(pixel_means, conics, opacities, features, view_depths, tile_rects, radii,
                    height: int, width: int):
    """pixel_means [N,2], conics [N,3], opacities [N], features [N,C], view_depths [N],
    tile_rects [N,4], radii [N] -> (image [C,H,W], T_final [H,W])."""
    visible = torch.nonzero(radii > 0).squeeze(1)
    order = visible[torch.argsort(view_depths[visible].detach(), stable=True)]
    ys, xs = torch.meshgrid(torch.arange(height, device=pixel_means.device),
                            torch.arange(width, device=pixel_means.device), indexing="ij")
    xs, ys = xs.reshape(-1, 1), ys.reshape(-1, 1)  # [HW, 1]

    m, q, o, rect = pixel_means[order], conics[order], opacities[order], tile_rects[order]
    dx = xs.to(m.dtype) - m[None, :, 0]
    dy = ys.to(m.dtype) - m[None, :, 1]
    power = -0.5 * (q[None, :, 0] * dx ** 2 + q[None, :, 2] * dy ** 2) - q[None, :, 1] * dx * dy
    raw = o[None, :] * torch.exp(power)
    in_rect = ((xs // TILE >= rect[None, :, 0]) & (xs // TILE < rect[None, :, 2]) &
               (ys // TILE >= rect[None, :, 1]) & (ys // TILE < rect[None, :, 3]))
    keep = in_rect & (power <= 0) & (raw >= ALPHA_MIN)
    alpha = torch.where(keep, torch.minimum(raw, torch.full_like(raw, ALPHA_MAX)), torch.zeros_like(raw))

    one_minus = 1.0 - alpha  # [HW, n]
    after = torch.cumprod(one_minus, dim=1)
    before = torch.cat([torch.ones_like(after[:, :1]), after[:, :-1]], dim=1)
    active = after.detach() >= T_MIN  # the stop rule; a prefix of each row
    weights = torch.where(active, alpha * before, torch.zeros_like(alpha))
    image = weights @ features[order]  # [HW, C]
    T_final = torch.where(active, one_minus, torch.ones_like(one_minus)).prod(dim=1)
    return image.T.reshape(-1, height, width), T_final.reshape(height, width)
