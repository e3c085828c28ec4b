"""Readers keep frames compact (the file's uint8 / uint16) until the camera is built, and the
camera's float values are exactly what the files hold, read by an independent path (cv2 / max)."""
import json
import os
from argparse import ArgumentParser

import cv2
import numpy as np
import pytest
import torch

from arguments import ModelParams
from scene.readers.camera_loading import cameras_from_infos
from scene.readers.colmap import ColmapCamera, ColmapImage, ColmapPoint3D, write_model
from scene.readers import read_scene

W, H = 16, 12


def model_args(source, *flags):
    parser = ArgumentParser()
    params = ModelParams(parser)
    return params.extract(parser.parse_args(["-s", str(source), *flags]))


def make_scene(root, dtype=np.uint8, channels=3, depth_size=(W, H)):
    """One random frame of ``dtype`` (``channels`` 1 = gray file), an 8-bit mask and a 16-bit depth PNG."""
    rng = np.random.default_rng(0)
    top = np.iinfo(dtype).max
    for folder in ("images", "masks", "depth_gt"):
        os.makedirs(os.path.join(root, folder))
    shape = (H, W) if channels == 1 else (H, W, channels)
    assert cv2.imwrite(os.path.join(root, "images", "0.png"), rng.integers(0, top + 1, shape, dtype=dtype))
    assert cv2.imwrite(os.path.join(root, "masks", "0.png"), (rng.random((H, W)) > 0.5).astype(np.uint8) * 255)
    assert cv2.imwrite(os.path.join(root, "depth_gt", "0.png"),
                       rng.integers(0, 65536, depth_size[::-1], dtype=np.uint16))  # every 16-bit level matters
    write_model(os.path.join(root, "sparse", "0"), {1: ColmapCamera(1, "PINHOLE", W, H, np.array([20.0, 20.0, 8.0, 6.0]))},
                {1: ColmapImage(1, np.array([1.0, 0, 0, 0]), np.zeros(3), 1, "0.png", np.zeros((0, 2)), np.zeros(0, np.int64))},
                {0: ColmapPoint3D(0, np.array([0.0, 0.0, 3.0]), np.zeros(3, np.uint8), 0.0,
                                  np.zeros(0, np.int32), np.zeros(0, np.int32))}, ext=".txt")


def as_float(path, flags=cv2.IMREAD_UNCHANGED):
    """The file as float32 in [0, 1], RGB order: cv2.imread / dtype maximum."""
    pixels = cv2.imread(str(path), flags)
    if pixels.ndim == 3:
        pixels = pixels[..., ::-1]
    return np.ascontiguousarray(pixels.astype(np.float32) / np.float32(np.iinfo(pixels.dtype).max))


def test_8_bit_sources_stay_uint8_and_the_camera_sees_the_files_exactly(tmp_path):
    make_scene(tmp_path)
    (info,) = read_scene(model_args(tmp_path)).train_cameras
    assert (info.image.dtype, info.mask.dtype, info.depth.dtype) == (np.uint8, np.uint8, np.uint16)
    assert info.image.nbytes == H * W * 3  # a quarter of float32
    (cam,) = cameras_from_infos([info], 1, "cpu")
    assert cam.original_image.dtype == cam.mask.dtype == cam.depth_prior.dtype == torch.float32
    assert torch.equal(cam.original_image, torch.from_numpy(as_float(tmp_path / "images" / "0.png")).permute(2, 0, 1))
    assert torch.equal(cam.mask[0], torch.from_numpy(as_float(tmp_path / "masks" / "0.png")))
    assert torch.equal(cam.depth_prior[0], torch.from_numpy(as_float(tmp_path / "depth_gt" / "0.png")))


def test_16_bit_frames_stay_uint16_with_full_precision(tmp_path):
    make_scene(tmp_path, dtype=np.uint16)
    (info,) = read_scene(model_args(tmp_path)).train_cameras
    assert info.image.dtype == np.uint16
    (cam,) = cameras_from_infos([info], 1, "cpu")
    assert torch.equal(cam.original_image, torch.from_numpy(as_float(tmp_path / "images" / "0.png")).permute(2, 0, 1))


def test_gray_frame_is_repeated_in_its_dtype(tmp_path):
    make_scene(tmp_path, channels=1)
    (info,) = read_scene(model_args(tmp_path)).train_cameras
    assert info.image.dtype == np.uint8 and info.image.shape == (H, W, 3)
    (cam,) = cameras_from_infos([info], 1, "cpu")
    gray = torch.from_numpy(as_float(tmp_path / "images" / "0.png"))
    assert torch.equal(cam.original_image, gray.expand(3, H, W))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_downscaling_averages_in_float_not_in_the_files_levels(tmp_path, dtype):
    make_scene(tmp_path, dtype=dtype)
    (cam,) = cameras_from_infos(read_scene(model_args(tmp_path)).train_cameras, 2, "cpu")
    expected = cv2.resize(as_float(tmp_path / "images" / "0.png"), (W // 2, H // 2), interpolation=cv2.INTER_AREA)
    assert torch.equal(cam.original_image, torch.from_numpy(expected).permute(2, 0, 1))
    depth = cv2.resize(as_float(tmp_path / "depth_gt" / "0.png"), (W // 2, H // 2), interpolation=cv2.INTER_AREA)
    assert torch.equal(cam.depth_prior[0], torch.from_numpy(depth))


def test_depth_png_of_another_size_is_resized_in_float(tmp_path):
    make_scene(tmp_path, depth_size=(2 * W, 2 * H))
    (info,) = read_scene(model_args(tmp_path)).train_cameras
    expected = cv2.resize(as_float(tmp_path / "depth_gt" / "0.png"), (W, H), interpolation=cv2.INTER_AREA)
    assert info.depth.dtype == np.float32 and np.array_equal(info.depth, expected)


@pytest.mark.parametrize("alpha, dtype", [(255, np.uint8), (64, np.float32)])
def test_blender_rgba_opaque_stays_uint8_translucent_is_float_composite(tmp_path, alpha, dtype):
    rgba = np.random.default_rng(1).integers(0, 256, (H, W, 4), dtype=np.uint8)
    rgba[..., 3] = alpha
    os.makedirs(tmp_path / "train")
    assert cv2.imwrite(str(tmp_path / "train" / "r_0.png"), rgba[..., [2, 1, 0, 3]])
    with open(tmp_path / "transforms_train.json", "w") as f:
        json.dump({"camera_angle_x": 0.6, "frames": [{"file_path": "./train/r_0", "transform_matrix": np.eye(4).tolist()}]}, f)
    (info,) = read_scene(model_args(tmp_path, "--white_background")).train_cameras
    assert info.image.dtype == dtype
    rgb, a = rgba[..., :3].astype(np.float32) / 255.0, rgba[..., 3:].astype(np.float32) / 255.0
    (cam,) = cameras_from_infos([info], 1, "cpu")
    assert torch.equal(cam.original_image, torch.from_numpy(rgb * a + 1.0 * (1.0 - a)).permute(2, 0, 1))
