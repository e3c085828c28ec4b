"""Dataset readers on tiny scenes built here (8x6 frames): EgoMask/COLMAP, Blender, Nerfies, detection,
and the image I/O they share."""
import json
import os
from argparse import ArgumentParser

import cv2
import numpy as np
import pytest
import torch

from arguments import ModelParams
from scene.readers.colmap import ColmapCamera, ColmapImage, ColmapPoint3D, qvec2rotmat, rotmat2qvec, write_model
from scene.readers.dataset_types import DatasetError
from scene.readers import detect_layout, read_scene
from utils.graphics_utils import focal2fov
from utils.image_io import normalize_pixels, read_image, write_image

W, H = 8, 6


def model_args(source, *flags):
    """The extracted ModelParams group, as train.py gets it from the command line."""
    parser = ArgumentParser()
    params = ModelParams(parser)
    return params.extract(parser.parse_args(["-s", str(source), *flags]))


def frame_rgb(i: int):
    return (10 * i + 5, 100, 200)  # distinct red channel per frame


def write_bgr(path, rgb_image):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb_image[..., ::-1]))


def rotation_y(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def make_colmap_scene(root, names, model="PINHOLE", params=(7.0, 6.0, 4.5, 2.5), ext=".txt"):
    """images/<name>.png with colour frame_rgb(i), and sparse/0 with image ids in reverse name order."""
    for i, name in enumerate(names):
        write_bgr(os.path.join(root, "images", name), np.full((H, W, 3), frame_rgb(i), np.uint8))
    cameras = {1: ColmapCamera(1, model, W, H, np.array(params, dtype=float))}
    images = {100 - i: ColmapImage(100 - i, rotmat2qvec(rotation_y(0.1 * i)), np.array([float(i), 0.0, 2.0]), 1,
                                   name, np.zeros((0, 2)), np.zeros(0, np.int64))
              for i, name in enumerate(names)}
    points = {j: ColmapPoint3D(j, np.array([j, 0.5, 3.0]), np.array([255, 51 * j, 0], np.uint8), 0.1,
                               np.zeros(0, np.int32), np.zeros(0, np.int32)) for j in range(3)}
    write_model(os.path.join(root, "sparse", "0"), cameras, images, points, ext=ext)
    return images


def stems(cams):
    return [c.image_name for c in cams]


def all_files(root):
    return sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files)


# ----------------------------------------------------------------------------- EgoMask / COLMAP

@pytest.mark.parametrize("ext", [".txt", ".bin"])
def test_colmap_scene_poses_intrinsics_images_and_points(tmp_path, ext):
    images = make_colmap_scene(tmp_path, ["0.png", "1.png", "2.png"], ext=ext)
    before = all_files(tmp_path)
    info = read_scene(model_args(tmp_path))
    assert all_files(tmp_path) == before  # nothing written into the dataset
    assert info.test_cameras == []
    assert stems(info.train_cameras) == ["0", "1", "2"]
    for i, cam in enumerate(info.train_cameras):
        source = images[100 - i]
        np.testing.assert_allclose(cam.R, qvec2rotmat(source.qvec).T)
        np.testing.assert_allclose(cam.T, source.tvec)
        assert cam.FovX == pytest.approx(focal2fov(7.0, W)) and cam.FovY == pytest.approx(focal2fov(6.0, H))
        assert (cam.cx, cam.cy) == (4.5, 2.5)
        assert cam.image.shape == (H, W, 3) and cam.image.dtype == np.uint8  # compact until the camera is built
        np.testing.assert_array_equal(cam.image[0, 0], frame_rgb(i))
    pcd = info.point_cloud
    np.testing.assert_allclose(pcd.points[:, 0], [0, 1, 2])
    np.testing.assert_allclose(pcd.colors[2], [1.0, 0.4, 0.0])
    assert not pcd.normals.any()
    # camera centres are -R^T t for COLMAP poses; the normalization is centred on them
    centres = np.stack([-(c.R @ c.T) for c in info.train_cameras])
    np.testing.assert_allclose(-info.nerf_normalization["translate"], centres.mean(0))


def test_frames_sort_naturally_and_time_follows_order(tmp_path):
    make_colmap_scene(tmp_path, ["frame_10.png", "frame_2.png", "frame_1.png", "frame_0.png"])
    cams = read_scene(model_args(tmp_path)).train_cameras
    assert stems(cams) == ["frame_0", "frame_1", "frame_2", "frame_10"]
    assert [c.fid for c in cams] == pytest.approx([0, 1 / 3, 2 / 3, 1])


def test_non_numeric_names_sort_without_crashing(tmp_path):
    make_colmap_scene(tmp_path, ["right.png", "Left2.png", "left10.png"])
    cams = read_scene(model_args(tmp_path)).train_cameras
    assert stems(cams) == ["Left2", "left10", "right"]


def test_single_frame_has_time_zero(tmp_path):
    make_colmap_scene(tmp_path, ["7.png"])
    assert read_scene(model_args(tmp_path)).train_cameras[0].fid == 0.0


def test_eval_holds_out_every_llffhold_th_frame_from_the_first(tmp_path):
    names = [f"{i}.png" for i in range(7)]
    make_colmap_scene(tmp_path, names)
    info = read_scene(model_args(tmp_path, "--eval", "--llffhold", "3"))
    assert stems(info.test_cameras) == ["0", "3", "6"]
    assert stems(info.train_cameras) == ["1", "2", "4", "5"]
    assert [c.fid for c in info.test_cameras] == pytest.approx([0, 0.5, 1])  # time over all frames


def test_distorted_camera_model_is_refused_with_the_fix(tmp_path):
    make_colmap_scene(tmp_path, ["0.png"], model="SIMPLE_RADIAL", params=(7.0, 4.0, 3.0, 0.1))
    cameras_file = os.path.join(tmp_path, "sparse", "0", "cameras.txt")
    with pytest.raises(DatasetError) as err:
        read_scene(model_args(tmp_path))
    message = str(err.value)
    assert "SIMPLE_RADIAL" in message and cameras_file in message
    assert "python convert.py -s SCENE --skip_matching" in message and "--ignore_distortion" in message


def test_ignore_distortion_warns_and_keeps_pinhole_part(tmp_path):
    make_colmap_scene(tmp_path, ["0.png"], model="OPENCV", params=(7.0, 6.0, 4.2, 2.8, 0.1, 0.0, 0.0, 0.0))
    with pytest.warns(UserWarning, match="OPENCV.*distortion is ignored"):
        cam = read_scene(model_args(tmp_path, "--ignore_distortion")).train_cameras[0]
    assert (cam.cx, cam.cy) == (4.2, 2.8) and cam.FovY == pytest.approx(focal2fov(6.0, H))


def test_prescaled_image_folder_scales_principal_point(tmp_path):
    make_colmap_scene(tmp_path, ["0.png"])
    write_bgr(os.path.join(tmp_path, "images_2", "0.png"), np.zeros((H // 2, W // 2, 3), np.uint8))
    cam = read_scene(model_args(tmp_path, "--images", "images_2")).train_cameras[0]
    assert (cam.width, cam.height, cam.cx, cam.cy) == (4, 3, 2.25, 1.25)
    assert cam.FovX == pytest.approx(focal2fov(7.0, W))


def test_missing_image_is_named(tmp_path):
    make_colmap_scene(tmp_path, ["0.png", "1.png"])
    os.remove(tmp_path / "images" / "1.png")
    with pytest.raises(DatasetError, match=r"Image file not found: .*images/1\.png"):
        read_scene(model_args(tmp_path))


def test_corrupt_image_is_named(tmp_path):
    make_colmap_scene(tmp_path, ["0.png", "1.png"])
    (tmp_path / "images" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DatasetError, match=r"images/0\.png is corrupt"):
        read_scene(model_args(tmp_path))


def test_masks_are_loaded_white_is_hand_and_resized_nearest(tmp_path):
    make_colmap_scene(tmp_path, ["0.png", "1.png"])
    big = np.zeros((2 * H, 2 * W), np.uint8)
    big[:4, :6] = 255  # top-left 2x3 block at image size
    os.makedirs(tmp_path / "masks")
    assert cv2.imwrite(str(tmp_path / "masks" / "0.png"), big)
    jpg = np.zeros((H, W, 3), np.uint8)
    jpg[:, W // 2:] = 255
    assert cv2.imwrite(str(tmp_path / "masks" / "1.jpg"), jpg)
    info = read_scene(model_args(tmp_path))
    assert info.has_masks
    mask0, mask1 = (normalize_pixels(c.mask) for c in info.train_cameras)  # uint8 as in the files
    assert mask0.shape == (H, W) and set(np.unique(mask0)) == {0.0, 1.0}
    assert mask0[:2, :3].all() and mask0.sum() == 6
    assert mask1[:, W // 2 + 1:].min() > 0.9 and mask1[:, :W // 2 - 1].max() < 0.1


def test_missing_mask_names_expected_paths_and_the_flag(tmp_path):
    make_colmap_scene(tmp_path, ["0.png", "1.png"])
    os.makedirs(tmp_path / "masks")
    cv2.imwrite(str(tmp_path / "masks" / "0.png"), np.zeros((H, W), np.uint8))
    with pytest.raises(DatasetError) as err:
        read_scene(model_args(tmp_path))
    assert os.path.join(tmp_path, "masks", "1.png") in str(err.value) and "--no_masks" in str(err.value)
    info = read_scene(model_args(tmp_path, "--no_masks"))
    assert not info.has_masks and info.train_cameras[1].mask is None
    assert any("--no_masks" in n for n in info.notices)


def test_scene_without_masks_or_depth_says_so(tmp_path):
    make_colmap_scene(tmp_path, ["0.png"])
    info = read_scene(model_args(tmp_path))
    assert not info.has_masks and not info.has_depth
    assert any("No masks/ folder" in n and "hand-mask loss is off" in n for n in info.notices)
    assert any("No depth_gt/ folder" in n for n in info.notices)


def test_depth_priors_16bit_8bit_and_npy(tmp_path):
    make_colmap_scene(tmp_path, ["0.png", "1.png", "2.png"])
    folder = tmp_path / "depth_gt"
    os.makedirs(folder)
    deep = np.arange(W * H, dtype=np.uint16).reshape(H, W) * 1000
    assert cv2.imwrite(str(folder / "0_depth.png"), deep)
    assert cv2.imwrite(str(folder / "1.png"), np.full((H, W), 51, np.uint8))
    floats = np.linspace(0.5, 7.5, W * H, dtype=np.float32).reshape(H, W)
    np.save(folder / "2.npy", floats)
    info = read_scene(model_args(tmp_path, "--depth_prior_kind", "depth"))
    d0, d1, d2 = (c.depth for c in info.train_cameras)
    assert info.has_depth and all(c.depth_kind == "depth" for c in info.train_cameras)
    assert (d0.dtype, d1.dtype, d2.dtype) == (np.uint16, np.uint8, np.float32)  # PNG levels kept in full
    np.testing.assert_array_equal(d0, deep)
    np.testing.assert_allclose(normalize_pixels(d0), deep / 65535.0, rtol=1e-6)
    np.testing.assert_allclose(normalize_pixels(d1), 0.2, rtol=1e-6)
    np.testing.assert_array_equal(d2, floats)


def test_depth_prior_of_another_size_is_resized_to_the_image(tmp_path):
    make_colmap_scene(tmp_path, ["0.png"])
    os.makedirs(tmp_path / "depth_gt")
    np.save(tmp_path / "depth_gt" / "0.npy", np.full((2 * H, 2 * W), 3.0, np.float32))
    depth = read_scene(model_args(tmp_path)).train_cameras[0].depth
    assert depth.shape == (H, W)
    np.testing.assert_allclose(depth, 3.0)


def test_missing_depth_prior_names_expected_paths_and_the_flag(tmp_path):
    make_colmap_scene(tmp_path, ["0.png", "1.png"])
    os.makedirs(tmp_path / "depth_gt")
    np.save(tmp_path / "depth_gt" / "0.npy", np.ones((H, W), np.float32))
    with pytest.raises(DatasetError) as err:
        read_scene(model_args(tmp_path))
    message = str(err.value)
    assert os.path.join(tmp_path, "depth_gt", "1_depth.png") in message and "1.npy" in message
    assert "--no_depth" in message
    assert not read_scene(model_args(tmp_path, "--no_depth")).has_depth


def test_colour_mapped_depth_png_is_refused(tmp_path):
    make_colmap_scene(tmp_path, ["0.png"])
    colour = np.zeros((H, W, 3), np.uint8)
    colour[..., 2] = 200
    write_bgr(os.path.join(tmp_path, "depth_gt", "0.png"), colour)
    with pytest.raises(DatasetError, match="differing colour channels"):
        read_scene(model_args(tmp_path))


# ----------------------------------------------------------------------------- detection

def test_unknown_layout_lists_what_was_looked_for(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError) as err:
        read_scene(model_args(tmp_path))
    for marker in ("sparse", "transforms_train.json", "dataset.json"):
        assert marker in str(err.value)


def test_missing_source_path(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_scene(model_args(tmp_path / "nowhere"))


def test_layouts_are_detected(tmp_path):
    make_colmap_scene(tmp_path / "ego", ["0.png"])
    os.makedirs(tmp_path / "blend")
    (tmp_path / "blend" / "transforms_train.json").write_text("{}")
    os.makedirs(tmp_path / "nerfies")
    (tmp_path / "nerfies" / "dataset.json").write_text("{}")
    assert [detect_layout(str(tmp_path / d)) for d in ("ego", "blend", "nerfies")] == \
        ["EgoMask/COLMAP", "Blender/D-NeRF", "Nerfies/HyperNeRF/NeRF-DS"]


# ----------------------------------------------------------------------------- Blender

def make_blender_scene(root, alpha=0.25, with_time=True):
    """Two train frames and one test frame, RGBA colour (200, 100, 50) at ``alpha``; train camera 0
    at (0, 0, 4) looking at the origin (OpenGL: camera looks down its -z)."""
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[..., 3] = round(alpha * 255)
    poses = [np.eye(4), np.eye(4), np.eye(4)]
    for k, pose in enumerate(poses):
        pose[:3, 3] = (k, 0.0, 4.0)
    for split, indices in (("train", [0, 1]), ("test", [2])):
        frames = []
        for k in indices:
            path = os.path.join(root, split, f"r_{k:03d}.png")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            assert cv2.imwrite(path, rgba[..., [2, 1, 0, 3]])  # cv2 writes BGRA
            frame = {"file_path": f"./{split}/r_{k:03d}", "transform_matrix": poses[k].tolist()}
            if with_time:
                frame["time"] = k / 2
            frames.append(frame)
        with open(os.path.join(root, f"transforms_{split}.json"), "w") as f:
            json.dump({"camera_angle_x": 0.6, "frames": frames}, f)


@pytest.mark.parametrize("white, expected_bg", [(True, 1.0), (False, 0.0)])
def test_blender_rgba_is_composited_on_the_background(tmp_path, white, expected_bg):
    make_blender_scene(tmp_path, alpha=0.25)
    info = read_scene(model_args(tmp_path, *(["--white_background"] if white else [])))
    alpha = round(0.25 * 255) / 255
    expected = np.array([200, 100, 50]) / 255 * alpha + expected_bg * (1 - alpha)
    image = info.train_cameras[0].image
    assert image.dtype == np.float32  # composited in float and kept so
    np.testing.assert_allclose(image[3, 4], expected, atol=1e-6)


def test_blender_poses_time_split_and_random_points(tmp_path):
    make_blender_scene(tmp_path)
    before = all_files(tmp_path)
    info = read_scene(model_args(tmp_path, "--eval"))
    assert all_files(tmp_path) == before
    assert stems(info.train_cameras) == ["r_000", "r_001"] and stems(info.test_cameras) == ["r_002"]
    assert [c.fid for c in info.train_cameras + info.test_cameras] == [0.0, 0.5, 1.0]
    cam = info.train_cameras[1]
    np.testing.assert_allclose(-(cam.R @ cam.T), [1.0, 0.0, 4.0], atol=1e-12)  # camera centre kept
    origin_in_view = cam.R.T @ np.zeros(3) + cam.T
    assert origin_in_view[2] == pytest.approx(4.0)  # in front of the camera: +z in OpenCV axes
    up_in_view = cam.R.T @ np.array([1.0, 1.0, 0.0]) + cam.T
    assert up_in_view[1] < 0  # world +y (up in Blender) is image-up, i.e. negative y in OpenCV
    assert cam.FovX == 0.6 and cam.FovY == pytest.approx(focal2fov(W / (2 * np.tan(0.3)), H))
    pcd = info.point_cloud
    assert pcd.points.shape == (100_000, 3) and np.abs(pcd.points).max() <= 1.3
    assert np.abs(pcd.points).max() > 1.29  # fills the cube
    assert np.allclose(pcd.colors, 0.5, atol=0.002)
    np.testing.assert_array_equal(pcd.points, read_scene(model_args(tmp_path)).point_cloud.points)  # seeded
    assert len(read_scene(model_args(tmp_path)).train_cameras) == 3  # without --eval test frames train


def test_blender_time_from_order_when_absent(tmp_path):
    make_blender_scene(tmp_path, with_time=False)
    info = read_scene(model_args(tmp_path, "--eval"))
    assert [c.fid for c in info.train_cameras] == [0.0, 1.0] and info.test_cameras[0].fid == 0.0


# ----------------------------------------------------------------------------- Nerfies

def make_nerfies_scene(root, center=(1.0, 2.0, 3.0), scale=0.5):
    """3 frames (ids a, b, c), full size 16x12, rgb/1x and rgb/2x; val_ids = [b]."""
    ids = ["a", "b", "c"]
    with open(os.path.join(root, "dataset.json"), "w") as f:
        json.dump({"count": 3, "num_exemplars": 2, "ids": ids, "train_ids": ["a", "c"], "val_ids": ["b"]}, f)
    with open(os.path.join(root, "metadata.json"), "w") as f:
        json.dump({i: {"warp_id": t, "time_id": t, "appearance_id": t, "camera_id": 0}
                   for i, t in zip(ids, [0, 2, 4])}, f)
    with open(os.path.join(root, "scene.json"), "w") as f:
        json.dump({"scale": scale, "center": list(center), "near": 0.1, "far": 2.0}, f)
    os.makedirs(os.path.join(root, "camera"))
    for k, image_id in enumerate(ids):
        camera = {"orientation": rotation_y(0.2 * k).tolist(), "position": [k, 2.0, 3.0], "focal_length": 20.0,
                  "principal_point": [7.0, 6.5], "image_size": [16, 12], "skew": 0.0, "pixel_aspect_ratio": 1.0,
                  "radial_distortion": [0.01, 0.0, 0.0], "tangential_distortion": [0.0, 0.0]}
        with open(os.path.join(root, "camera", f"{image_id}.json"), "w") as f:
            json.dump(camera, f)
        for factor in (1, 2):
            write_bgr(os.path.join(root, "rgb", f"{factor}x", f"{image_id}.png"),
                      np.full((12 // factor, 16 // factor, 3), frame_rgb(k), np.uint8))
    np.save(os.path.join(root, "points.npy"), np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]))
    return ids


def test_nerfies_fixture_is_read(tmp_path):
    make_nerfies_scene(tmp_path)
    info = read_scene(model_args(tmp_path, "--eval"))
    assert stems(info.train_cameras) == ["a", "c"] and stems(info.test_cameras) == ["b"]
    assert [c.fid for c in info.train_cameras + info.test_cameras] == [0.0, 1.0, 0.5]
    cam_c = info.train_cameras[1]
    assert (cam_c.width, cam_c.height, cam_c.downscale) == (8, 6, 2)  # default rgb/2x
    assert (cam_c.cx, cam_c.cy) == (3.5, 3.25)
    assert cam_c.FovX == pytest.approx(focal2fov(10.0, 8)) and cam_c.FovY == pytest.approx(focal2fov(10.0, 6))
    np.testing.assert_allclose(cam_c.R.T, rotation_y(0.4))  # orientation is the w2c rotation
    centre = -(cam_c.R @ cam_c.T)
    np.testing.assert_allclose(centre, (np.array([2.0, 2.0, 3.0]) - [1, 2, 3]) * 0.5, atol=1e-12)
    np.testing.assert_array_equal(cam_c.image[0, 0], frame_rgb(2))
    np.testing.assert_allclose(info.point_cloud.points, [[0, 0, 0], [1, 0, -1]])
    assert any("distortion" in n for n in info.notices)


def test_nerfies_resolution_flag_picks_the_folder(tmp_path):
    make_nerfies_scene(tmp_path)
    cam = read_scene(model_args(tmp_path, "-r", "1")).train_cameras[0]
    assert (cam.width, cam.downscale, cam.cx) == (16, 1, 7.0)
    with pytest.raises(DatasetError, match=r"rgb/4x not found .*found: 1x, 2x"):
        read_scene(model_args(tmp_path, "-r", "4"))


def test_nerfies_missing_metadata_is_named(tmp_path):
    make_nerfies_scene(tmp_path)
    os.remove(tmp_path / "metadata.json")
    with pytest.raises(DatasetError, match="Missing .*metadata.json"):
        read_scene(model_args(tmp_path))


# ----------------------------------------------------------------------------- image I/O

def test_read_image_8_and_16_bit_gray_rgba(tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = 255  # pure red in RGB
    write_bgr(str(tmp_path / "red.png"), rgb)
    np.testing.assert_array_equal(read_image(str(tmp_path / "red.png"))[0, 0], [1, 0, 0])
    assert cv2.imwrite(str(tmp_path / "gray16.png"), np.full((H, W), 65535 // 5, np.uint16))
    gray = read_image(str(tmp_path / "gray16.png"))
    assert gray.shape == (H, W, 1) and gray[0, 0, 0] == pytest.approx(0.2)
    bgra = np.zeros((H, W, 4), np.uint8)
    bgra[..., 2], bgra[..., 3] = 255, 128
    assert cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    np.testing.assert_allclose(read_image(str(tmp_path / "rgba.png"))[0, 0], [1, 0, 0, 128 / 255])


def test_write_image_round_trips_tensors_and_16_bit(tmp_path):
    image = torch.rand(3, H, W)
    write_image(str(tmp_path / "out" / "t.png"), image)
    back = read_image(str(tmp_path / "out" / "t.png"))
    np.testing.assert_allclose(back, image.permute(1, 2, 0).numpy(), atol=0.5 / 255 + 1e-6)
    plane = np.random.default_rng(0).random((H, W)).astype(np.float32)
    write_image(str(tmp_path / "d.png"), plane, bit_depth=16)
    np.testing.assert_allclose(read_image(str(tmp_path / "d.png"))[..., 0], plane, atol=0.5 / 65535 + 1e-7)


# ----------------------------------------------------------------------------- masks in other forms, sizes

def write_mask(path, pixels):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), pixels)


def left_half(channels, value):
    """An [H, W, channels] uint8 image (cv2 order) with `value` on the left half, zeros elsewhere."""
    mask = np.zeros((H, W, channels), np.uint8)
    mask[:, : W // 2] = value
    return mask


@pytest.mark.parametrize("pixels, how", [
    (left_half(3, (0, 0, 255)), "are coloured: every non-black pixel is hand"),  # red (BGR): luma 0.299
    (left_half(3, (40, 0, 20)), "are coloured: every non-black pixel is hand"),  # a dark palette colour
    (np.dstack([np.zeros((H, W, 3), np.uint8), left_half(1, 255)]), "read from their alpha channel"),
])
def test_coloured_and_alpha_masks_read_as_hand_with_one_notice(tmp_path, capsys, pixels, how):
    make_colmap_scene(tmp_path, ["0.png", "1.png"])
    for name in ("0", "1"):
        write_mask(tmp_path / "masks" / f"{name}.png", pixels)
    info = read_scene(model_args(tmp_path))
    for cam in info.train_cameras:
        mask = normalize_pixels(cam.mask)
        assert mask[:, : W // 2].min() == 1.0 and mask[:, W // 2:].max() == 0.0
    assert sum(how in n for n in info.notices) == 1


def test_grey_masks_keep_their_values_and_say_nothing(tmp_path):
    make_colmap_scene(tmp_path, ["0.png"])
    write_mask(tmp_path / "masks" / "0.png", left_half(3, (128, 128, 128)))   # grey saved as RGB
    info = read_scene(model_args(tmp_path))
    assert normalize_pixels(info.train_cameras[0].mask).max() == pytest.approx(128 / 255)
    assert not any("are coloured" in n or "alpha channel" in n for n in info.notices)


def test_mask_of_another_aspect_ratio_is_an_error(tmp_path):
    make_colmap_scene(tmp_path, ["0.png"])
    write_mask(tmp_path / "masks" / "0.png", np.zeros((H, 2 * W), np.uint8))
    with pytest.raises(DatasetError, match=r"Hand mask .*0\.png is 16x6 but its frame is 8x6 \(another aspect"):
        read_scene(model_args(tmp_path))


def test_depth_prior_of_another_aspect_ratio_is_an_error(tmp_path):
    make_colmap_scene(tmp_path, ["0.png"])
    os.makedirs(tmp_path / "depth_gt")
    np.save(tmp_path / "depth_gt" / "0.npy", np.ones((3 * H, W), np.float32))
    with pytest.raises(DatasetError, match=r"Depth prior .*0\.npy is 8x18 but its frame is 8x6"):
        read_scene(model_args(tmp_path))


def test_a_frame_of_another_size_among_the_others_is_an_error(tmp_path):
    make_colmap_scene(tmp_path, ["0.png", "1.png", "2.png"])
    write_bgr(os.path.join(tmp_path, "images", "1.png"), np.zeros((2 * H, 2 * W, 3), np.uint8))  # same aspect
    with pytest.raises(DatasetError, match=r"1\.png is 16x12 but the other frames are 8x6"):
        read_scene(model_args(tmp_path))


def test_blender_without_times_says_frame_order_is_used(tmp_path, capsys):
    make_blender_scene(tmp_path, with_time=False)
    read_scene(model_args(tmp_path, "--eval"))
    assert "no frame a `time`: frame order is used" in capsys.readouterr().out
