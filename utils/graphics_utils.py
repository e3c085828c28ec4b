"""Camera maths in the convention of the 3DGS codebases.

Row vectors: ``p_view = [p, 1] @ world_view_transform`` and
``full_proj_transform = world_view_transform @ projection_matrix`` (both stored transposed).
The camera looks down +z. A pixel with index x has its centre at NDC ``(2x + 1) / W - 1``,
i.e. COLMAP's continuous image coordinate ``u = x + 0.5``.
"""
import math
from typing import NamedTuple, Optional

import numpy as np
import torch


class BasicPointCloud(NamedTuple):
    points: np.ndarray  # [N, 3] float
    colors: np.ndarray  # [N, 3] float in [0, 1]
    normals: np.ndarray  # [N, 3] float


def fov2focal(fov: float, pixels: int) -> float:
    return pixels / (2.0 * math.tan(fov / 2.0))


def focal2fov(focal: float, pixels: int) -> float:
    return 2.0 * math.atan(pixels / (2.0 * focal))


def getWorld2View2(R: np.ndarray, t: np.ndarray, translate=np.zeros(3), scale: float = 1.0) -> np.ndarray:
    """World-to-view 4x4 (column-vector form) from the Inria pair (R = c2w rotation, t = w2c translation).

    ``translate``/``scale`` re-centre the camera centre, as upstream does for normalization.
    """
    Rt = np.zeros((4, 4))
    Rt[:3, :3] = R.transpose()
    Rt[:3, 3] = t
    Rt[3, 3] = 1.0
    C2W = np.linalg.inv(Rt)
    C2W[:3, 3] = (C2W[:3, 3] + translate) * scale
    return np.float32(np.linalg.inv(C2W))


def getProjectionMatrix(znear: float, zfar: float, fovX: float, fovY: float,
                        principal_offset: tuple = (0.0, 0.0)) -> torch.Tensor:
    """Perspective projection (column-vector form) mapping view z in [znear, zfar] to w = z.

    ``principal_offset`` is the principal point's NDC offset ``(2 cx / W - 1, 2 cy / H - 1)``;
    zero for a centred principal point (the upstream assumption).
    """
    tan_x, tan_y = math.tan(fovX / 2), math.tan(fovY / 2)
    P = torch.zeros(4, 4)
    P[0, 0] = 1.0 / tan_x
    P[1, 1] = 1.0 / tan_y
    P[0, 2] = principal_offset[0]
    P[1, 2] = principal_offset[1]
    P[3, 2] = 1.0
    P[2, 2] = zfar / (zfar - znear)
    P[2, 3] = -(zfar * znear) / (zfar - znear)
    return P


def principal_offset_ndc(cx: Optional[float], cy: Optional[float], width: int, height: int) -> tuple:
    """NDC offset of a principal point given in pixels (COLMAP convention); None means centred."""
    ox = 0.0 if cx is None else 2.0 * cx / width - 1.0
    oy = 0.0 if cy is None else 2.0 * cy / height - 1.0
    return (ox, oy)


def geom_transform_points(points: torch.Tensor, transf_matrix: torch.Tensor) -> torch.Tensor:
    """Homogeneous transform of row-vector points [N, 3] by a transposed 4x4, with perspective divide."""
    ones = torch.ones(points.shape[0], 1, dtype=points.dtype, device=points.device)
    hom = torch.cat([points, ones], dim=1) @ transf_matrix
    return hom[:, :3] / (hom[:, 3:] + 1e-7)


def ndc_to_pixel(v: torch.Tensor, size: int) -> torch.Tensor:
    """NDC coordinate to pixel index space (pixel x's centre maps to x)."""
    return ((v + 1.0) * size - 1.0) * 0.5
