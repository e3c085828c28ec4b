"""SH evaluation against SciPy's complex spherical harmonics (an independent implementation)."""
import numpy as np
import pytest
import torch
from scipy import special

from utils.sh_utils import C0, RGB2SH, SH2RGB, eval_sh, sh_basis, sh_to_color


def _complex_sh(l, m, polar, azimuth):
    """SciPy's Y_l^m (with the Condon-Shortley phase)."""
    if hasattr(special, "sph_harm_y"):
        return special.sph_harm_y(l, m, polar, azimuth)
    return special.sph_harm(m, l, azimuth, polar)  # SciPy < 1.15 argument order


def _real_sh_3dgs(l, m, dirs):
    """The 3DGS real basis: sqrt2 Im Y_l^|m| (m < 0), Y_l^0, sqrt2 Re Y_l^m (m > 0), i.e. the
    orthonormal real SH keeping the Condon-Shortley sign (-1)^m."""
    x, y, z = dirs.T
    polar, azimuth = np.arccos(np.clip(z, -1, 1)), np.arctan2(y, x)
    Y = _complex_sh(l, abs(m), polar, azimuth)
    if m < 0:
        return np.sqrt(2) * Y.imag
    if m > 0:
        return np.sqrt(2) * Y.real
    return Y.real


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_basis_matches_scipy(degree):
    dirs = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=1)
    ours = sh_basis(degree, dirs).numpy()
    expected = np.stack([_real_sh_3dgs(l, m, dirs.numpy())
                         for l in range(degree + 1) for m in range(-l, l + 1)], axis=1)
    assert ours.shape == (50, (degree + 1) ** 2)
    np.testing.assert_allclose(ours, expected, atol=1e-12)


def test_known_values_along_axes():
    # Along +x only the m = +1 (degree 1) term is non-zero: -C1 * x, C1 = sqrt(3 / 4pi).
    basis = sh_basis(1, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))[0]
    c1 = np.sqrt(3 / (4 * np.pi))
    np.testing.assert_allclose(basis.numpy(), [0.5 / np.sqrt(np.pi), 0.0, 0.0, -c1], atol=1e-15)


def test_eval_sh_uses_only_the_active_degree():
    dirs = torch.nn.functional.normalize(torch.randn(7, 3, dtype=torch.float64), dim=1)
    sh = torch.randn(7, 3, 16, dtype=torch.float64)
    low = eval_sh(1, sh, dirs)
    truncated = sh.clone()
    truncated[..., 4:] = 0.0
    assert torch.allclose(low, eval_sh(3, truncated, dirs))
    assert not torch.allclose(low, eval_sh(3, sh, dirs))


def test_colour_offset_clamp_and_conversions():
    dirs = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    shs = torch.zeros(1, 1, 3, dtype=torch.float64)
    shs[0, 0] = torch.tensor([1.0, 0.0, -10.0])
    colour = sh_to_color(0, shs, dirs)[0]
    np.testing.assert_allclose(colour.numpy(), [C0 + 0.5, 0.5, 0.0])
    rgb = torch.rand(5, 3, dtype=torch.float64)
    assert torch.allclose(SH2RGB(RGB2SH(rgb)), rgb)


def test_too_few_coefficients_is_a_clear_error():
    with pytest.raises(ValueError, match="needs 16 coefficients"):
        eval_sh(3, torch.zeros(2, 3, 9), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="SH degree"):
        sh_basis(4, torch.zeros(2, 3))
