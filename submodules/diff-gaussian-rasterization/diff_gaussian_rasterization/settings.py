"""The rasterizer settings and the constants of the rasterization rule: what both backends share.

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
