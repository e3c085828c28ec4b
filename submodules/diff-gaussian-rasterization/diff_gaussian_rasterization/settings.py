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


class GaussianRasterizationSettings(NamedTuple):
    image_height: int
    image_width: int
    tanfovx: float
    tanfovy: float
    bg: torch.Tensor           # [3] background colour
    scale_modifier: float
    viewmatrix: torch.Tensor   # [4,4] world_view_transform (row-vector convention)
    projmatrix: torch.Tensor   # [4,4] full_proj_transform
    sh_degree: int
    campos: torch.Tensor       # [3]
    prefiltered: bool
    debug: bool = False


class RasterizerModule(torch.nn.Module):
    """The module both backends present (Inria's ``GaussianRasterizer``): the settings at
    construction, one draw per call, returning (color [3,H,W], depth [1,H,W], feature map [K,H,W],
    radii [N], alpha [1,H,W]). A backend subclasses it and sets ``draw``, a function
    (settings, means3D, means2D, opacities, shs, colors_precomp, mask_feature, scales, rotations,
    cov3D_precomp) -> that tuple."""
    draw = None

    def __init__(self, raster_settings: GaussianRasterizationSettings):
        super().__init__()
        self.raster_settings = raster_settings

    def forward(self, means3D, means2D, opacities, shs=None, colors_precomp=None, mask_feature=None,
                scales=None, rotations=None, cov3D_precomp=None):
        return self.draw(self.raster_settings, means3D, means2D, opacities, shs, colors_precomp, mask_feature,
                         scales, rotations, cov3D_precomp)
