"""The camera conventions every module relies on (docs/ARCHITECTURE.md)."""
import math

import numpy as np
import pytest
import torch

from scene.cameras import Camera
from utils.graphics_utils import (fov2focal, focal2fov, geom_transform_points, getWorld2View2, ndc_to_pixel)


def rot_y(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def make_camera(W=40, H=30, fx=35.0, fy=33.0, cx=None, cy=None, R_w2c=np.eye(3), t=np.zeros(3)):
    image = torch.zeros(3, H, W)
    return Camera(0, R_w2c.T, t, focal2fov(fx, W), focal2fov(fy, H), image, "x", 0.0, cx=cx, cy=cy)


def project_pinhole(p_world, R_w2c, t, fx, fy, cx, cy):
    """Independent COLMAP pinhole projection to pixel indices (pixel x centre at u = x + 0.5)."""
    pc = R_w2c @ p_world + t
    u = fx * pc[0] / pc[2] + cx
    v = fy * pc[1] / pc[2] + cy
    return u - 0.5, v - 0.5, pc[2]


@pytest.mark.parametrize("cx,cy", [(None, None), (18.3, 16.9)])
def test_projection_matches_pinhole_model(cx, cy):
    W, H, fx, fy = 40, 30, 35.0, 33.0
    R_w2c, t = rot_y(0.3), np.array([0.2, -0.1, 1.5])
    cam = make_camera(W, H, fx, fy, cx, cy, R_w2c, t)
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, size=(20, 3))
    ndc = geom_transform_points(torch.tensor(pts, dtype=torch.float32), cam.full_proj_transform)
    px, py = ndc_to_pixel(ndc[:, 0], W), ndc_to_pixel(ndc[:, 1], H)
    view = torch.cat([torch.tensor(pts, dtype=torch.float32), torch.ones(20, 1)], 1) @ cam.world_view_transform
    for i, p in enumerate(pts):
        u, v, z = project_pinhole(p, R_w2c, t, fx, fy, W / 2 if cx is None else cx, H / 2 if cy is None else cy)
        assert px[i].item() == pytest.approx(u, abs=1e-3)
        assert py[i].item() == pytest.approx(v, abs=1e-3)
        assert view[i, 2].item() == pytest.approx(z, abs=1e-5)


def test_pixel_centre_ndc_convention():
    W = 16
    x = torch.arange(W, dtype=torch.float32)
    assert torch.allclose(ndc_to_pixel((2 * x + 1) / W - 1, W), x, atol=1e-6)


def test_camera_center_and_focal_roundtrip():
    R_w2c, t = rot_y(-0.7), np.array([1.0, 2.0, 3.0])
    cam = make_camera(R_w2c=R_w2c, t=t)
    expected = -R_w2c.T @ t
    assert np.allclose(cam.camera_center.numpy(), expected, atol=1e-5)
    assert fov2focal(focal2fov(123.4, 640), 640) == pytest.approx(123.4)


def test_world2view_normalization_moves_center():
    R_w2c, t = rot_y(0.2), np.array([0.5, 0.0, 2.0])
    Rt = getWorld2View2(R_w2c.T, t, translate=np.array([1.0, 0.0, 0.0]), scale=2.0)
    center = np.linalg.inv(Rt)[:3, 3]
    assert np.allclose(center, ((-R_w2c.T @ t) + [1.0, 0.0, 0.0]) * 2.0, atol=1e-5)
