"""The SE(3) exponential map against torch.linalg.matrix_exp of the 4x4 twist matrix."""
import math

import pytest
import torch

from utils.rigid_utils import exp_twist, skew, transform_points


def twist_matrix(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """[N, 4, 4] matrices [[skew(w), v], [0, 0]], built entry by entry (independent of skew())."""
    n = w.shape[0]
    m = torch.zeros(n, 4, 4, dtype=w.dtype)
    m[:, 0, 1], m[:, 0, 2] = -w[:, 2], w[:, 1]
    m[:, 1, 0], m[:, 1, 2] = w[:, 2], -w[:, 0]
    m[:, 2, 0], m[:, 2, 1] = -w[:, 1], w[:, 0]
    m[:, :3, 3] = v
    return m


def test_skew_is_the_cross_product():
    w, u = torch.randn(5, 3), torch.randn(5, 3)
    assert torch.allclose((skew(w) @ u.unsqueeze(-1)).squeeze(-1), torch.linalg.cross(w, u), atol=1e-6)


@pytest.mark.parametrize("angle_scale", [0.0, 1e-6, 1e-3, 0.09, 0.11, 1.0, 3.0])
def test_exp_twist_matches_matrix_exponential(angle_scale):
    # Angles on both sides of the Taylor/closed-form switch and up to nearly pi.
    w = torch.nn.functional.normalize(torch.randn(16, 3, dtype=torch.float64), dim=1) * angle_scale
    w = w * torch.linspace(0.5, 1.0, 16, dtype=torch.float64)[:, None]
    v = torch.randn(16, 3, dtype=torch.float64)
    expected = torch.linalg.matrix_exp(twist_matrix(w, v))
    assert torch.allclose(exp_twist(w, v), expected, atol=1e-10)


def test_exp_twist_float32_is_accurate_near_the_switch():
    w = torch.tensor([[0.0, 0.0, 0.1001], [0.05, 0.0, 0.0], [0.3, -0.2, 0.1]])
    v = torch.tensor([[1.0, 2.0, 3.0]] * 3)
    expected = torch.linalg.matrix_exp(twist_matrix(w.double(), v.double()))
    assert torch.allclose(exp_twist(w, v).double(), expected, atol=1e-6)


def test_exp_twist_is_the_screw_motion():
    # Rotation by pi/2 about z through the origin plus 2 units of travel along z: a screw
    # with axis z, pitch h: v = h * w for an axis through the origin.
    theta = torch.tensor([[math.pi / 2]])
    pitch = 2.0 / (math.pi / 2)
    screw = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0, pitch]])
    T = exp_twist(screw[:, :3] * theta, screw[:, 3:] * theta)   # exp([S] θ), Modern Robotics eq. 3.88
    moved = transform_points(T, torch.tensor([[1.0, 0.0, 0.0]]))
    assert torch.allclose(moved, torch.tensor([[0.0, 1.0, 2.0]]), atol=1e-6)


def test_result_is_a_rigid_transform():
    T = exp_twist(torch.randn(32, 3) * 2, torch.randn(32, 3))
    R = T[:, :3, :3]
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(32, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(32), atol=1e-5)
    assert torch.equal(T[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(32, 4))


def test_zero_twist_is_identity_with_finite_gradients():
    w = torch.zeros(4, 3, requires_grad=True)
    v = torch.zeros(4, 3, requires_grad=True)
    T = exp_twist(w, v)
    assert torch.equal(T.detach(), torch.eye(4).expand(4, 4, 4))
    (T * torch.randn(4, 4, 4)).sum().backward()
    assert torch.isfinite(w.grad).all() and torch.isfinite(v.grad).all()


def test_gradient_matches_finite_differences():
    w = (torch.randn(3, 3, dtype=torch.float64) * 0.5).requires_grad_()
    v = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(exp_twist, (w, v))
    small_w = (torch.randn(3, 3, dtype=torch.float64) * 1e-3).requires_grad_()
    assert torch.autograd.gradcheck(exp_twist, (small_w, v))
