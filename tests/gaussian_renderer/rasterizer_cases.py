"""Named rasterizer test scenes, shared by the reference tests and the CUDA backend's tests.

    kwargs, inputs = make_case("two_overlapping", device="cpu", dtype=torch.float64)
    settings = GaussianRasterizationSettings(**kwargs)
    outputs = GaussianRasterizer(settings)(**inputs)

Every case is deterministic (its own generator). The camera sits at the origin looking down +z
(optionally a rotated one), so a Gaussian at (x, y, z) projects to pixel
(fx·x/z + (W-1)/2, fy·y/z + (H-1)/2). ``inputs`` tensors are fresh leaves with requires_grad
set on every float input (means2D included), ready for gradcheck / backward.
"""
import math

import torch

from utils.graphics_utils import getProjectionMatrix

CASE_NAMES = ("single", "two_overlapping", "random_small", "behind_camera", "offscreen", "border",
              "degenerate_scale", "saturated", "sh_degree3", "cov3d_precomp", "multi_tile",
              "rotated_camera", "anisotropic")

# Cases small enough for float64 gradcheck (few Gaussians, few pixels).
GRADCHECK_CASES = ("single", "two_overlapping", "random_small", "behind_camera",
                   "degenerate_scale", "sh_degree3", "cov3d_precomp", "rotated_camera", "anisotropic")


def camera(width, height, fovx_deg=60.0, fovy_deg=None, rotation=None, translation=None,
           device="cpu", dtype=torch.float32) -> dict:
    """Settings kwargs (without bg etc.) for a pinhole camera. rotation: w2c [3,3] (column form)."""
    fovx = math.radians(fovx_deg)
    fovy = math.radians(fovy_deg) if fovy_deg else 2 * math.atan(math.tan(fovx / 2) * height / width)
    w2c = torch.eye(4, dtype=torch.float64)
    if rotation is not None:
        w2c[:3, :3] = torch.as_tensor(rotation, dtype=torch.float64)
    if translation is not None:
        w2c[:3, 3] = torch.as_tensor(translation, dtype=torch.float64)
    view = w2c.T
    proj = getProjectionMatrix(0.01, 100.0, fovx, fovy).to(torch.float64).T
    campos = torch.linalg.inv(view)[3, :3]
    return dict(image_height=height, image_width=width, tanfovx=math.tan(fovx / 2),
                tanfovy=math.tan(fovy / 2), viewmatrix=view.to(device, dtype),
                projmatrix=(view @ proj).to(device, dtype), campos=campos.to(device, dtype))


def _settings(cam: dict, bg=(0.2, 0.4, 0.6), sh_degree=0, scale_modifier=1.0, device="cpu", dtype=torch.float32):
    return dict(cam, bg=torch.tensor(bg, device=device, dtype=dtype), scale_modifier=scale_modifier,
                sh_degree=sh_degree, prefiltered=False, debug=False)


def _inputs(means, scales, opacities, colors=None, shs=None, masks=None, rotations=None, cov3D=None,
            device="cpu", dtype=torch.float32) -> dict:
    t = lambda x: None if x is None else torch.as_tensor(x, dtype=torch.float64).to(device, dtype).requires_grad_(True)
    N = len(means)
    if rotations is None and cov3D is None:
        rotations = [[1.0, 0.0, 0.0, 0.0]] * N
    if masks is None:
        masks = torch.linspace(0.1, 0.9, 2 * N, dtype=torch.float64).reshape(N, 2)
    return dict(means3D=t(means), means2D=t(torch.zeros(N, 3, dtype=torch.float64)),
                opacities=t(torch.as_tensor(opacities, dtype=torch.float64).reshape(N, 1)),
                shs=t(shs), colors_precomp=t(colors), mask_feature=t(masks),
                scales=None if cov3D is not None else t(scales),
                rotations=None if cov3D is not None else t(rotations), cov3D_precomp=t(cov3D))


def _random_gaussians(gen, n, width_xy, z_range, scale_range):
    means = torch.cat([(torch.rand(n, 2, generator=gen, dtype=torch.float64) - 0.5) * width_xy,
                       z_range[0] + torch.rand(n, 1, generator=gen, dtype=torch.float64) * (z_range[1] - z_range[0])], 1)
    scales = scale_range[0] + torch.rand(n, 3, generator=gen, dtype=torch.float64) * (scale_range[1] - scale_range[0])
    rotations = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    opacities = 0.2 + 0.6 * torch.rand(n, generator=gen, dtype=torch.float64)
    colors = torch.rand(n, 3, generator=gen, dtype=torch.float64)
    masks = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    return means, scales, rotations, opacities, colors, masks


def make_case(name: str, device="cpu", dtype=torch.float32):
    """-> (settings kwargs, rasterizer inputs) for one of CASE_NAMES."""
    gen = torch.Generator().manual_seed(sum(map(ord, name)))
    kw = dict(device=device, dtype=dtype)
    if name == "single":
        cam = camera(13, 11, **kw)
        return _settings(cam, **kw), _inputs([[0.05, -0.03, 3.0]], [[0.12, 0.08, 0.1]], [0.7],
                                             colors=[[0.9, 0.3, 0.1]], **kw)
    if name == "two_overlapping":  # the far one listed first: order must come from depth
        cam = camera(12, 10, **kw)
        return _settings(cam, **kw), _inputs([[0.02, 0.0, 5.0], [0.0, 0.02, 2.5]],
                                             [[0.3, 0.3, 0.3], [0.08, 0.1, 0.08]], [0.6, 0.5],
                                             colors=[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], **kw)
    if name in ("random_small", "rotated_camera", "anisotropic"):
        means, scales, rot, opac, colors, masks = _random_gaussians(gen, 6, 1.6, (2.0, 4.0), (0.05, 0.2))
        cam = camera(14, 9, **kw)
        if name == "rotated_camera":
            angle = 0.3
            R = [[math.cos(angle), 0.0, math.sin(angle)], [0.0, 1.0, 0.0], [-math.sin(angle), 0.0, math.cos(angle)]]
            cam = camera(14, 9, rotation=R, translation=[0.1, -0.05, 0.2], **kw)
            means = means @ torch.tensor(R, dtype=torch.float64)  # keep them in view
        if name == "anisotropic":
            scales[:, 0] *= 4.0
            scales[:, 2] *= 0.2
        return _settings(cam, **kw), _inputs(means, scales, opac, colors=colors, masks=masks, rotations=rot, **kw)
    if name == "behind_camera":  # one in view, one behind, one between camera and near plane
        cam = camera(10, 8, **kw)
        return _settings(cam, **kw), _inputs([[0.0, 0.0, 3.0], [0.0, 0.0, -2.0], [0.0, 0.0, 0.1]],
                                             [[0.2] * 3] * 3, [0.8, 0.8, 0.8],
                                             colors=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], **kw)
    if name == "offscreen":
        # in view; far outside; centre just below the image (NDC y = 1.2 < 1.3) but reaching into
        # it; centre beyond the NDC bound (x = -1.4) though large enough to cover the image.
        cam = camera(20, 18, **kw)
        z = 3.0
        y_in = 1.2 * z * cam["tanfovy"]
        x_out = -1.4 * z * cam["tanfovx"]
        return _settings(cam, **kw), _inputs([[0.0, 0.0, z], [30.0, 0.0, z], [0.0, y_in, z], [x_out, 0.0, z]],
                                             [[0.1] * 3, [0.1] * 3, [0.3] * 3, [3.0] * 3], [0.8] * 4,
                                             colors=[[1.0, 1.0, 1.0]] * 4, **kw)
    if name == "border":
        # a large Gaussian whose centre crosses the right border: NDC x = 0.9 (in), 1.25, 1.35
        # and 1.6 (out, yet half its footprint is in the frame), at distinct depths
        cam = camera(24, 16, **kw)
        means = [[ndc_x * z * cam["tanfovx"], 0.0, z] for ndc_x, z in ((0.9, 3.0), (1.25, 3.1), (1.35, 3.2), (1.6, 3.3))]
        # anisotropic and turned, so that every gradient (rotations too) is non-zero and compared
        rotation = [0.9, 0.2, 0.3, 0.1]
        return _settings(cam, **kw), _inputs(means, [[0.7, 0.45, 0.55]] * 4, [0.7] * 4,
                                             colors=[[1.0, 0.5, 0.2]] * 4, rotations=[rotation] * 4, **kw)
    if name == "degenerate_scale":  # a flat disc and a point (zero scale): the 0.3 px² dilation remains
        cam = camera(12, 12, **kw)
        return _settings(cam, **kw), _inputs([[-0.3, 0.0, 3.0], [0.3, 0.1, 3.2]],  # distinct depths: ties swap under FD
                                             [[0.2, 0.15, 0.0], [0.0, 0.0, 0.0]], [0.9, 0.9],
                                             colors=[[0.3, 0.6, 0.9], [0.9, 0.6, 0.3]], **kw)
    if name == "saturated":  # a stack of nearly opaque Gaussians: pixels stop early
        cam = camera(16, 16, **kw)
        n = 8
        means = [[0.0, 0.0, 2.0 + 0.5 * i] for i in range(n)]
        colors = torch.rand(n, 3, generator=gen, dtype=torch.float64)
        return _settings(cam, **kw), _inputs(means, [[1.0] * 3] * n, [0.985] * n, colors=colors, **kw)
    if name == "sh_degree3":
        means, scales, rot, opac, _, masks = _random_gaussians(gen, 4, 1.2, (2.0, 3.0), (0.1, 0.2))
        shs = 0.3 * torch.randn(4, 16, 3, generator=gen, dtype=torch.float64)
        cam = camera(10, 8, **kw)
        return _settings(cam, sh_degree=3, **kw), _inputs(means, scales, opac, shs=shs, masks=masks, rotations=rot, **kw)
    if name == "cov3d_precomp":
        means, _, _, opac, colors, masks = _random_gaussians(gen, 4, 1.2, (2.0, 3.0), (0.1, 0.2))
        A = 0.15 * torch.randn(4, 3, 3, generator=gen, dtype=torch.float64)
        cov = A @ A.transpose(1, 2) + 0.005 * torch.eye(3, dtype=torch.float64)
        i, j = torch.triu_indices(3, 3)
        cam = camera(10, 9, **kw)
        return _settings(cam, **kw), _inputs(means, None, opac, colors=colors, masks=masks, cov3D=cov[:, i, j], **kw)
    if name == "multi_tile":  # larger, non-square, not a multiple of 16, several tiles per Gaussian
        means, scales, rot, opac, colors, masks = _random_gaussians(gen, 60, 3.0, (2.0, 6.0), (0.05, 0.4))
        cam = camera(50, 37, **kw)
        return _settings(cam, **kw), _inputs(means, scales, opac, colors=colors, masks=masks, rotations=rot, **kw)
    raise KeyError(f"unknown case {name!r}; choose one of {CASE_NAMES}")
