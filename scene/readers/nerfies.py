"""Nerfies / HyperNeRF / NeRF-DS layout.

    dataset.json   {"ids": [...], "train_ids": [...], "val_ids": [...]}
    metadata.json  {id: {"time_id" (or "warp_id"), "appearance_id", "camera_id"}}
    scene.json     {"scale", "center", "near", "far"}
    camera/<id>.json  orientation (w2c rotation), position (camera centre), focal_length,
                      principal_point, image_size, skew, pixel_aspect_ratio, radial/tangential_distortion
    rgb/<r>x/<id>.png, points.npy

Decisions:
- Positions and points are normalized as in Deformable-3DGS: ``(p - center) * scale``.
- Image folder: ``-r`` 1, 2, 4 or 8 reads ``rgb/<r>x`` (the frames are not shrunk again: see
  ``CameraInfo.downscale``); the default ``-r -1`` reads ``rgb/2x`` (Deformable-3DGS uses 2x for
  HyperNeRF interp/misc, but 1x for NeRF-DS and 4x for HyperNeRF vrig: pass -r 1 / -r 4 to match);
  a target width reads ``rgb/1x``.
- Intrinsics scale with the image actually read (its width over ``image_size``); the principal
  point is kept. Skew and lens distortion are ignored (as upstream), with a notice.
- Split: ``train_ids`` / ``val_ids`` when ``val_ids`` is non-empty (vrig, NeRF-DS); otherwise
  every 4th id trains and ids[2::4] test (the HyperNeRF interp protocol of Deformable-3DGS).
  Without ``--eval`` both sets train. fid = time_id / max time_id of the loaded frames.
"""
import json
import os
from typing import List, Tuple

import numpy as np

from scene.readers.blender import random_point_cloud
from scene.readers.dataset_types import CameraInfo, DatasetError, SceneInfo, get_nerfpp_norm
from utils.graphics_utils import BasicPointCloud, focal2fov
from utils.image_io import read_rgb_compact

FOLDER_FACTORS = (1, 2, 4, 8)
DEFAULT_FACTOR = 2
SH_C0 = 0.28209479177387814


def read_nerfies_scene(args) -> SceneInfo:
    """SceneInfo of a Nerfies-style capture. ``args``: source_path, eval, resolution, white_background."""
    source = args.source_path
    dataset = _load_json(os.path.join(source, "dataset.json"))
    metadata = _load_json(os.path.join(source, "metadata.json"))
    center, scale = _scene_normalization(source)
    train_ids, test_ids = split_ids(dataset, os.path.join(source, "dataset.json"))
    all_ids = train_ids + test_ids
    times = _times(all_ids, metadata, os.path.join(source, "metadata.json"))
    factor, rgb_dir = _rgb_folder(source, args.resolution)
    background = (1.0, 1.0, 1.0) if args.white_background else (0.0, 0.0, 0.0)

    notices: List[str] = []
    cam_infos = []
    for uid, image_id in enumerate(all_ids):
        camera = _load_json(os.path.join(source, "camera", f"{image_id}.json"))
        cam_infos.append(_camera_info(uid, image_id, camera, center, scale, rgb_dir, factor, times[uid],
                                      background, os.path.join(source, "camera", f"{image_id}.json")))
        if _has_distortion(camera) and not notices:
            notices.append(f"Cameras in {os.path.join(source, 'camera')} have skew or lens distortion: "
                           "ignored, as in Deformable-3DGS.")
    train, test = cam_infos[:len(train_ids)], cam_infos[len(train_ids):]
    if not args.eval:
        train, test = train + test, []
    notices.append(f"Nerfies layout in {source}: no hand masks or depth priors, those losses are off.")
    return SceneInfo(point_cloud=_point_cloud(source, center, scale, notices), train_cameras=train,
                     test_cameras=test, nerf_normalization=get_nerfpp_norm(train), notices=notices)


def split_ids(dataset: dict, path: str) -> Tuple[List[str], List[str]]:
    """(train ids, test ids) as described in the module docstring."""
    val_ids = list(dataset.get("val_ids") or [])
    if val_ids:
        if "train_ids" not in dataset:
            raise DatasetError(f"{path} has `val_ids` but no `train_ids`. Add them.")
        return [str(i) for i in dataset["train_ids"]], [str(i) for i in val_ids]
    ids = dataset.get("ids") or dataset.get("train_ids")
    if not ids:
        raise DatasetError(f"{path} lists no frames: it needs `ids` (or `train_ids`).")
    ids = [str(i) for i in ids]
    return ids[::4], ids[2::4]


def _load_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise DatasetError(f"Missing {path}, needed by the Nerfies/HyperNeRF layout. Add it "
                           "(it comes with the dataset).") from None
    except OSError as err:
        raise DatasetError(f"Cannot read {path}: {err.strerror}.") from None
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path} is not valid JSON ({err}). Fix or re-download the file.") from None


def _scene_normalization(source: str) -> Tuple[np.ndarray, float]:
    path = os.path.join(source, "scene.json")
    scene = _load_json(path)
    try:
        center = np.array(scene["center"], dtype=np.float64).reshape(3)
        scale = float(scene["scale"])
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{path} needs `center` (3 numbers) and `scale` (a number).") from None
    return center, scale


def _times(ids: List[str], metadata: dict, path: str) -> List[float]:
    raw = []
    for image_id in ids:
        entry = metadata.get(image_id)
        if not isinstance(entry, dict) or not ("time_id" in entry or "warp_id" in entry):
            raise DatasetError(f"{path} has no `time_id` (or `warp_id`) for frame {image_id!r}. Add it.")
        raw.append(float(entry.get("time_id", entry.get("warp_id"))))
    latest = max(raw) if raw else 0.0
    return [t / latest if latest > 0 else 0.0 for t in raw]


def _rgb_folder(source: str, resolution: int) -> Tuple[int, str]:
    """(downscale factor, folder) of the frames to read for the -r flag."""
    if resolution in FOLDER_FACTORS:
        factor = resolution
    elif resolution == -1:
        factor = DEFAULT_FACTOR
    else:
        factor = 1  # a target width: shrink from full resolution later
    folder = os.path.join(source, "rgb", f"{factor}x")
    if not os.path.isdir(folder):
        rgb = os.path.join(source, "rgb")
        present = sorted(os.listdir(rgb)) if os.path.isdir(rgb) else []
        raise DatasetError(f"Image folder {folder} not found (chosen by -r {resolution}); found: "
                           f"{', '.join(present) or 'nothing'} in {rgb}. Pass -r with one of those factors.")
    return factor, folder


def _camera_info(uid: int, image_id: str, camera: dict, center: np.ndarray, scale: float, rgb_dir: str,
                 factor: int, fid: float, background, camera_path: str) -> CameraInfo:
    try:
        orientation = np.array(camera["orientation"], dtype=np.float64).reshape(3, 3)  # w2c rotation
        position = (np.array(camera["position"], dtype=np.float64).reshape(3) - center) * scale
        focal = float(camera["focal_length"])
        principal = np.array(camera["principal_point"], dtype=np.float64).reshape(2)
        full_width, full_height = (int(v) for v in camera["image_size"])
        aspect = float(camera.get("pixel_aspect_ratio", 1.0))
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{camera_path} needs orientation (3x3), position (3), focal_length, "
                           "principal_point (2) and image_size (2).") from None
    image_path = os.path.join(rgb_dir, f"{image_id}.png")
    image = read_rgb_compact(image_path, background)
    height, width = image.shape[:2]
    s = width / full_width  # this folder's size relative to the camera file's
    if abs(full_height * s - height) > 1.0:
        raise DatasetError(f"{image_path} is {width}x{height}, which does not match the image_size "
                           f"{full_width}x{full_height} of {camera_path} at any scale.")
    return CameraInfo(uid=uid, R=orientation.T, T=-orientation @ position,
                      FovY=focal2fov(focal * aspect * s, height), FovX=focal2fov(focal * s, width),
                      image=image, image_path=image_path, image_name=str(image_id), width=width, height=height,
                      fid=fid, cx=principal[0] * s, cy=principal[1] * s, downscale=factor)


def _has_distortion(camera: dict) -> bool:
    values = [camera.get("skew") or 0.0] + list(camera.get("radial_distortion") or []) + \
             list(camera.get("tangential_distortion") or [])
    try:
        return any(abs(float(v)) > 0 for v in values)
    except (TypeError, ValueError):
        return True  # malformed distortion entries: still ignored, say so


def _point_cloud(source: str, center: np.ndarray, scale: float, notices: List[str]) -> BasicPointCloud:
    """points.npy normalized like the cameras, near-grey colours (as upstream); random if absent."""
    path = os.path.join(source, "points.npy")
    if not os.path.isfile(path):
        notices.append(f"No points.npy in {source}: starting from random points.")
        return random_point_cloud(100_000, 2.6)
    try:
        xyz = np.load(path, allow_pickle=False).astype(np.float64)
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path} is not a readable .npy array ({err}). Re-download it or delete it.") from None
    if xyz.ndim != 2 or xyz.shape[1] != 3 or len(xyz) == 0:
        raise DatasetError(f"{path} has shape {xyz.shape}; expected [N, 3] points with N > 0.")
    xyz = (xyz - center) * scale
    colors = 0.5 + SH_C0 * np.random.default_rng(0).random(xyz.shape) / 255.0
    return BasicPointCloud(points=xyz, colors=colors, normals=np.zeros_like(xyz))
