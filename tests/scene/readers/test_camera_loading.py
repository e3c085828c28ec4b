"""CameraInfo -> Camera at the -r resolution, and cameras.json entries."""
import os
from argparse import ArgumentParser

import cv2
import numpy as np
import pytest
import torch

from arguments import ModelParams
from scene.readers.camera_loading import camera_to_json, cameras_from_infos, target_size
from scene.readers.colmap import ColmapCamera, ColmapImage, ColmapPoint3D, qvec2rotmat, rotmat2qvec, write_model
from scene.readers.dataset_types import CameraInfo, DatasetError
from scene.readers import read_scene
from utils import system_utils
from utils.graphics_utils import focal2fov, geom_transform_points, ndc_to_pixel


@pytest.fixture(autouse=True)
def fresh_notices(monkeypatch):
    """Each test sees the once-per-process notices as if the process had just started."""
    monkeypatch.setattr(system_utils, "_printed_notices", set())


def make_info(width=8, height=6, mask=True, depth=True, downscale=1, cx=4.5, cy=2.5) -> CameraInfo:
    rng = np.random.default_rng(0)
    R = qvec2rotmat(rng.normal(size=4))  # a random rotation
    hand = np.zeros((height, width), np.float32)
    hand[: height // 2, : width // 2] = 1.0
    return CameraInfo(uid=3, R=R, T=np.array([0.1, -0.2, 2.0]), FovY=focal2fov(6.0, height), FovX=focal2fov(7.0, width),
                      image=rng.random((height, width, 3)).astype(np.float32), image_path="x/0.png",
                      image_name="0", width=width, height=height, fid=0.25, cx=cx, cy=cy,
                      mask=hand if mask else None,
                      depth=rng.random((height, width)).astype(np.float32) if depth else None,
                      depth_kind="disparity" if depth else None, downscale=downscale)


def test_full_resolution_tensors_and_fields():
    info = make_info()
    (cam,) = cameras_from_infos([info], 1, "cpu")
    assert cam.original_image.shape == (3, 6, 8) and cam.mask.shape == (1, 6, 8) and cam.depth_prior.shape == (1, 6, 8)
    assert cam.original_image.dtype == torch.float32
    torch.testing.assert_close(cam.original_image, torch.from_numpy(info.image).permute(2, 0, 1))
    torch.testing.assert_close(cam.depth_prior[0], torch.from_numpy(info.depth))
    assert (cam.cx, cam.cy, cam.uid, cam.depth_kind) == (4.5, 2.5, 3, "disparity")
    assert float(cam.fid) == 0.25


def test_divide_by_two_averages_pixels_and_scales_principal_point():
    info = make_info()
    (cam,) = cameras_from_infos([info], 2, "cpu")
    assert (cam.image_width, cam.image_height) == (4, 3)
    block_mean = info.image.reshape(3, 2, 4, 2, 3).mean(axis=(1, 3))  # 2x2 area average
    np.testing.assert_allclose(cam.original_image.permute(1, 2, 0).numpy(), block_mean, atol=1e-6)
    np.testing.assert_allclose(cam.depth_prior[0].numpy(), info.depth.reshape(3, 2, 4, 2).mean(axis=(1, 3)), atol=1e-6)
    np.testing.assert_array_equal(cam.mask[0].numpy(), info.mask[::2, ::2])  # nearest: stays 0/1
    assert (cam.cx, cam.cy) == (2.25, 1.25)
    assert (cam.FoVx, cam.FoVy) == (info.FovX, info.FovY)


@pytest.mark.parametrize("resolution", [1, 2, 70])   # 70: a target width (a resize by 70/96)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_compact_pixels_give_the_same_camera_as_their_float_values(resolution, dtype):
    """Readers keep the file's uint8 / uint16; the camera equals the one built from value / max."""
    rng, top = np.random.default_rng(1), np.iinfo(dtype).max
    compact = make_info(width=96, height=12)
    compact.image = rng.integers(0, top + 1, (12, 96, 3), dtype=dtype)
    compact.mask = (compact.mask * top).astype(dtype)
    compact.depth = rng.integers(0, top + 1, (12, 96), dtype=dtype)
    as_float = make_info(width=96, height=12)
    as_float.image, as_float.mask, as_float.depth = (a.astype(np.float32) / top for a in
                                                     (compact.image, compact.mask, compact.depth))
    (cam,), (ref,) = cameras_from_infos([compact], resolution, "cpu"), cameras_from_infos([as_float], resolution, "cpu")
    for name in ("original_image", "mask", "depth_prior"):
        assert getattr(cam, name).dtype == torch.float32 and torch.equal(getattr(cam, name), getattr(ref, name))


@pytest.mark.parametrize("resolution, expected", [(1, (8, 6)), (2, (4, 3)), (4, (2, 2)), (8, (1, 1)),
                                                  (-1, (8, 6)), (4000, (4000, 3000)), (64, (64, 48))])
def test_target_sizes(resolution, expected):
    assert target_size(8, 6, resolution) == expected


@pytest.mark.parametrize("resolution", [3, 5, 63])
def test_a_target_width_below_64_px_is_an_error(resolution):
    from scene.readers.dataset_types import DatasetError
    with pytest.raises(DatasetError, match=f"-r/--resolution {resolution} would train at {resolution} px wide"):
        target_size(640, 480, resolution)


def test_wide_images_shrink_to_1600_with_one_notice(capsys):
    info = make_info(width=2000, height=10, mask=False, depth=False, cx=1000.0, cy=5.0)
    cams = cameras_from_infos([info, info], -1, "cpu")
    assert all((c.image_width, c.image_height) == (1600, 8) for c in cams)
    assert cams[0].cx == pytest.approx(800.0) and cams[0].cy == pytest.approx(4.0)
    cameras_from_infos([info], -1, "cpu")
    assert capsys.readouterr().out.count("wider than 1600 px") == 1  # printed once per process
    (kept,) = cameras_from_infos([make_info(width=1600, height=4)], -1, "cpu")
    assert kept.image_width == 1600


def test_reader_downscale_is_not_applied_twice():
    info = make_info(downscale=2)  # e.g. Nerfies rgb/2x read for -r 2
    assert cameras_from_infos([info], 2, "cpu")[0].image_width == 8
    assert cameras_from_infos([info], 4, "cpu")[0].image_width == 4


@pytest.mark.parametrize("bad", [0, -2])
def test_invalid_resolution_is_a_clear_error(bad):
    with pytest.raises(DatasetError, match=f"-r/--resolution {bad} is not valid"):
        cameras_from_infos([make_info()], bad, "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback on machines without CUDA")
def test_cuda_data_device_falls_back_to_cpu(capsys):
    (cam,) = cameras_from_infos([make_info()], 1, "cuda")
    assert cam.original_image.device.type == "cpu"
    assert "CUDA is not available" in capsys.readouterr().out


def test_camera_to_json_gives_centre_and_camera_to_world_rotation():
    info = make_info()
    entry = camera_to_json(7, info)
    assert (entry["id"], entry["img_name"], entry["width"], entry["height"]) == (7, "0", 8, 6)
    np.testing.assert_allclose(entry["position"], -info.R @ info.T)
    np.testing.assert_allclose(entry["rotation"], info.R)  # Inria's R is already camera-to-world
    assert entry["fx"] == pytest.approx(7.0) and entry["fy"] == pytest.approx(6.0)


@pytest.mark.parametrize("resolution", [1, 2])
def test_colmap_points_project_to_their_pixels_through_the_whole_chain(tmp_path, resolution):
    """Reader + camera loading + projection matrices agree with the pinhole model u = fx x / z + cx,
    for an off-centre principal point, at full and half resolution (pixel index = u - 0.5)."""
    width, height, (fx, fy, cx, cy) = 8, 6, (7.0, 5.0, 3.1, 3.7)
    rng = np.random.default_rng(2)
    R_w2c, t = qvec2rotmat(rng.normal(size=4)), np.array([0.2, -0.1, 0.3])
    points = rng.uniform(-1, 1, size=(5, 3)) + R_w2c.T @ (np.array([0.0, 0.0, 4.0]) - t)  # ~4 m in front
    os.makedirs(tmp_path / "images")
    assert cv2.imwrite(str(tmp_path / "images" / "0.png"), np.zeros((height, width, 3), np.uint8))
    write_model(str(tmp_path / "sparse" / "0"), {1: ColmapCamera(1, "PINHOLE", width, height, np.array([fx, fy, cx, cy]))},
                {1: ColmapImage(1, rotmat2qvec(R_w2c), t, 1, "0.png", np.zeros((0, 2)), np.zeros(0, np.int64))},
                {i: ColmapPoint3D(i, p, np.zeros(3, np.uint8), 0.0, np.zeros(0, np.int32), np.zeros(0, np.int32))
                 for i, p in enumerate(points)}, ext=".txt")
    parser = ArgumentParser()
    args = ModelParams(parser).extract(parser.parse_args(["-s", str(tmp_path)]))
    (cam,) = cameras_from_infos(read_scene(args).train_cameras, resolution, "cpu")

    in_view = points @ R_w2c.T + t
    u = fx * in_view[:, 0] / in_view[:, 2] + cx
    v = fy * in_view[:, 1] / in_view[:, 2] + cy
    ndc = geom_transform_points(torch.tensor(points, dtype=torch.float32), cam.full_proj_transform)
    np.testing.assert_allclose(ndc_to_pixel(ndc[:, 0], cam.image_width).numpy(), u / resolution - 0.5, atol=1e-4)
    np.testing.assert_allclose(ndc_to_pixel(ndc[:, 1], cam.image_height).numpy(), v / resolution - 0.5, atol=1e-4)
