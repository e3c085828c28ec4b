"""Helpers of the CUDA-vs-reference parity tests: random scenes, running both backends with shared
cotangents, and per-output comparisons.

The reference (gaussian_renderer/reference.py) runs in float64 on the GPU as ground truth; the CUDA
rasterizer in float32 on the same values. Scenes are seeded, so a pass is reproducible.
"""
import math

import torch

from rasterizer_cases import camera, make_case  # tests/gaussian_renderer, on pytest.ini's pythonpath

INPUT_NAMES = ("means3D", "means2D", "opacities", "shs", "colors_precomp", "mask_feature", "scales",
               "rotations", "cov3D_precomp")
OUTPUT_NAMES = ("color", "depth", "feature_map", "radii", "alpha")


def random_scene(seed: int, n: int, width: int, height: int, sh_degree: int = 0, precomp_colors=False,
                 precomp_cov=False, channels: int = 3, rotated_camera=False, scale_modifier=1.0,
                 sh_coeffs=None, depth_step=None, device="cuda", dtype=torch.float32):
    """(settings kwargs, inputs) with every kind of Gaussian the rules single out: a crowd of
    overlapping ones in view, some behind the camera or inside the near plane, some off-screen or
    past the NDC bound, tiny and huge ones, nearly transparent and nearly opaque ones.
    sh_coeffs: SH coefficients stored per Gaussian (default (sh_degree + 1)^2; training stores 16
    while the active degree grows). depth_step: view depths rounded to multiples of it, so that
    many Gaussians tie in depth (an unrotated camera keeps the ties exact)."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)
    randn = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    rotation, translation = None, None
    if rotated_camera:
        a = 0.4
        rotation = [[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]]
        translation = [0.2, -0.1, 0.3]
    cam = camera(width, height, fovx_deg=60.0, rotation=rotation, translation=translation)
    # view-space points, mapped to world space through the inverse view transform below
    z = 1.5 + 5.0 * rand(n)
    if depth_step is not None:
        z = torch.round(z / depth_step) * depth_step
    tx, ty = math.tan(math.radians(30.0)), cam["tanfovy"]
    x = (rand(n) - 0.5) * 2.4 * tx * z
    y = (rand(n) - 0.5) * 2.4 * ty * z
    kind = torch.arange(n) % 10
    z = torch.where(kind == 0, -1.0 - rand(n), z)            # behind the camera
    z = torch.where(kind == 1, 0.05 + 0.1 * rand(n), z)      # between camera and near plane
    x = torch.where(kind == 2, x + 3.0 * z * tx * torch.sign(randn(n)), x)  # past the NDC bound
    view_pts = torch.stack([x, y, z], 1)
    scales = torch.exp(-3.5 + 0.7 * randn(n, 3))
    scales = torch.where((kind == 3)[:, None], torch.full_like(scales, 1e-4), scales)  # tiny
    scales = torch.where((kind == 4)[:, None], 0.5 + rand(n, 3), scales)              # huge
    opac = torch.sigmoid(randn(n))
    opac = torch.where(kind == 5, torch.full_like(opac, 0.003), opac)   # below 1/255 everywhere
    opac = torch.where(kind == 6, torch.full_like(opac, 0.999), opac)   # saturates alpha
    rot = randn(n, 4)
    view = cam["viewmatrix"].to(torch.float64)
    world = (torch.cat([view_pts, torch.ones(n, 1, dtype=torch.float64)], 1) @ torch.linalg.inv(view))[:, :3]

    t = lambda v: None if v is None else v.to(device, dtype).requires_grad_(True)
    inputs = dict(means3D=t(world), means2D=t(torch.zeros(n, 3, dtype=torch.float64)),
                  opacities=t(opac[:, None]), mask_feature=t(rand(n, channels)) if channels else None)
    if precomp_colors:
        inputs["colors_precomp"] = t(rand(n, 3))
    else:
        inputs["shs"] = t(0.3 * randn(n, sh_coeffs or (sh_degree + 1) ** 2, 3))
    if precomp_cov:
        R = _rotations(rot)
        M = R * (scales * scale_modifier)[:, None, :]
        cov = M @ M.transpose(1, 2)
        i, j = torch.triu_indices(3, 3)
        inputs["cov3D_precomp"] = t(cov[:, i, j])
    else:
        inputs["scales"], inputs["rotations"] = t(scales), t(rot)
    settings = dict({k: (v.to(device, dtype) if torch.is_tensor(v) else v) for k, v in cam.items()},
                    bg=t(torch.tensor([0.3, 0.5, 0.7], dtype=torch.float64)), scale_modifier=scale_modifier,
                    sh_degree=sh_degree, prefiltered=False, debug=False)
    return settings, inputs


def _rotations(q):
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.unbind(1)
    return torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], 1).reshape(-1, 3, 3)


def case_pair(name: str):
    """A named reference case as (float32 CUDA, float64 CUDA) copies with identical values."""
    return make_case(name, device="cuda", dtype=torch.float32), make_case(name, device="cuda", dtype=torch.float64)


def recast(settings: dict, inputs: dict, dtype):
    """Fresh leaves of the same scene in another dtype."""
    leaf = lambda v: v.detach().to(dtype).requires_grad_(v.requires_grad) if torch.is_tensor(v) and v.is_floating_point() else v
    return {k: leaf(v) for k, v in settings.items()}, {k: leaf(v) for k, v in inputs.items()}


def run_backend(module, settings: dict, inputs: dict, cotangent_seed: int = 1):
    """Outputs and gradients of sum(output * fixed random cotangent) over the 4 image outputs."""
    s = module.GaussianRasterizationSettings(**settings)
    outputs = module.GaussianRasterizer(s)(**inputs)
    color, depth, feature_map, radii, alpha = outputs
    g = torch.Generator(device="cpu").manual_seed(cotangent_seed)
    loss = 0.0
    for image in (color, depth, feature_map, alpha):
        cot = torch.randn(image.shape, generator=g, dtype=torch.float64).to(image.device, image.dtype)
        loss = loss + (image * cot).sum()
    loss.backward()
    grads = {k: v.grad for k, v in inputs.items() if torch.is_tensor(v) and v.requires_grad}
    if torch.is_tensor(settings.get("bg")) and settings["bg"].requires_grad:
        grads["bg"] = settings["bg"].grad
    return dict(zip(OUTPUT_NAMES, outputs)), grads


# Absolute tolerance per output, relative to the output's scale (float32 vs float64 rounding).
OUTPUT_TOL = {"color": 1e-4, "depth": 1e-4, "feature_map": 1e-4, "alpha": 1e-4}


def assert_outputs_match(out, ref, label=""):
    assert torch.equal(out["radii"].long().cpu(), ref["radii"].long().cpu()), f"{label} radii differ"
    for name, tol in OUTPUT_TOL.items():
        a, b = out[name].double(), ref[name].double()
        assert a.shape == b.shape, f"{label} {name}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
        if b.numel() == 0:
            continue
        scale = max(1.0, b.abs().max().item())
        err = (a - b).abs().max().item()
        assert err <= tol * scale, f"{label} {name}: max |cuda - reference| = {err:.3g} > {tol * scale:.3g}"


def assert_grads_match(grads, ref_grads, label="", rel=2e-3):
    """Every gradient: relative L2 error and max error against the gradient's own scale."""
    assert set(grads) == set(ref_grads), f"{label}: gradients for {sorted(grads)} vs {sorted(ref_grads)}"
    for name, b in ref_grads.items():
        a = grads[name]
        assert a is not None and b is not None, f"{label} {name}: missing gradient"
        a, b = a.double(), b.double()
        assert torch.isfinite(a).all(), f"{label} {name}: non-finite CUDA gradient"
        norm = b.norm().item()
        if norm == 0.0:
            assert a.abs().max().item() <= 1e-6, f"{label} {name}: reference gradient is zero, CUDA's is not"
            continue
        rel_l2 = (a - b).norm().item() / norm
        rel_max = (a - b).abs().max().item() / b.abs().max().item()
        assert rel_l2 <= rel and rel_max <= 10 * rel, \
            f"{label} {name}: relative L2 error {rel_l2:.3g}, max error {rel_max:.3g} (tolerance {rel})"


def layered_scene(layers: int, seed: int, **scene):
    """random_scene as a layered draw of `layers` images: layer 0 the plain image, layer 1 a soft
    hands layer (weights 0, 1 or in between), layer 2 its complement, further layers random; one
    background per layer (a leaf, so its gradient is checked too)."""
    settings, inputs = random_scene(seed=seed, **scene)
    n = inputs["means3D"].shape[0]
    g = torch.Generator().manual_seed(seed + 1000)
    gate = torch.rand(n, generator=g, dtype=torch.float64)
    gate = torch.where(gate < 0.4, 0.0, torch.where(gate > 0.7, 1.0, gate))
    rows = [torch.ones(n, dtype=torch.float64), gate, 1.0 - gate]
    rows += [torch.rand(n, generator=g, dtype=torch.float64) for _ in range(layers - 3)]
    device, dtype = inputs["means3D"].device, inputs["means3D"].dtype
    inputs["layer_weights"] = torch.stack(rows[:layers]).to(device, dtype)
    settings["bg"] = torch.rand(layers, 3, generator=g, dtype=torch.float64).to(device, dtype).requires_grad_(True)
    return settings, inputs
