"""What every dataset reader returns, and the one error type readers raise."""
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from utils.graphics_utils import BasicPointCloud
from utils.errors import DatasetError  # noqa: F401  (re-exported: readers raise it)


@dataclass
class CameraInfo:
    """One frame at full resolution. Pixel arrays stay compact until ``scene.readers.camera_loading`` builds
    the Camera: uint8 / uint16 mean value / 255 / 65535 (``utils.image_io.normalize_pixels``),
    float32 is already the value; the Camera gets float32 in [0, 1] after resizing."""
    uid: int
    R: np.ndarray            # [3, 3] camera-to-world rotation (transpose of the w2c rotation), as Inria
    T: np.ndarray            # [3] world-to-camera translation
    FovY: float              # radians
    FovX: float              # radians
    image: np.ndarray        # [H, W, 3] uint8 / uint16 as in the file, or float32 in [0, 1] (float files,
                             # RGBA composited on a translucent alpha); background already composited
    image_path: str
    image_name: str          # file stem; renders are written under this name
    width: int
    height: int
    fid: float               # normalized time in [0, 1]
    cx: Optional[float] = None   # principal point in pixels (None = image centre)
    cy: Optional[float] = None
    mask: Optional[np.ndarray] = None    # [H, W] uint8 / uint16 as in the file (or float32 in [0, 1]), max = hand
    depth: Optional[np.ndarray] = None   # [H, W] monocular prior: uint8 / uint16 PNG levels (full precision),
                                         # or float32 values (.npy, or resized to the image size)
    depth_kind: Optional[str] = None     # "disparity" (inverse depth) or "depth"
    downscale: int = 1   # factor the reader already shrank the full-resolution frames by (Nerfies rgb/<r>x); -r divides only by the rest


@dataclass
class SceneInfo:
    point_cloud: Optional[BasicPointCloud]
    train_cameras: List[CameraInfo]
    test_cameras: List[CameraInfo]
    nerf_normalization: dict                 # {"translate": np.ndarray[3], "radius": float}
    has_masks: bool = False
    has_depth: bool = False
    notices: List[str] = field(default_factory=list)  # one-line messages the caller prints once


def get_nerfpp_norm(cam_infos: List[CameraInfo]) -> dict:
    """Centre and radius of the camera centres (1.1 x the largest distance), as upstream."""
    centers = []
    for cam in cam_infos:
        w2c = np.eye(4)
        w2c[:3, :3] = cam.R.T
        w2c[:3, 3] = cam.T
        centers.append(np.linalg.inv(w2c)[:3, 3])
    centers = np.stack(centers, axis=0)
    center = centers.mean(axis=0)
    diagonal = np.linalg.norm(centers - center, axis=1).max()
    radius = float(diagonal * 1.1)
    if radius == 0.0:  # a single camera or a static tripod: keep learning rates sane
        radius = 1.0
    return {"translate": -center, "radius": radius}
