"""Rigid motions: the exponential map from twists (se(3)) to 4x4 transforms (SE(3)).

Notation of Lynch & Park, *Modern Robotics* (ch. 3): a twist (w, v) has the matrix
``[[skew(w), v], [0, 0]]`` and ``exp`` of it is ``[[R, p], [0, 1]]`` with, for ``θ = |w|``,
``R = I + A skew(w) + B skew(w)²`` (Rodrigues) and ``p = (I + B skew(w) + C skew(w)²) v``, where
``A = sin θ / θ``, ``B = (1 − cos θ) / θ²``, ``C = (θ − sin θ) / θ³``.
Near θ = 0 the coefficients use their Taylor series so values and gradients stay finite.
All functions are batched over a leading dimension N.
"""
import torch

# Below this angle the closed forms lose digits to cancellation in float32 (θ − sin θ ~ θ³/6),
# while the Taylor series to θ⁴ is exact to ~1e-11 there.
_SMALL_ANGLE = 0.1


def skew(w: torch.Tensor) -> torch.Tensor:
    """Cross-product matrices [N, 3, 3] of vectors w [N, 3]: ``skew(w) @ u == w × u``."""
    x, y, z = w.unbind(dim=-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y,
                        z, zero, -x,
                        -y, x, zero], dim=-1).reshape(*w.shape[:-1], 3, 3)


def _rotation_coefficients(theta_sq: torch.Tensor):
    """A, B, C of the module docstring from squared angles theta_sq [N].

    Works on θ² so that neither values nor gradients involve sqrt(0).
    """
    small = theta_sq < _SMALL_ANGLE ** 2
    # Closed forms are evaluated on a safe angle so the unused `where` branch has no NaN gradient.
    safe = torch.sqrt(torch.where(small, torch.ones_like(theta_sq), theta_sq))
    t2, t4 = theta_sq, theta_sq * theta_sq
    a = torch.where(small, 1 - t2 / 6 + t4 / 120, torch.sin(safe) / safe)
    b = torch.where(small, 0.5 - t2 / 24 + t4 / 720, (1 - torch.cos(safe)) / safe ** 2)
    c = torch.where(small, 1.0 / 6 - t2 / 120 + t4 / 5040, (safe - torch.sin(safe)) / safe ** 3)
    return a, b, c


def exp_twist(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Transforms [N, 4, 4] = exp of the twists (w [N, 3], v [N, 3]); w need not be a unit axis.

    This is the Deformable-3DGS 6-DoF warp: the network predicts (w, v) and the screw has
    angle |w| about the axis w / |w|.
    """
    theta_sq = (w * w).sum(dim=-1)
    a, b, c = _rotation_coefficients(theta_sq)
    # skew(w)² = w wᵀ − θ² I and skew(w) u = w × u: no batched 3x3 matrix products needed.
    eye = torch.eye(3, dtype=w.dtype, device=w.device)
    W2 = w.unsqueeze(-1) * w.unsqueeze(-2) - theta_sq[:, None, None] * eye
    R = eye + a[:, None, None] * skew(w) + b[:, None, None] * W2
    w_cross_v = torch.linalg.cross(w, v, dim=-1)
    p = v + b[:, None] * w_cross_v + c[:, None] * torch.linalg.cross(w, w_cross_v, dim=-1)
    return rotation_translation_to_transform(R, p)


def rotation_translation_to_transform(R: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Homogeneous transforms [N, 4, 4] from rotations R [N, 3, 3] and translations p [N, 3]."""
    top = torch.cat([R, p.unsqueeze(-1)], dim=-1)
    bottom = torch.zeros_like(top[:, :1, :])
    bottom[:, 0, 3] = 1.0
    return torch.cat([top, bottom], dim=1)


def transform_points(transforms: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Points [N, 3] moved by their own transform [N, 4, 4] (column-vector convention: R p + t)."""
    R, t = transforms[:, :3, :3], transforms[:, :3, 3]
    return (R @ points.unsqueeze(-1)).squeeze(-1) + t
