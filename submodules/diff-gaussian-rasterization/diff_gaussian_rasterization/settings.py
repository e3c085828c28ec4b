"""The rasterizer settings: the one type both backends take.

It lives in this file of its own, free of the compiled part, so that the pure-PyTorch reference
(gaussian_renderer/reference.py) can load the very same definition from the source tree even
where this package is not installed.
"""
from typing import NamedTuple

import torch


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
