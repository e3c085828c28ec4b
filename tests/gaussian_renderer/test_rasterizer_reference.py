"""The pure-PyTorch rasterizer against hand computations, a sequential per-pixel compositor,
the dense autograd version and finite differences."""
import math

import numpy as np
import pytest
import torch

from gaussian_renderer.reference import GaussianRasterizationSettings, GaussianRasterizer, rasterize_gaussians
from rasterizer_cases import CASE_NAMES, GRADCHECK_CASES, camera, make_case
from utils.sh_utils import sh_to_color

F64 = torch.float64
INPUT_NAMES = ("means3D", "means2D", "opacities", "shs", "colors_precomp", "mask_feature",
               "scales", "rotations", "cov3D_precomp")


def run(kw, inputs, dense=False):
    return rasterize_gaussians(GaussianRasterizationSettings(**kw), **inputs, dense=dense)


def subset(inputs, ids):
    return {k: None if v is None else v.detach()[ids] for k, v in inputs.items()}


def view_depths(kw, means3D):
    hom = torch.cat([means3D.detach(), torch.ones_like(means3D[:, :1])], 1)
    return (hom @ kw["viewmatrix"])[:, 2]


def gaussian_colors(kw, inputs):
    if inputs["colors_precomp"] is not None:
        return inputs["colors_precomp"].detach()
    dirs = torch.nn.functional.normalize(inputs["means3D"].detach() - kw["campos"], dim=1)
    return sh_to_color(kw["sh_degree"], inputs["shs"].detach(), dirs)


def sequential_composite(kw, inputs):
    """Independent compositor: per-Gaussian α maps from one-Gaussian renders (α = alpha output,
    since a lone Gaussian never triggers the stop), blended one Gaussian at a time in depth order
    with the rule written as a per-pixel loop would."""
    N = inputs["means3D"].shape[0]
    alphas = torch.stack([run(kw, subset(inputs, [i]))[4][0] for i in range(N)])  # [N, H, W]
    z = view_depths(kw, inputs["means3D"])
    feats = torch.cat([gaussian_colors(kw, inputs), z[:, None], inputs["mask_feature"].detach()], 1)
    H, W = alphas.shape[1:]
    T = torch.ones(H, W, dtype=alphas.dtype)
    done = torch.zeros(H, W, dtype=torch.bool)
    acc = torch.zeros(feats.shape[1], H, W, dtype=alphas.dtype)
    for i in sorted(range(N), key=lambda i: (float(z[i]), i)):
        a = alphas[i]
        use = (a >= 1 / 255) & ~done
        after = T * (1 - a)
        stop = use & (after < 1e-4)
        done |= stop
        blend = use & ~stop
        acc += torch.where(blend, a * T, torch.zeros_like(a)) * feats[i][:, None, None]
        T = torch.where(blend, after, T)
    bg = kw["bg"].reshape(3, 1, 1)
    return acc[:3] + T * bg, acc[3:4], acc[4:], 1 - T[None]


# --- forward values -------------------------------------------------------------------------

def test_single_gaussian_equals_the_formula():
    kw, inputs = make_case("single", dtype=F64)
    color, depth, feats, radii, alpha = run(kw, inputs)
    (x, y, z), (sx, sy, sz) = inputs["means3D"][0].tolist(), inputs["scales"][0].tolist()
    H, W = kw["image_height"], kw["image_width"]
    fx, fy = W / (2 * kw["tanfovx"]), H / (2 * kw["tanfovy"])
    # Identity camera and rotation: Σ = diag(s²), J = [[fx/z, 0, -fx x/z²], [0, fy/z, -fy y/z²]].
    j = np.array([[fx / z, 0, -fx * x / z ** 2], [0, fy / z, -fy * y / z ** 2]])
    cov = j @ np.diag([sx ** 2, sy ** 2, sz ** 2]) @ j.T + 0.3 * np.eye(2)
    centre = np.array([fx * x / z + (W - 1) / 2, fy * y / z + (H - 1) / 2])
    ys, xs = np.mgrid[0:H, 0:W]
    d = np.stack([xs - centre[0], ys - centre[1]], -1)
    power = -0.5 * np.einsum("hwi,ij,hwj->hw", d, np.linalg.inv(cov), d)
    a = np.minimum(0.99, 0.7 * np.exp(power))
    a = np.where(a >= 1 / 255, a, 0.0)
    bg, c, f = kw["bg"].numpy(), np.array([0.9, 0.3, 0.1]), inputs["mask_feature"][0].detach().numpy()
    expected = a[None] * c[:, None, None] + (1 - a[None]) * bg[:, None, None]
    np.testing.assert_allclose(color.detach().numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(alpha[0].detach().numpy(), a, atol=1e-12)
    np.testing.assert_allclose(depth[0].detach().numpy(), a * z, atol=1e-12)
    np.testing.assert_allclose(feats.detach().numpy(), a[None] * f[:, None, None], atol=1e-12)
    assert radii.dtype == torch.int32
    assert int(radii[0]) == math.ceil(3 * math.sqrt(np.linalg.eigvalsh(cov).max()))


@pytest.mark.parametrize("name", ["two_overlapping", "random_small", "saturated", "degenerate_scale",
                                  "sh_degree3", "cov3d_precomp", "rotated_camera", "anisotropic", "offscreen"])
def test_matches_a_sequential_per_pixel_compositor(name):
    kw, inputs = make_case(name, dtype=F64)
    color, depth, feats, _, alpha = run(kw, inputs)
    exp_color, exp_depth, exp_feats, exp_alpha = sequential_composite(kw, inputs)
    for got, expected in ((color, exp_color), (depth, exp_depth), (feats, exp_feats), (alpha, exp_alpha)):
        torch.testing.assert_close(got.detach(), expected, atol=1e-10, rtol=1e-10)


def test_order_comes_from_depth_not_from_the_input_order():
    kw, inputs = make_case("two_overlapping", dtype=F64)
    color = run(kw, inputs)[0]
    swapped = run(kw, subset(inputs, [1, 0]))[0]
    torch.testing.assert_close(color, swapped, atol=1e-14, rtol=0)
    H, W = kw["image_height"], kw["image_width"]
    centre = color[:, H // 2, W // 2]
    # Two Gaussians by hand at one pixel: c = a1 c1 + (1-a1) a2 c2 + (1-a1)(1-a2) bg.
    a_near = run(kw, subset(inputs, [1]))[4][0, H // 2, W // 2]
    a_far = run(kw, subset(inputs, [0]))[4][0, H // 2, W // 2]
    c_far, c_near = inputs["colors_precomp"].detach()  # row 0 is the far one
    expected = a_near * c_near + (1 - a_near) * a_far * c_far + (1 - a_near) * (1 - a_far) * kw["bg"]
    torch.testing.assert_close(centre.detach(), expected, atol=1e-12, rtol=0)
    wrong_order = a_far * c_far + (1 - a_far) * a_near * c_near + (1 - a_near) * (1 - a_far) * kw["bg"]
    assert (wrong_order - expected).abs().max() > 0.05  # the check above can tell the orders apart
    z = view_depths(kw, inputs["means3D"])
    expected_depth = a_near * z[1] + (1 - a_near) * a_far * z[0]
    torch.testing.assert_close(run(kw, inputs)[1][0, H // 2, W // 2].detach(), expected_depth, atol=1e-12, rtol=0)


def test_transmittance_early_stop():
    kw, inputs = make_case("saturated", dtype=F64)
    alpha = run(kw, inputs)[4]
    c = kw["image_height"] // 2, kw["image_width"] // 2
    a = [float(run(kw, subset(inputs, [i]))[4][0, c[0], c[1]]) for i in range(8)]
    # The third Gaussian would bring T below 1e-4: only the first two are blended.
    assert (1 - a[0]) * (1 - a[1]) >= 1e-4 > (1 - a[0]) * (1 - a[1]) * (1 - a[2])
    centre_alpha = float(alpha[0, c[0], c[1]].detach())
    assert centre_alpha == pytest.approx(1 - (1 - a[0]) * (1 - a[1]), abs=1e-14)
    # Without the stop, the alpha would be closer to 1.
    assert 1 - np.prod([1 - v for v in a]) > centre_alpha + 1e-5


def test_background_only_enters_the_colour():
    kw, inputs = make_case("random_small", dtype=F64)
    black = run(dict(kw, bg=torch.zeros(3, dtype=F64)), inputs)
    coloured = run(kw, inputs)
    T = 1 - coloured[4]
    torch.testing.assert_close(coloured[0] - black[0], T * kw["bg"].reshape(3, 1, 1), atol=1e-14, rtol=0)
    torch.testing.assert_close(coloured[1], black[1], atol=0, rtol=0)
    torch.testing.assert_close(coloured[2], black[2], atol=0, rtol=0)
    # Where nothing is drawn: colour = bg, depth = 0, features = 0.
    empty = coloured[4][0] == 0
    assert bool(empty.any())
    assert torch.all(coloured[0][:, empty] == kw["bg"][:, None])
    assert torch.all(coloured[1][:, empty] == 0) and torch.all(coloured[2][:, empty] == 0)


def test_culling_behind_the_camera():
    kw, inputs = make_case("behind_camera", dtype=F64)
    out = run(kw, inputs)
    assert out[3].tolist()[1:] == [0, 0] and out[3][0] > 0
    alone = run(kw, subset(inputs, [0]))
    for got, expected in zip(out, alone):
        if got.dtype.is_floating_point:
            torch.testing.assert_close(got.detach(), expected, atol=0, rtol=0)
    (out[0].sum() + out[1].sum() + out[2].sum() + out[4].sum()).backward()
    for name in ("means3D", "scales", "rotations", "opacities", "colors_precomp", "mask_feature"):
        grad = inputs[name].grad
        assert torch.isfinite(grad).all(), name
        assert torch.all(grad[1:] == 0), name
        if name != "rotations":  # isotropic: rotation has no effect
            assert grad[0].abs().sum() > 0, name


def test_offscreen_gaussians_are_culled_by_footprint_not_by_centre():
    kw, inputs = make_case("offscreen", dtype=F64)
    radii = run(kw, inputs)[3].tolist()
    # far outside: culled; centres off the image at NDC y = 1.2 and x = -1.4 whose footprints
    # reach into it: drawn.
    assert radii[0] > 0 and radii[1] == 0 and radii[2] > 0 and radii[3] > 0
    alpha = run(kw, subset(inputs, [2]))[4][0]
    assert alpha[-1].max() > 0.05 and alpha[0].max() == 0
    assert run(kw, subset(inputs, [3]))[4][0][:, 0].min() > 0.05   # the large one covers the left column


def test_coverage_at_the_border_fades_as_the_centre_leaves_the_frame_and_does_not_pop():
    kw, inputs = make_case("border", dtype=F64)
    coverage = [float(run(kw, subset(inputs, [i]))[4][0][:, -1].max()) for i in range(4)]  # last column
    # centre at NDC x = 0.9, 1.25, 1.35, 1.6: half or more of the footprint is still in the frame,
    # so the border keeps a large share of its coverage (a centre test dropped it to 0 at 1.3).
    assert coverage[0] > 0.3 and coverage[3] > 0.1
    assert abs(coverage[2] - coverage[1]) < 0.25 * coverage[1]


def test_degenerate_scales_are_finite_and_dilated():
    kw, inputs = make_case("degenerate_scale", dtype=F64)
    out = run(kw, inputs)
    # A zero-scale Gaussian keeps the 0.3 px² dilation: radius ceil(3 sqrt(0.3)) = 2.
    assert int(out[3][1]) == math.ceil(3 * math.sqrt(0.3))
    assert int(out[3][0]) > 2
    sum(o.sum() for o in out if o.dtype.is_floating_point).backward()
    for name in ("means3D", "scales", "rotations", "opacities"):
        assert torch.isfinite(inputs[name].grad).all(), name


def test_zero_quaternion_and_zero_opacity_are_harmless():
    kw, inputs = make_case("random_small", dtype=F64)
    inputs["rotations"].data[0] = 0.0
    inputs["opacities"].data[1] = 0.0
    out = run(kw, inputs)
    sum(o.sum() for o in out if o.dtype.is_floating_point).backward()
    for name in ("means3D", "scales", "rotations", "opacities"):
        assert torch.isfinite(inputs[name].grad).all(), name


@pytest.mark.parametrize("name", ["multi_tile", "saturated", "offscreen"])
def test_tiled_equals_dense_forward_and_backward(name):
    """Non-square, not a multiple of 16, Gaussians over several tiles: the tiled kernel with its
    hand-written backward against the naive dense autograd version."""
    kw, inputs = make_case(name, dtype=F64)
    weights = [torch.rand(o.shape, dtype=F64) for o in run(kw, inputs) if o.dtype.is_floating_point]
    grads = []
    for dense in (False, True):
        outs = [o for o in run(kw, inputs, dense=dense) if o.dtype.is_floating_point]
        loss = sum((o * w).sum() for o, w in zip(outs, weights))
        present = [v for v in inputs.values() if v is not None]
        grads.append((outs, torch.autograd.grad(loss, present)))
    for a, b in zip(grads[0][0], grads[1][0]):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_float32_matches_float64():
    kw64, in64 = make_case("multi_tile", dtype=F64)
    kw32, in32 = make_case("multi_tile", dtype=torch.float32)
    for a, b in zip(run(kw32, in32), run(kw64, in64)):
        if a.dtype.is_floating_point:
            torch.testing.assert_close(a.double(), b.detach(), atol=2e-5, rtol=1e-4)


# --- gradients ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", GRADCHECK_CASES)
def test_gradcheck_every_input(name):
    kw, inputs = make_case(name, dtype=F64)
    names = [n for n in INPUT_NAMES if inputs[n] is not None]

    def fn(*values):
        out = run(kw, dict(inputs, **dict(zip(names, values))))
        return tuple(o for o in out if o.dtype.is_floating_point and o.numel() > 0)

    values = tuple(inputs[n].detach().clone().requires_grad_(True) for n in names)
    assert torch.autograd.gradcheck(fn, values, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


def test_every_output_moves_every_geometric_input():
    kw, inputs = make_case("random_small", dtype=F64)
    for pick in (lambda o: o[0].sum(), lambda o: o[1].sum(), lambda o: o[2].sum(), lambda o: o[4].sum()):
        out = run(kw, inputs)
        grads = torch.autograd.grad(pick(out), [inputs[n] for n in ("means3D", "scales", "rotations", "opacities")])
        for g in grads:
            assert g.abs().sum() > 0


def test_means2D_gradient_is_the_ndc_gradient():
    """means2D.grad[:, :2] = dL/d(NDC centre): checked by finite differences of the NDC shift."""
    kw, inputs = make_case("random_small", dtype=F64)
    weights = torch.rand(3, kw["image_height"], kw["image_width"], dtype=F64)
    loss_of = lambda inp: float((run(kw, inp)[0] * weights).sum().detach())
    (run(kw, inputs)[0] * weights).sum().backward()
    grad = inputs["means2D"].grad
    assert torch.all(grad[:, 2] == 0)
    h = 1e-6
    for i in range(inputs["means3D"].shape[0]):
        for axis in (0, 1):
            shifted = {k: None if v is None else v.detach().clone() for k, v in inputs.items()}
            shifted["means2D"][i, axis] += h
            plus = loss_of(shifted)
            shifted["means2D"][i, axis] -= 2 * h
            minus = loss_of(shifted)
            assert grad[i, axis].item() == pytest.approx((plus - minus) / (2 * h), rel=1e-5, abs=1e-8)
    # NDC units: moving the centre by one pixel in x is an NDC shift of 2 / W.
    W = kw["image_width"]
    shifted = {k: None if v is None else v.detach().clone() for k, v in inputs.items()}
    shifted["means2D"][0, 0] += 2.0 / W * 1e-4
    pixel_fd = (loss_of(shifted) - loss_of(inputs)) / 1e-4
    assert grad[0, 0].item() * 2.0 / W == pytest.approx(pixel_fd, rel=1e-3, abs=1e-7)


# --- interface --------------------------------------------------------------------------------

def test_module_interface_and_shapes():
    kw, inputs = make_case("multi_tile")
    rasterizer = GaussianRasterizer(raster_settings=GaussianRasterizationSettings(**kw))
    color, depth, feats, radii, alpha = rasterizer(**inputs)
    H, W, N = kw["image_height"], kw["image_width"], inputs["means3D"].shape[0]
    assert color.shape == (3, H, W) and depth.shape == (1, H, W) and alpha.shape == (1, H, W)
    assert feats.shape == (2, H, W) and radii.shape == (N,)
    no_mask = rasterizer(**dict(inputs, mask_feature=None))
    assert no_mask[2].shape == (0, H, W)


@pytest.mark.parametrize("change, message", [
    (dict(means2D=torch.zeros(3, 2)), "means2D"),
    (dict(colors_precomp=None), "exactly one of shs and colors_precomp"),
    (dict(scales=None), "cov3D_precomp, or scales and rotations"),
    (dict(mask_feature=torch.zeros(5, 2)), "mask_feature"),
])
def test_bad_arguments_raise_clear_errors(change, message):
    kw, inputs = make_case("random_small")
    with pytest.raises(ValueError, match=message):
        run(kw, dict(inputs, **change))


def test_more_feature_channels_than_the_cuda_kernels_take_are_refused_here_too():
    kw, inputs = make_case("random_small")
    n = inputs["means3D"].shape[0]
    with pytest.raises(ValueError, match="33 channels; at most 32"):
        run(kw, dict(inputs, mask_feature=torch.zeros(n, 33)))


def test_debug_mode_names_non_finite_inputs():
    kw, inputs = make_case("random_small")
    inputs["means3D"].data[0, 0] = float("nan")
    run(kw, inputs)  # tolerated without debug (culled)
    with pytest.raises(FloatingPointError, match="means3D"):
        run(dict(kw, debug=True), inputs)


def test_cases_are_all_constructible():
    for name in CASE_NAMES:
        kw, inputs = make_case(name)
        assert inputs["means3D"].requires_grad
    with pytest.raises(KeyError):
        make_case("nope")


# --- binning and edge cases -------------------------------------------------------------------

def test_blocks_cover_every_pixel_a_gaussian_can_reach():
    """The alpha-ellipse culling of tiling.py is exact: every pixel where a Gaussian has
    α >= 1/255 inside its 16-px rectangle lies in a block that lists it."""
    from gaussian_renderer.projection import project_gaussians
    from utils.general_utils import build_covariance
    from gaussian_renderer.tiling import COMPUTE_TILE, bin_gaussians
    kw, inputs = make_case("multi_tile", dtype=F64)
    opac = torch.linspace(0.005, 1.0, inputs["means3D"].shape[0], dtype=F64)  # some below 1/255
    H, W = kw["image_height"], kw["image_width"]
    cov = build_covariance(inputs["scales"].detach(), inputs["rotations"].detach(), 1.0)
    p = project_gaussians(inputs["means3D"].detach(), inputs["means2D"].detach(), cov, kw["viewmatrix"],
                          kw["projmatrix"], kw["tanfovx"], kw["tanfovy"], H, W)
    bins = bin_gaussians(p.pixel_means, p.conics, opac, p.tile_rects, p.view_depths, p.radii, H, W)
    listed = set(zip(bins.gaussian_ids.tolist(), bins.pair_tiles.tolist()))
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    reached = 0
    for i in torch.nonzero(p.radii > 0).squeeze(1).tolist():
        d = torch.stack([xs - p.pixel_means[i, 0], ys - p.pixel_means[i, 1]], -1).to(F64)
        a, b, c = p.conics[i]
        alpha = opac[i] * torch.exp(-0.5 * (a * d[..., 0] ** 2 + 2 * b * d[..., 0] * d[..., 1] + c * d[..., 1] ** 2))
        x0, y0, x1, y1 = p.tile_rects[i].tolist()
        in_rect = (xs // 16 >= x0) & (xs // 16 < x1) & (ys // 16 >= y0) & (ys // 16 < y1)
        for y, x in torch.nonzero((alpha >= 1 / 255) & in_rect).tolist():
            reached += 1
            assert (i, (y // COMPUTE_TILE) * bins.tiles_x + x // COMPUTE_TILE) in listed
    assert reached > 1000
    # and the culling does cut: far fewer pairs than blocks of the rectangles
    assert bins.gaussian_ids.numel() < 0.7 * int(((p.tile_rects[:, 2] - p.tile_rects[:, 0]) *
                                                   (p.tile_rects[:, 3] - p.tile_rects[:, 1])).sum()) * 4


def test_nothing_visible_gives_background():
    kw, inputs = make_case("behind_camera", dtype=F64)
    inputs = subset(inputs, [1, 2])
    for v in inputs.values():
        if v is not None:
            v.requires_grad_(True)
    color, depth, feats, radii, alpha = run(kw, inputs)
    assert torch.all(radii == 0) and torch.all(alpha == 0) and torch.all(depth == 0) and torch.all(feats == 0)
    torch.testing.assert_close(color, kw["bg"].reshape(3, 1, 1).expand_as(color), atol=0, rtol=0)
    color.sum().backward()
    assert torch.all(inputs["means3D"].grad == 0)


def test_zero_gaussians():
    kw, inputs = make_case("random_small", dtype=F64)
    empty = {k: None if v is None else v.detach()[:0] for k, v in inputs.items()}
    color, depth, feats, radii, alpha = run(kw, empty)
    assert radii.shape == (0,) and torch.all(alpha == 0)
    assert torch.all(color == kw["bg"].reshape(3, 1, 1))


@pytest.mark.slow
def test_gradcheck_full_jacobian_two_gaussians():
    """Full (slow-mode) Jacobian check on a tiny two-Gaussian image, every input at once (~15 s)."""
    kw, inputs = make_case("two_overlapping", dtype=F64)
    kw.update(camera(7, 6, fovx_deg=35.0, dtype=F64))
    names = [n for n in INPUT_NAMES if inputs[n] is not None]

    def fn(*values):
        out = run(kw, dict(inputs, **dict(zip(names, values))))
        return tuple(o for o in out if o.dtype.is_floating_point)

    values = tuple(inputs[n].detach().clone().requires_grad_(True) for n in names)
    assert torch.autograd.gradcheck(fn, values, eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.fixture
def cuda_package(monkeypatch):
    """The CUDA package's Python part, loaded from the source tree (its compiled _C loads on first use)."""
    import importlib.util
    import os
    import sys
    path = os.path.join(os.path.dirname(__file__), "..", "..", "submodules", "diff-gaussian-rasterization",
                        "diff_gaussian_rasterization", "__init__.py")
    spec = importlib.util.spec_from_file_location("cuda_package_python_part", path,
                                                  submodule_search_locations=[os.path.dirname(path)])
    package = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "cuda_package_python_part", package)   # for its relative import
    spec.loader.exec_module(package)
    return package


def test_both_backends_take_the_one_settings_type_of_the_cuda_package(cuda_package):
    import pickle
    from gaussian_renderer import reference
    package = cuda_package
    ours, theirs = reference.GaussianRasterizationSettings, package.GaussianRasterizationSettings
    assert ours.__module__ == "egomask_rasterizer_settings" and theirs.__module__.endswith(".settings")
    assert ours._fields == theirs._fields and ours._field_defaults == theirs._field_defaults
    settings, _ = make_case("single", dtype=F64)
    rebuilt = pickle.loads(pickle.dumps(reference.GaussianRasterizationSettings(**settings)))
    assert rebuilt.image_width == settings["image_width"]


def test_the_rule_constants_of_config_h_and_the_shared_python_ones_agree(cuda_package):
    # csrc/config.h says "change them together or not at all": this is what holds them together.
    # The Python side is one module (the CUDA package's settings.py) that both backends import.
    import os
    import re
    from gaussian_renderer import compositing, dense, projection, rules, tiling
    path = os.path.join(os.path.dirname(__file__), "..", "..", "submodules", "diff-gaussian-rasterization",
                        "csrc", "config.h")
    with open(path) as f:
        cuda = dict(re.findall(r"constexpr (?:int|float) (\w+) = ([^;]+);", f.read()))
    names = ["TILE", "NEAR_CULL_Z", "FRUSTUM_GUARD", "COV2D_BLUR", "ALPHA_MAX", "ALPHA_MIN", "T_MIN", "MAX_FEATURES",
             "MAX_LAYERS"]
    assert set(names) <= set(cuda)
    for name in names:
        number = eval(re.sub(r"(\d)f\b", r"\1", cuda[name]))   # "1.0f / 255.0f" -> 1.0 / 255.0
        assert number == pytest.approx(getattr(rules, name), rel=1e-6), name
    assert cuda_package.MAX_FEATURES == rules.MAX_FEATURES
    # Every user of a constant holds the shared object itself, not a copy of its value.
    for module in (projection, tiling, compositing, dense):
        for name in names:
            if hasattr(module, name):
                assert getattr(module, name) is getattr(rules, name), (module.__name__, name)
