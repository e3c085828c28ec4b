"""The rasterizer settings, the constants of the rasterization rule and the module interface:
what both backends share.

It lives in this file of its own, free of the compiled part, so that the pure-PyTorch reference
(gaussian_renderer/rules.py loads it) uses the very same definitions from the source tree even
where this package is not installed. The constants are the Python side of csrc/config.h (same
names); tests/gaussian_renderer checks the two agree.
"""
from typing import NamedTuple

import torch

TILE = 16                   # tile side in pixels
NEAR_CULL_Z = 0.2           # view z at or below this: not rendered
FRUSTUM_GUARD = 1.3         # projected point clamped to 1.3 tan(half fov) in the EWA Jacobian
COV2D_BLUR = 0.3            # added to the 2D covariance diagonal
ALPHA_MAX = 0.99            # alpha = min(ALPHA_MAX, o exp(power))
ALPHA_MIN = 1.0 / 255.0     # alphas below this are skipped
T_MIN = 1e-4                # a pixel stops when its transmittance would fall below this
MAX_FEATURES = 32           # largest feature-map (hand feature) channel count the kernels take
MAX_LAYERS = 8              # images one layered draw may hold


class GaussianRasterizationSettings(NamedTuple):
    image_height: int
    image_width: int
    tanfovx: float
    tanfovy: float
    bg: torch.Tensor           # [3] background colour ([L, 3] for a layered draw: one per layer)
    scale_modifier: float
    viewmatrix: torch.Tensor   # [4,4] world_view_transform (row-vector convention)
    projmatrix: torch.Tensor   # [4,4] full_proj_transform
    sh_degree: int
    campos: torch.Tensor       # [3]
    prefiltered: bool
    debug: bool = False


def check_layers(settings: GaussianRasterizationSettings, n: int, layer_weights) -> int:
    """The layer count of a layered draw (layer_weights [L, N], constants, with bg [L, 3]);
    ValueError says what is wrong. Both backends call it."""
    if layer_weights.ndim != 2 or layer_weights.shape[1] != n or not 1 <= layer_weights.shape[0] <= MAX_LAYERS:
        raise ValueError(f"layer_weights must be [L, N={n}] with 1 <= L <= {MAX_LAYERS}, "
                         f"got {tuple(layer_weights.shape)}")
    if layer_weights.requires_grad:
        raise ValueError("layer_weights are constants in a layered draw (no gradient flows to them): detach them.")
    count = layer_weights.shape[0]
    if tuple(settings.bg.shape) != (count, 3):
        raise ValueError(f"a layered draw of {count} layers needs bg [{count}, 3] (one colour per layer), "
                         f"got {tuple(settings.bg.shape)}")
    return count


class RasterizerModule(torch.nn.Module):
    """The module both backends present (Inria's ``GaussianRasterizer``): the settings at
    construction, one draw per call, returning (color [3,H,W], depth [1,H,W], feature map [K,H,W],
    radii [N], alpha [1,H,W]). A backend subclasses it and sets ``draw``, a function
    (settings, means3D, means2D, opacities, shs, colors_precomp, mask_feature, scales, rotations,
    cov3D_precomp, layer_weights) -> that tuple.

    layer_weights [L, N] (constants) makes a layered draw: L images of the same Gaussians in one
    pass, image l with every opacity times layer_weights[l] over background settings.bg[l] (bg
    [L, 3]); the images get a leading layer axis (color [L,3,H,W], ...), radii stay [N], and
    means2D's gradient is layer 0's alone (the other layers' still reach means3D). The same as L
    plain draws with opacities * layer_weights[l], each with its own means2D; the CUDA backend
    shares the projection, the sorting and the launches between the layers."""
    draw = None

    def __init__(self, raster_settings: GaussianRasterizationSettings):
        super().__init__()
        self.raster_settings = raster_settings

    def forward(self, means3D, means2D, opacities, shs=None, colors_precomp=None, mask_feature=None,
                scales=None, rotations=None, cov3D_precomp=None, layer_weights=None):
        return self.draw(self.raster_settings, means3D, means2D, opacities, shs, colors_precomp, mask_feature,
                         scales, rotations, cov3D_precomp, layer_weights)
