"""Per-Gaussian preprocessing of the reference rasterizer: culling, EWA projection, radii, tiles.

Everything here is O(N) plain autograd; the per-pixel work lives in ``compositing.py``.
Rules shared with the CUDA rasterizer (they decide which pixels a Gaussian touches):

* culled: view z <= 0.2 or homogeneous w <= 0; otherwise a Gaussian is culled by its
  footprint, not by its centre: it is drawn wherever its tile rectangle (below) meets the image,
  wherever its centre projects (a large Gaussian half inside the frame stays when its centre
  leaves it; the 3DGS code has the ±1.3 NDC centre test commented out too);
* 2D covariance J W Σ Wᵀ Jᵀ + 0.3 I with the view point clamped to 1.3 tan(fov/2) in J;
  invisible if its determinant is <= 0 (not positive definite);
* radius = ceil(3 sqrt(largest eigenvalue)) pixels, the exact eigenvalue of the dilated 2D
  covariance (upstream's max(0.1, ·) floor under the square root is not used);
* the Gaussian is evaluated at exactly the pixels of the 16x16 tiles in
  ``[floor((p - r) / 16), floor((p + r + 15) / 16))`` per axis (p the projected centre in
  pixels, r the radius), clamped to the tile grid;
  an empty rectangle makes it invisible. Invisible Gaussians get radius 0.
"""
import math
from typing import NamedTuple

import torch

from gaussian_renderer.rules import COV2D_BLUR, FRUSTUM_GUARD, NEAR_CULL_Z, TILE
from utils.graphics_utils import ndc_to_pixel
from utils.sh_utils import sh_to_color


class Projected(NamedTuple):
    pixel_means: torch.Tensor   # [N, 2] projected centres in pixel index space (x, y)
    conics: torch.Tensor        # [N, 3] inverse 2D covariance (a, b, c) = [[a, b], [b, c]]
    view_depths: torch.Tensor   # [N] view-space z
    radii: torch.Tensor         # [N] int32, 0 = invisible
    tile_rects: torch.Tensor    # [N, 4] int64 (x0, y0, x1, y1), half-open tile ranges


def covariance_from_upper(cov6: torch.Tensor) -> torch.Tensor:
    """Symmetric [N, 3, 3] from its upper triangle (xx, xy, xz, yy, yz, zz) [N, 6]."""
    xx, xy, xz, yy, yz, zz = cov6.unbind(dim=1)
    return torch.stack([xx, xy, xz, xy, yy, yz, xz, yz, zz], dim=1).reshape(-1, 3, 3)


def _homogeneous(points: torch.Tensor) -> torch.Tensor:
    return torch.cat([points, torch.ones_like(points[:, :1])], dim=1)


def project_gaussians(means3D, means2D, cov3D, viewmatrix, projmatrix, tanfovx, tanfovy,
                      image_height: int, image_width: int) -> Projected:
    """Cull and project N Gaussians. means3D [N,3], means2D [N,3] (the NDC gradient hook, added to
    the NDC centre), cov3D [N,3,3], viewmatrix / projmatrix [4,4] transposed (row vectors)."""
    hom = _homogeneous(means3D)
    p_view = hom @ viewmatrix
    p_clip = hom @ projmatrix
    z, w = p_view[:, 2], p_clip[:, 3]

    in_front = (z > NEAR_CULL_Z) & (w > 0)
    w_safe = torch.where(in_front, w, torch.ones_like(w))
    ndc = p_clip[:, :2] / w_safe[:, None]
    in_frustum = in_front   # no centre test: the tile rectangle decides (footprint culling)

    # Safe stand-ins where culled, so that no division makes a NaN gradient.
    z_safe = torch.where(in_frustum, z, torch.ones_like(z))
    ndc = torch.where(in_frustum[:, None], ndc, torch.zeros_like(ndc)) + means2D[:, :2]
    pixel_means = torch.stack([ndc_to_pixel(ndc[:, 0], image_width),
                               ndc_to_pixel(ndc[:, 1], image_height)], dim=1)

    fx = image_width / (2.0 * tanfovx)
    fy = image_height / (2.0 * tanfovy)
    cov2D = _ewa_covariance(p_view[:, :2], z_safe, cov3D, viewmatrix, fx, fy, tanfovx, tanfovy)

    a, b, c = cov2D[:, 0, 0], cov2D[:, 0, 1], cov2D[:, 1, 1]
    det = a * c - b * b
    invertible = in_frustum & (det > 0) & (a > 0)
    det_safe = torch.where(invertible, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=1)
    conics = torch.where(invertible[:, None], conics, torch.zeros_like(conics))

    radii = _radius(a.detach(), c.detach(), det.detach(), invertible)
    tile_rects = _tile_rect(pixel_means.detach(), radii, image_height, image_width)
    touches = (tile_rects[:, 2] > tile_rects[:, 0]) & (tile_rects[:, 3] > tile_rects[:, 1])
    visible = invertible & (radii > 0) & touches
    radii = torch.where(visible, radii, torch.zeros_like(radii)).to(torch.int32)
    tile_rects = torch.where(visible[:, None], tile_rects, torch.zeros_like(tile_rects))
    return Projected(pixel_means, conics, z, radii, tile_rects)


def _ewa_covariance(view_xy, z, cov3D, viewmatrix, fx, fy, tanfovx, tanfovy):
    """Σ' = J W Σ Wᵀ Jᵀ [N,2,2] + 0.3 I (local affine approximation of the perspective map)."""
    limx, limy = FRUSTUM_GUARD * tanfovx, FRUSTUM_GUARD * tanfovy
    tx = (view_xy[:, 0] / z).clamp(-limx, limx) * z
    ty = (view_xy[:, 1] / z).clamp(-limy, limy) * z
    zeros = torch.zeros_like(z)
    J = torch.stack([fx / z, zeros, -fx * tx / (z * z),
                     zeros, fy / z, -fy * ty / (z * z)], dim=1).reshape(-1, 2, 3)
    W = viewmatrix[:3, :3].transpose(0, 1)  # column-vector world-to-view rotation
    T = J @ W
    cov2D = T @ cov3D @ T.transpose(1, 2)
    return cov2D + COV2D_BLUR * torch.eye(2, dtype=cov2D.dtype, device=cov2D.device)


def _radius(a, c, det, ok):
    """ceil(3 sqrt(largest eigenvalue)) of [[a, b], [b, c]] as int64, 0 where not ok."""
    mid = 0.5 * (a + c)
    largest = mid + (mid * mid - det).clamp_min(0.0).sqrt()
    radius = torch.ceil(3.0 * largest.clamp_min(0.0).sqrt())
    radius = torch.where(ok & torch.isfinite(radius), radius, torch.zeros_like(radius))
    return radius.to(torch.int64)


def _tile_rect(pixel_means, radii, image_height, image_width):
    """Half-open tile ranges (x0, y0, x1, y1) [N, 4] covered by the square of side 2r."""
    tiles_x = math.ceil(image_width / TILE)
    tiles_y = math.ceil(image_height / TILE)
    r = radii.to(pixel_means.dtype)
    p = torch.nan_to_num(pixel_means, nan=-1e9, posinf=1e9, neginf=-1e9).clamp(-1e9, 1e9)
    lo = torch.floor((p - r[:, None]) / TILE)
    hi = torch.floor((p + r[:, None] + TILE - 1) / TILE)
    limit = torch.tensor([tiles_x, tiles_y], dtype=p.dtype, device=p.device)
    lo = torch.minimum(lo.clamp_min(0), limit)
    hi = torch.minimum(hi.clamp_min(0), limit)
    return torch.cat([lo, hi], dim=1).to(torch.int64)


def gaussian_colors(means3D, shs, sh_degree: int, campos) -> torch.Tensor:
    """RGB [N, 3] from SH [N, M, 3] seen from campos [3] (direction camera -> Gaussian)."""
    dirs = means3D - campos[None, :]
    norm = dirs.norm(dim=1, keepdim=True)
    ok = norm > 1e-12
    fallback = torch.zeros_like(dirs)
    fallback[:, 2] = 1.0
    dirs = torch.where(ok, dirs, fallback) / torch.where(ok, norm, torch.ones_like(norm))
    return sh_to_color(sh_degree, shs, dirs)
