"""CameraInfo (numpy, full resolution) -> Camera (tensors at the training resolution), and the
``cameras.json`` entries of the Inria output layout.

``-r`` as in 3DGS: 1, 2, 4 or 8 divide the size; -1 keeps it unless wider than 1600 px (then
1600 wide, with a one-time notice); any other positive value is the target width. Sizes are
rounded to the nearest pixel. Image and depth prior shrink with area averaging, the mask with
nearest neighbour (stays 0/1); the principal point scales with the size; the FoV is unchanged.
CameraInfo arrays are compact (uint8 / uint16); each becomes float32 one frame at a time, before
resizing so the averages are not rounded to the file's levels.
"""
from typing import List, Tuple

import numpy as np
import torch

from scene.cameras import Camera
from scene.readers.dataset_types import CameraInfo, DatasetError
from utils.graphics_utils import fov2focal
from utils.image_io import normalize_pixels, resize
from utils.system_utils import print_once

DIVISORS = (1, 2, 4, 8)
MAX_AUTO_WIDTH = 1600
MIN_TARGET_WIDTH = 64   # -r below this (and not a divisor) is a typo, not a training size

def target_size(width: int, height: int, resolution_arg: int, already_downscaled: int = 1) -> Tuple[int, int]:
    """(width, height) for the -r value; ``already_downscaled``: factor the reader applied already."""
    if resolution_arg in DIVISORS:
        divisor = resolution_arg / already_downscaled  # < 1 cannot happen: readers pick at most -r
        return max(1, round(width / divisor)), max(1, round(height / divisor))
    if resolution_arg == -1:
        if width <= MAX_AUTO_WIDTH:
            return width, height
        print_once(f"[ INFO ] Images are wider than {MAX_AUTO_WIDTH} px: rescaling them to {MAX_AUTO_WIDTH} px "
                    "wide. Pass -r 1 to keep the original size (or -r N for another).")
        return MAX_AUTO_WIDTH, max(1, round(height * MAX_AUTO_WIDTH / width))
    if resolution_arg >= MIN_TARGET_WIDTH:
        return resolution_arg, max(1, round(height * resolution_arg / width))
    if resolution_arg > 0:
        raise DatasetError(f"-r/--resolution {resolution_arg} would train at {resolution_arg} px wide (a value other "
                           f"than 1, 2, 4, 8 is a target width): use 1, 2, 4 or 8 to divide the size, or a width "
                           f"of at least {MIN_TARGET_WIDTH} px.")
    raise DatasetError(f"-r/--resolution {resolution_arg} is not valid: use 1, 2, 4 or 8 (divide), -1 (automatic) "
                       "or a target width in pixels.")


def resolve_device(data_device: str) -> str:
    """``data_device``, or "cpu" (with a notice) when CUDA is asked for but not available."""
    if str(data_device).startswith("cuda") and not torch.cuda.is_available():
        print_once(f"[ INFO ] --data_device {data_device} but CUDA is not available: keeping the data on the CPU.")
        return "cpu"
    return data_device


def camera_from_info(info: CameraInfo, resolution_arg: int, data_device: str) -> Camera:
    width, height = target_size(info.width, info.height, resolution_arg, info.downscale)
    sx, sy = width / info.width, height / info.height
    image = _resized_float(info.image, width, height)                                  # [H, W, 3]
    mask = None if info.mask is None else _resized_float(info.mask, width, height, nearest=True)  # [H, W]
    depth = None if info.depth is None else _resized_float(info.depth, width, height)  # [H, W]
    return Camera(uid=info.uid, R=info.R, T=info.T, FoVx=info.FovX, FoVy=info.FovY,
                  image=torch.from_numpy(image).permute(2, 0, 1).contiguous(),
                  image_name=info.image_name, fid=info.fid,
                  mask=None if mask is None else _plane_tensor(mask),
                  depth_prior=None if depth is None else _plane_tensor(depth),
                  depth_kind=info.depth_kind,
                  cx=None if info.cx is None else info.cx * sx,
                  cy=None if info.cy is None else info.cy * sy,
                  data_device=data_device)


def cameras_from_infos(cam_infos: List[CameraInfo], resolution_arg: int, data_device: str) -> List[Camera]:
    """Cameras at the -r resolution on ``data_device`` (cpu fallback when CUDA is absent)."""
    device = resolve_device(data_device)
    return [camera_from_info(info, resolution_arg, device) for info in cam_infos]


def _resized_float(pixels: np.ndarray, width: int, height: int, nearest: bool = False) -> np.ndarray:
    """Compact CameraInfo pixels -> float32 in [0, 1] (see CameraInfo) at [height, width], contiguous."""
    return np.ascontiguousarray(resize(normalize_pixels(pixels), width, height, nearest))


def _plane_tensor(plane: np.ndarray) -> torch.Tensor:
    """[H, W] float32 numpy -> [1, H, W] tensor."""
    return torch.from_numpy(plane)[None]


def camera_to_json(id: int, camera: CameraInfo) -> dict:
    """One ``cameras.json`` entry as written by 3DGS: camera centre and camera-to-world rotation."""
    w2c = np.eye(4)
    w2c[:3, :3] = camera.R.T
    w2c[:3, 3] = camera.T
    c2w = np.linalg.inv(w2c)
    return {
        "id": id,
        "img_name": camera.image_name,
        "width": camera.width,
        "height": camera.height,
        "position": c2w[:3, 3].tolist(),
        "rotation": [row.tolist() for row in c2w[:3, :3]],
        "fy": fov2focal(camera.FovY, camera.height),
        "fx": fov2focal(camera.FovX, camera.width),
    }
