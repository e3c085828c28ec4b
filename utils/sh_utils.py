"""Real spherical harmonics up to degree 3, in the sign convention of the 3DGS codebases.

The basis is the orthonormal real SH *with* the Condon-Shortley phase, i.e. the terms with odd
order m carry a minus sign (``-C1 * y``, ``+C1 * z``, ``-C1 * x`` for degree 1). Coefficients are
ordered by degree l, then order m = -l..l. Colours are ``eval_sh(...) + 0.5``, so an SH colour with
only the DC term is ``C0 * dc + 0.5`` (``RGB2SH`` / ``SH2RGB`` convert between the two).
"""
import torch

C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005,
      -1.0925484305920792, 0.5462742152960396)
C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
      -0.4570457994644658, 1.445305721320277, -0.5900435899266435)

MAX_SH_DEGREE = 3


def num_sh_coefficients(degree: int) -> int:
    return (degree + 1) ** 2


def sh_basis(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """The (degree+1)^2 basis functions [..., (degree+1)^2] at unit directions dirs [..., 3]."""
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"SH degree must be in 0..{MAX_SH_DEGREE}, got {degree}")
    x, y, z = dirs.unbind(-1)
    terms = [torch.full_like(x, C0)]
    if degree >= 1:
        terms += [-C1 * y, C1 * z, -C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        terms += [C2[0] * x * y, C2[1] * y * z, C2[2] * (2 * zz - xx - yy),
                  C2[3] * x * z, C2[4] * (xx - yy)]
    if degree >= 3:
        terms += [C3[0] * y * (3 * xx - yy), C3[1] * x * y * z, C3[2] * y * (4 * zz - xx - yy),
                  C3[3] * z * (2 * zz - 3 * xx - 3 * yy), C3[4] * x * (4 * zz - xx - yy),
                  C3[5] * z * (xx - yy), C3[6] * x * (xx - 3 * yy)]
    return torch.stack(terms, dim=-1)


def eval_sh(degree: int, sh: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """SH value (without the +0.5 offset) as in the Inria code: sh [..., C, M] with
    M >= (degree+1)^2 coefficients (extra ones ignored), unit dirs [...,3] -> [..., C]."""
    needed = num_sh_coefficients(degree)
    if sh.shape[-1] < needed:
        raise ValueError(f"SH degree {degree} needs {needed} coefficients, got sh of shape {tuple(sh.shape)}")
    basis = sh_basis(degree, dirs)  # [..., needed]
    return (sh[..., :needed] * basis.unsqueeze(-2)).sum(-1)


def sh_to_color(degree: int, shs: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Rasterizer colour: shs [N, M, 3] (coefficient-major, as GaussianModel stores them), unit dirs
    [N, 3] -> RGB [N, 3] = max(eval + 0.5, 0)."""
    return (eval_sh(degree, shs.transpose(1, 2), dirs) + 0.5).clamp_min(0.0)


def RGB2SH(rgb):
    return (rgb - 0.5) / C0


def SH2RGB(sh):
    return sh * C0 + 0.5
