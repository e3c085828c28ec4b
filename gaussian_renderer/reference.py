"""Pure-PyTorch differentiable Gaussian rasterizer: the ground truth for the CUDA one.

Same interface as ``diff_gaussian_rasterization`` (3DGS, extended by EgoMask with a per-Gaussian
mask feature and by us with the accumulated alpha as a fifth output):

    settings = GaussianRasterizationSettings(image_height, image_width, tanfovx, tanfovy, bg,
        scale_modifier, viewmatrix, projmatrix, sh_degree, campos, prefiltered, debug)
    color, depth, feature_map, radii, alpha = GaussianRasterizer(settings)(
        means3D, means2D, opacities, shs=None, colors_precomp=None, mask_feature=None,
        scales=None, rotations=None, cov3D_precomp=None)

color [3,H,W] = Σ w_i c_i + T_final·bg; depth [1,H,W] = Σ w_i z_i (view z, no background);
feature_map [K,H,W] = Σ w_i f_i (zero background); radii [N] int32 (0 = not drawn);
alpha [1,H,W] = 1 - T_final. After backward, means2D.grad[:, :2] is dL/d(projected centre in NDC).
Culling, footprint and tile rules: ``projection.py``; compositing rules: ``compositing.py``.
``prefiltered`` is accepted and ignored (culling always runs); ``debug`` checks inputs and
outputs for non-finite values and raises with the name of the offending tensor.
"""
from typing import Optional

import torch

from gaussian_renderer.compositing import composite
from gaussian_renderer.dense import dense_composite
from gaussian_renderer.projection import covariance_from_upper, gaussian_colors, project_gaussians
from gaussian_renderer.rules import (MAX_FEATURES, GaussianRasterizationSettings, RasterizerModule,  # shared with CUDA
                                     check_layers)
from gaussian_renderer.tiling import bin_gaussians
from utils.general_utils import build_covariance




def rasterize_gaussians(settings: GaussianRasterizationSettings, means3D, means2D, opacities,
                        shs=None, colors_precomp=None, mask_feature=None, scales=None,
                        rotations=None, cov3D_precomp=None, layer_weights=None, dense: bool = False):
    """Functional form of GaussianRasterizer.forward; returns (color, depth, feature_map, radii, alpha).

    layer_weights [L, N]: a layered draw (RasterizerModule says what it is); here, by definition,
    L plain draws, each with its opacities scaled and its own background, means2D in the first.
    dense=True composites with the naive O(H·W·N) autograd version (tests and benchmark only).
    """
    if layer_weights is not None:
        return _layered(settings, means3D, means2D, opacities, shs, colors_precomp, mask_feature, scales,
                        rotations, cov3D_precomp, layer_weights, dense)
    _check_inputs(settings, means3D, means2D, opacities, shs, colors_precomp, mask_feature,
                  scales, rotations, cov3D_precomp)
    s = settings
    H, W = int(s.image_height), int(s.image_width)
    if cov3D_precomp is not None:
        cov3D = covariance_from_upper(cov3D_precomp)
    else:
        cov3D = build_covariance(scales, rotations, s.scale_modifier)
    proj = project_gaussians(means3D, means2D, cov3D, s.viewmatrix, s.projmatrix,
                             float(s.tanfovx), float(s.tanfovy), H, W)
    colors = colors_precomp if colors_precomp is not None else \
        gaussian_colors(means3D, shs, int(s.sh_degree), s.campos)
    if mask_feature is None:
        mask_feature = means3D.new_zeros(means3D.shape[0], 0)
    features = torch.cat([colors, proj.view_depths[:, None], mask_feature], dim=1)

    if dense:
        image, T_final = dense_composite(proj.pixel_means, proj.conics, opacities.reshape(-1), features,
                                         proj.view_depths, proj.tile_rects, proj.radii, H, W)
    else:
        opacities = opacities.reshape(-1)
        bins = bin_gaussians(proj.pixel_means, proj.conics, opacities, proj.tile_rects, proj.view_depths,
                             proj.radii, H, W)
        image, T_final = composite(proj.pixel_means, proj.conics, opacities, features, bins, H, W)
    color = image[:3] + T_final[None] * s.bg.reshape(3, 1, 1)
    depth, feature_map, alpha = image[3:4], image[4:], 1.0 - T_final[None]
    if s.debug:
        for name, value in (("color", color), ("depth", depth), ("feature_map", feature_map)):
            _require_finite(name + " (output)", value)
    return color, depth, feature_map, proj.radii, alpha


def _layered(settings, means3D, means2D, opacities, shs, colors_precomp, mask_feature, scales, rotations,
             cov3D_precomp, layer_weights, dense):
    check_layers(settings, means3D.shape[0], layer_weights)
    layers = []
    for layer, weights in enumerate(layer_weights):
        screen = means2D if layer == 0 else torch.zeros_like(means2D, requires_grad=means2D.requires_grad)
        layers.append(rasterize_gaussians(
            settings._replace(bg=settings.bg[layer]), means3D, screen, opacities * weights.reshape(opacities.shape),
            shs, colors_precomp, mask_feature, scales, rotations, cov3D_precomp, dense=dense))
    color, depth, feature_map, _, alpha = (torch.stack(images) for images in zip(*layers))
    return color, depth, feature_map, layers[0][3], alpha


class GaussianRasterizer(RasterizerModule):
    draw = staticmethod(rasterize_gaussians)


def _check_inputs(s, means3D, means2D, opacities, shs, colors_precomp, mask_feature,
                  scales, rotations, cov3D_precomp):
    """Shape / argument checks with messages that say what to pass instead."""
    if means3D.ndim != 2 or means3D.shape[1] != 3:
        raise ValueError(f"means3D must be [N, 3], got {tuple(means3D.shape)}")
    N = means3D.shape[0]
    _require_shape("means2D", means2D, (N, 3))
    if opacities.numel() != N:
        raise ValueError(f"opacities must be [N, 1] with N = {N}, got {tuple(opacities.shape)}")
    if (shs is None) == (colors_precomp is None):
        raise ValueError("pass exactly one of shs and colors_precomp")
    if (cov3D_precomp is None) == (scales is None or rotations is None):
        raise ValueError("pass either cov3D_precomp, or scales and rotations (not both)")
    if colors_precomp is not None:
        _require_shape("colors_precomp", colors_precomp, (N, 3))
    else:
        needed = (int(s.sh_degree) + 1) ** 2
        if shs.ndim != 3 or shs.shape[0] != N or shs.shape[2] != 3 or shs.shape[1] < needed:
            raise ValueError(f"shs must be [N, >= {needed}, 3] for sh_degree {s.sh_degree}, got {tuple(shs.shape)}")
    if mask_feature is not None and (mask_feature.ndim != 2 or mask_feature.shape[0] != N):
        raise ValueError(f"mask_feature must be [N, K] with N = {N}, got {tuple(mask_feature.shape)}")
    if mask_feature is not None and mask_feature.shape[1] > MAX_FEATURES:   # the CUDA kernels' limit, kept here too
        raise ValueError(f"mask_feature has {mask_feature.shape[1]} channels; at most {MAX_FEATURES} are supported.")
    if cov3D_precomp is not None:
        _require_shape("cov3D_precomp", cov3D_precomp, (N, 6))
    else:
        _require_shape("scales", scales, (N, 3))
        _require_shape("rotations", rotations, (N, 4))
    if int(s.image_height) <= 0 or int(s.image_width) <= 0:
        raise ValueError(f"image size must be positive, got {s.image_width}x{s.image_height}")
    if s.bg.numel() != 3:
        raise ValueError(f"bg must hold 3 values (RGB), got {tuple(s.bg.shape)}")
    if s.debug:
        for name, value in (("means3D", means3D), ("opacities", opacities), ("shs", shs),
                            ("colors_precomp", colors_precomp), ("mask_feature", mask_feature),
                            ("scales", scales), ("rotations", rotations), ("cov3D_precomp", cov3D_precomp)):
            if value is not None:
                _require_finite(name, value)


def _require_shape(name: str, value: Optional[torch.Tensor], shape: tuple) -> None:
    if value is None or tuple(value.shape) != shape:
        got = None if value is None else tuple(value.shape)
        raise ValueError(f"{name} must have shape {list(shape)}, got {got}")


def _require_finite(name: str, value: torch.Tensor) -> None:
    bad = ~torch.isfinite(value.detach())
    if bool(bad.any()):
        raise FloatingPointError(f"rasterizer (debug): {name} has {int(bad.sum())} non-finite values")
