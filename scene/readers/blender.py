"""Blender / D-NeRF layout: transforms_{train,val,test}.json next to the frames.

Each transforms file holds ``camera_angle_x`` (horizontal field of view, radians) and
``frames[{file_path, transform_matrix, time}]``; ``transform_matrix`` is camera-to-world in the
OpenGL/Blender convention (y up, z backwards), turned into COLMAP/OpenCV axes (y down, z forward)
by negating its y and z columns. ``file_path`` may omit ".png". RGBA frames are composited on
the background: ``rgb * a + bg * (1 - a)`` in float32 and kept so (re-quantizing to 8 bits would
move values by up to half a level); frames whose alpha is opaque everywhere stay uint8 / uint16.
Without ``--eval`` the test frames join training (as upstream). Nothing is written into the
dataset folder.
"""
import json
import os
from typing import List

import numpy as np

from scene.readers.dataset_types import CameraInfo, DatasetError, SceneInfo, get_nerfpp_norm
from utils.graphics_utils import BasicPointCloud, focal2fov, fov2focal
from utils.image_io import read_rgb_compact
from utils.system_utils import print_once

RANDOM_POINTS = 100_000
RANDOM_CUBE_SIDE = 2.6   # the D-NeRF scenes fit in [-1.3, 1.3]^3
SH_C0 = 0.28209479177387814  # degree-0 spherical harmonic, for grey initial colours


def read_blender_scene(args) -> SceneInfo:
    """SceneInfo from transforms_train.json (+ transforms_test.json). ``args``: source_path, eval,
    white_background."""
    source = args.source_path
    background = (1.0, 1.0, 1.0) if args.white_background else (0.0, 0.0, 0.0)
    train = read_transforms(source, "transforms_train.json", background)
    test_file = os.path.join(source, "transforms_test.json")
    if os.path.isfile(test_file):
        test = read_transforms(source, "transforms_test.json", background, first_uid=len(train))
    elif args.eval:
        raise DatasetError(f"--eval needs {test_file}, which does not exist. Add it or train without --eval.")
    else:
        test = []
    if not args.eval:
        train, test = train + test, []

    notices = [f"Blender layout in {source}: no hand masks or depth priors, those losses are off."]
    ply_path = os.path.join(source, "points3d.ply")
    if os.path.isfile(ply_path):
        point_cloud = read_ply_points(ply_path)
    else:
        point_cloud = random_point_cloud(RANDOM_POINTS, RANDOM_CUBE_SIDE)
        notices.append(f"No points3d.ply in {source}: starting from {RANDOM_POINTS} random points.")
    return SceneInfo(point_cloud=point_cloud, train_cameras=train, test_cameras=test,
                     nerf_normalization=get_nerfpp_norm(train), notices=notices)


def read_transforms(source: str, filename: str, background, first_uid: int = 0) -> List[CameraInfo]:
    path = os.path.join(source, filename)
    contents = _load_json(path)
    try:
        fov_x = float(contents["camera_angle_x"])
        frames = list(contents["frames"])
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{path} needs a number `camera_angle_x` and a list `frames`.") from None
    times = _frame_times(frames, path)
    if frames and not any("time" in frame for frame in frames):
        print_once(f"{path} gives no frame a `time`: frame order is used (i / (N - 1)).")
    cam_infos = []
    for index, frame in enumerate(frames):
        R, T = _blender_pose(frame, path, index)
        image_path = _frame_image_path(source, frame, path, index)
        image = read_rgb_compact(image_path, background)
        height, width = image.shape[:2]
        fov_y = focal2fov(fov2focal(fov_x, width), height)
        cam_infos.append(CameraInfo(uid=first_uid + index, R=R, T=T, FovY=fov_y, FovX=fov_x, image=image,
                                    image_path=image_path, image_name=os.path.splitext(os.path.basename(image_path))[0],
                                    width=width, height=height, fid=times[index]))
    return cam_infos


def _load_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as err:
        raise DatasetError(f"Cannot read {path}: {err.strerror}.") from None
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path} is not valid JSON ({err}). Fix or regenerate the file.") from None


def _blender_pose(frame: dict, path: str, index: int):
    """(R c2w rotation, T w2c translation) in COLMAP axes from an OpenGL camera-to-world matrix."""
    try:
        c2w = np.array(frame["transform_matrix"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{path}, frame {index}: missing or non-numeric `transform_matrix`.") from None
    if c2w.shape != (4, 4) or not np.isfinite(c2w).all():
        raise DatasetError(f"{path}, frame {index}: `transform_matrix` must be a finite 4x4 matrix.")
    c2w[:3, 1:3] *= -1  # OpenGL (y up, z back) -> OpenCV (y down, z forward)
    w2c = np.linalg.inv(c2w)
    return w2c[:3, :3].T, w2c[:3, 3]


def _frame_image_path(source: str, frame: dict, path: str, index: int) -> str:
    if "file_path" not in frame:
        raise DatasetError(f"{path}, frame {index}: missing `file_path`.")
    image_path = os.path.normpath(os.path.join(source, frame["file_path"]))
    if not os.path.splitext(image_path)[1]:
        image_path += ".png"
    return image_path


def _frame_times(frames: List[dict], path: str) -> List[float]:
    """The frames' ``time`` values; order-based i / (N - 1) when no frame has one."""
    has_time = ["time" in frame for frame in frames]
    if not any(has_time):
        return [i / (len(frames) - 1) if len(frames) > 1 else 0.0 for i in range(len(frames))]
    if not all(has_time):
        missing = has_time.index(False)
        raise DatasetError(f"{path}: frame {missing} has no `time` while others do. Give every frame a time "
                           "in [0, 1] (or none, to use the frame order).")
    try:
        return [float(frame["time"]) for frame in frames]
    except (TypeError, ValueError):
        raise DatasetError(f"{path}: every frame `time` must be a number in [0, 1].") from None


def random_point_cloud(count: int, side: float, seed: int = 0) -> BasicPointCloud:
    """``count`` points uniform in a cube of ``side`` centred at the origin, near-grey colours
    (SH DC coefficients drawn in [0, 1/255] as upstream), zero normals; seeded."""
    rng = np.random.default_rng(seed)
    xyz = (rng.random((count, 3)) - 0.5) * side
    colors = 0.5 + SH_C0 * rng.random((count, 3)) / 255.0
    return BasicPointCloud(points=xyz, colors=colors, normals=np.zeros((count, 3)))


def read_ply_points(path: str) -> BasicPointCloud:
    """Positions, colours / 255 and normals (zero if absent) of a PLY point cloud's vertices."""
    from plyfile import PlyData  # imported here: only this optional file needs it
    try:
        vertices = PlyData.read(path)["vertex"]
        xyz = np.stack([vertices[axis] for axis in ("x", "y", "z")], axis=1).astype(np.float64)
    except Exception as err:  # plyfile raises many types for a bad file
        raise DatasetError(f"{path} is not a readable PLY point cloud with x, y, z vertices ({err}). "
                           "Fix it or delete it to start from random points.") from None
    names = vertices.data.dtype.names
    colors = (np.stack([vertices[c] for c in ("red", "green", "blue")], axis=1) / 255.0
              if all(c in names for c in ("red", "green", "blue")) else np.full_like(xyz, 0.5))
    normals = (np.stack([vertices[n] for n in ("nx", "ny", "nz")], axis=1).astype(np.float64)
               if all(n in names for n in ("nx", "ny", "nz")) else np.zeros_like(xyz))
    return BasicPointCloud(points=xyz, colors=colors.astype(np.float64), normals=normals)
