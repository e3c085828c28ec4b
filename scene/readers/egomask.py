"""EgoMask layout: a COLMAP scene plus optional hand masks and monocular depth priors.

    SOURCE/sparse/0/{cameras,images,points3D}.{bin,txt}   undistorted (PINHOLE / SIMPLE_PINHOLE)
    SOURCE/<images>/<name>                                   frames named as in images.{bin,txt}
    SOURCE/masks/<stem>.(png|jpg)                            white = hand (optional)
    SOURCE/depth_gt/<stem>_depth.png | <stem>.png | <stem>.npy   depth prior (optional)

Decisions (documented here once):
- Frames are sorted by natural order of their names ("frame_2" < "frame_10"); time
  fid = order / (N - 1), 0 for a single frame.
- ``--eval`` holds out the sorted frames with ``index % llffhold == 0`` (as the 3DGS /
  Deformable-3DGS / EgoMask readers), so the first frame is always a test frame.
- Masks whose size differs from their image are resized with nearest neighbour (they stay 0/1);
  depth priors with area averaging when shrinking, bilinear when enlarging.
- RGBA frames are composited on the background (--white_background), as the Blender reader does.
- Frames, masks and depth PNGs stay in their file's dtype (uint8 / uint16) until the camera is built
  (see ``CameraInfo``); depth .npy files are float32.
- Nothing is written into the dataset folder: the point cloud is returned in memory.
"""
import os
import re
import warnings
from typing import Dict, List, Optional, Tuple

import numpy as np

from scene.readers.colmap import ColmapCamera, ColmapImage, ColmapPoint3D, detect_model_format, qvec2rotmat, read_model
from scene.readers.dataset_types import CameraInfo, DatasetError, SceneInfo, get_nerfpp_norm
from utils.graphics_utils import BasicPointCloud, focal2fov
from utils.image_io import (check_same_aspect, normalize_pixels, read_mask, read_raw, read_rgb_compact,
                            resize)

SUPPORTED_MODELS = ("PINHOLE", "SIMPLE_PINHOLE")
# Models whose parameters start with one focal length (f, cx, cy, ...); the others with (fx, fy, cx, cy, ...).
_SINGLE_FOCAL_MODELS = ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE")
MASK_EXTENSIONS = (".png", ".jpg", ".jpeg")


def read_egomask_scene(args) -> SceneInfo:
    """SceneInfo of an EgoMask / COLMAP scene. ``args``: ModelParams fields (source_path, images,
    eval, llffhold, white_background, depth_prior_kind, no_masks, no_depth, ignore_distortion)."""
    source = args.source_path
    model_dir = os.path.join(source, "sparse", "0")
    ext = detect_model_format(model_dir)
    cameras, images, points3D = read_model(model_dir, ext)
    cameras_file = os.path.join(model_dir, "cameras" + ext)
    images_dir = os.path.join(source, args.images or "images")
    if not os.path.isdir(images_dir):
        raise DatasetError(f"Image folder {images_dir} not found. Put the frames there or name the "
                           "folder with --images.")
    background = (1.0, 1.0, 1.0) if args.white_background else (0.0, 0.0, 0.0)
    allow_distorted = bool(getattr(args, "ignore_distortion", False))

    ordered = sorted(images.values(), key=lambda img: natural_key(img.name))
    times = frame_times(len(ordered))
    cam_infos = [_camera_info(order, img, cameras, cameras_file, images_dir, times[order], background,
                              allow_distorted) for order, img in enumerate(ordered)]

    _check_one_frame_size(cam_infos)
    notices: List[str] = []
    has_masks = _attach_masks(source, cam_infos, args.no_masks, notices)
    has_depth = _attach_depth_priors(source, cam_infos, args.no_depth, args.depth_prior_kind, notices)
    train, test = split_train_test(cam_infos, args.eval, args.llffhold)
    return SceneInfo(point_cloud=point_cloud_from_points3D(points3D, model_dir),
                     train_cameras=train, test_cameras=test,
                     nerf_normalization=get_nerfpp_norm(train),
                     has_masks=has_masks, has_depth=has_depth, notices=notices)


# ----------------------------------------------------------------------------- frames and time

def natural_key(name: str) -> Tuple:
    """Sort key comparing digit runs as numbers: "frame_2" < "frame_10", "9.png" < "10.png";
    the full name breaks ties ("01" vs "1")."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in parts), name


def frame_times(count: int) -> List[float]:
    """Normalized time of each of ``count`` frames in order: i / (count - 1), 0 for one frame."""
    if count <= 1:
        return [0.0] * count
    return [i / (count - 1) for i in range(count)]


def split_train_test(cam_infos: List[CameraInfo], eval: bool, llffhold: int):
    """(train, test): with ``eval`` every frame with index % llffhold == 0 is a test frame."""
    if not eval:
        return list(cam_infos), []
    if llffhold < 1:
        raise DatasetError(f"--llffhold must be a positive integer, got {llffhold}.")
    train = [cam for i, cam in enumerate(cam_infos) if i % llffhold != 0]
    test = [cam for i, cam in enumerate(cam_infos) if i % llffhold == 0]
    return train, test


# ----------------------------------------------------------------------------- cameras

def pinhole_intrinsics(camera: ColmapCamera, cameras_file: str, allow_distorted: bool) -> Tuple[float, float, float, float]:
    """(fx, fy, cx, cy) in pixels; DatasetError for a distorted model unless ``allow_distorted``."""
    if camera.model not in SUPPORTED_MODELS:
        if not allow_distorted:
            raise DatasetError(
                f"Camera {camera.id} in {cameras_file} uses the {camera.model} model (lens distortion); "
                f"only {' and '.join(SUPPORTED_MODELS)} cameras are supported. Undistort the scene with "
                "`python convert.py -s SCENE --skip_matching` (it writes PINHOLE cameras), or pass "
                "--ignore_distortion to train on the distorted images anyway.")
        warnings.warn(f"Camera {camera.id} in {cameras_file} uses the {camera.model} model: its lens "
                      "distortion is ignored (--ignore_distortion); expect blur near the image borders.")
    p = camera.params
    if camera.model in _SINGLE_FOCAL_MODELS:
        return float(p[0]), float(p[0]), float(p[1]), float(p[2])
    return float(p[0]), float(p[1]), float(p[2]), float(p[3])


def _camera_info(order: int, img: ColmapImage, cameras: Dict[int, ColmapCamera], cameras_file: str,
                 images_dir: str, fid: float, background, allow_distorted: bool) -> CameraInfo:
    if img.camera_id not in cameras:
        raise DatasetError(f"Image {img.name!r} refers to camera {img.camera_id}, which is not in "
                           f"{cameras_file}. Re-export the COLMAP model.")
    camera = cameras[img.camera_id]
    fx, fy, cx, cy = pinhole_intrinsics(camera, cameras_file, allow_distorted)
    image_path = os.path.join(images_dir, img.name)
    if not os.path.isfile(image_path):
        raise DatasetError(f"Image file not found: {image_path} (frame {img.name!r} of the COLMAP model). "
                           "Add it, or choose the image folder with --images.")
    image = read_rgb_compact(image_path, background)
    height, width = image.shape[:2]
    scale = _image_scale(camera, width, height, image_path, cameras_file)
    return CameraInfo(uid=order, R=qvec2rotmat(img.qvec).T, T=np.asarray(img.tvec, dtype=np.float64),
                      FovY=focal2fov(fy, camera.height), FovX=focal2fov(fx, camera.width),
                      image=image, image_path=image_path,
                      image_name=os.path.splitext(os.path.basename(img.name))[0],
                      width=width, height=height, fid=fid, cx=cx * scale, cy=cy * scale)


def _image_scale(camera: ColmapCamera, width: int, height: int, image_path: str, cameras_file: str) -> float:
    """Image size / COLMAP size. Pre-downscaled folders (--images images_2) are fine: the field of
    view is unchanged and the principal point scales; another aspect ratio is an error."""
    scale = width / camera.width
    if abs(camera.height * scale - height) > 1.0:
        raise DatasetError(f"{image_path} is {width}x{height} but its camera {camera.id} in {cameras_file} is "
                           f"{camera.width}x{camera.height} (a different aspect ratio). Use the images the "
                           "COLMAP model was made from (or their undistorted version).")
    return scale


def _check_one_frame_size(cam_infos: List[CameraInfo]) -> None:
    """All frames of a scene have one size (a stray frame of another size would be rescaled silently)."""
    sizes = [(cam.width, cam.height) for cam in cam_infos]
    common = max(set(sizes), key=sizes.count)
    for cam, size in zip(cam_infos, sizes):
        if size != common:
            raise DatasetError(f"{cam.image_path} is {size[0]}x{size[1]} but the other frames are "
                               f"{common[0]}x{common[1]}: give every frame the same size (or remove it).")


def point_cloud_from_points3D(points3D: Dict[int, ColmapPoint3D], model_dir: str) -> BasicPointCloud:
    """COLMAP points with colours / 255 and zero normals."""
    if not points3D:
        raise DatasetError(f"The COLMAP model in {model_dir} has no 3D points; the Gaussians are initialized "
                           "from them. Re-run the reconstruction (e.g. `python convert.py -s SCENE`).")
    xyz = np.stack([p.xyz for p in points3D.values()]).astype(np.float64)
    rgb = np.stack([p.rgb for p in points3D.values()]).astype(np.float64) / 255.0
    return BasicPointCloud(points=xyz, colors=rgb, normals=np.zeros_like(xyz))


# ----------------------------------------------------------------------------- masks and depth priors

def _supervision_folder(source: str, name: str, loss: str, flag: str, what: str, disabled: bool,
                        notices: List[str]) -> Optional[str]:
    """The scene's `name` folder to read, or None (with a notice) when it is absent or switched off."""
    folder = os.path.join(source, name)
    if not os.path.isdir(folder):
        notices.append(f"No {name}/ folder in {source}: the {loss} loss is off.")
        return None
    if disabled:
        notices.append(f"{flag}: the {what} in {folder} are not used.")
        return None
    return folder


def _attach_masks(source: str, cam_infos: List[CameraInfo], disabled: bool, notices: List[str]) -> bool:
    folder = _supervision_folder(source, "masks", "hand-mask", "--no_masks", "hand masks", disabled, notices)
    if folder is None:
        return False
    ways = set()
    for cam in cam_infos:
        path = _find_file(folder, [cam.image_name + ext for ext in MASK_EXTENSIONS], "hand mask", "--no_masks")
        mask, how = read_mask(path)
        check_same_aspect(path, "Hand mask", mask.shape[::-1], (cam.width, cam.height))
        cam.mask = resize(mask, cam.width, cam.height, nearest=True)
        ways.add(how)
    if "alpha" in ways:
        notices.append(f"Hand masks in {folder}: read from their alpha channel (their colour is constant).")
    if "colour" in ways:
        notices.append(f"Hand masks in {folder} are coloured: every non-black pixel is hand.")
    return True


def _attach_depth_priors(source: str, cam_infos: List[CameraInfo], disabled: bool, kind: str,
                         notices: List[str]) -> bool:
    folder = _supervision_folder(source, "depth_gt", "depth-prior", "--no_depth", "depth priors", disabled, notices)
    if folder is None:
        return False
    for cam in cam_infos:
        stem = cam.image_name
        path = _find_file(folder, [stem + "_depth.png", stem + ".png", stem + ".npy"], "depth prior", "--no_depth")
        depth = read_depth_prior(path)
        check_same_aspect(path, "Depth prior", depth.shape[::-1], (cam.width, cam.height))
        if depth.shape != (cam.height, cam.width):  # interpolate in float, not in integer levels
            depth = resize(normalize_pixels(depth, path), cam.width, cam.height)
        cam.depth = depth
        cam.depth_kind = kind
    return True


def _find_file(folder: str, names: List[str], what: str, flag: str) -> str:
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    expected = " or ".join(os.path.join(folder, name) for name in names)
    raise DatasetError(f"Missing {what}: expected {expected}. Add it (every frame needs one when "
                       f"{os.path.basename(folder)}/ exists) or pass {flag}.")


def read_depth_prior(path: str) -> np.ndarray:
    """[H, W]: an 8/16-bit PNG as stored (uint8 / uint16: ``normalize_pixels`` divides by the dtype
    maximum later), or a .npy as float32 values (never divided)."""
    if path.endswith(".npy"):
        return _read_depth_npy(path)
    pixels = read_raw(path)
    if pixels.ndim == 3:
        if not all(np.array_equal(pixels[:, :, 0], pixels[:, :, c]) for c in range(1, min(3, pixels.shape[2]))):
            raise DatasetError(f"Depth prior {path} has differing colour channels (a colour-mapped "
                               "visualization?). Save the raw single-channel depth (e.g. Depth Anything "
                               "with --pred-only --grayscale) or a float .npy.")
        pixels = np.ascontiguousarray(pixels[:, :, 0])  # not a view that keeps all channels alive
    return pixels if pixels.dtype in (np.uint8, np.uint16) else normalize_pixels(pixels, path)


def _read_depth_npy(path: str) -> np.ndarray:
    try:
        depth = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DatasetError(f"Depth prior {path} is not a readable .npy array ({err}). Re-save it with numpy.save.") from None
    depth = np.squeeze(depth)
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.number):
        raise DatasetError(f"Depth prior {path} has shape {depth.shape} and dtype {depth.dtype}; expected a "
                           "numeric [H, W] array.")
    return depth.astype(np.float32)
