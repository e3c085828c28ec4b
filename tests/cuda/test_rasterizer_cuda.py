"""The CUDA rasterizer against the pure-PyTorch reference: every output and every gradient.

Runs only with a GPU (marker ``cuda``); the extension is built on first use (utils.cuda_ext).
"""
import os

import pytest
import torch

from cuda_parity import (assert_grads_match, assert_outputs_match, case_pair, layered_scene, random_scene, recast,
                         run_backend)

pytestmark = pytest.mark.cuda

REFERENCE_CASES = ("single", "two_overlapping", "random_small", "behind_camera", "offscreen", "border",
                   "degenerate_scale", "saturated", "sh_degree3", "cov3d_precomp", "multi_tile",
                   "rotated_camera", "anisotropic")

RANDOM_SCENES = {  # id: random_scene kwargs
    "deg0-k3-64x48": dict(seed=1, n=400, width=64, height=48, sh_degree=0, channels=3),
    "deg3-k16-77x53": dict(seed=2, n=500, width=77, height=53, sh_degree=3, channels=16),
    "colors-cov-k0-50x90": dict(seed=3, n=300, width=50, height=90, precomp_colors=True, precomp_cov=True, channels=0),
    "deg2-cov-k1-33x17": dict(seed=4, n=200, width=33, height=17, sh_degree=2, precomp_cov=True, channels=1),
    "deg1-rotated-k3-96x64": dict(seed=5, n=800, width=96, height=64, sh_degree=1, channels=3, rotated_camera=True),
    "deg3-modifier-k32-40x40": dict(seed=6, n=300, width=40, height=40, sh_degree=3, channels=32, scale_modifier=0.7),
    "crowd-deg3-k3-128x72": dict(seed=7, n=4000, width=128, height=72, sh_degree=3, channels=3),
    # training's layout: 16 stored coefficients, lower active degree (SH gradient rows of 48 floats)
    "deg1-of-16-coeffs-k1-70x50": dict(seed=8, n=1000, width=70, height=50, sh_degree=1, sh_coeffs=16, channels=1),
    # rows too long for the shared-memory staging of SH gradients: written directly
    "deg3-of-40-coeffs-k3-48x40": dict(seed=9, n=300, width=48, height=40, sh_degree=3, sh_coeffs=40, channels=3),
    # many exact depth ties: both sorts must order equal depths the same way (by index)
    "depth-ties-deg0-k3-64x64": dict(seed=10, n=1500, width=64, height=64, sh_degree=0, channels=3, depth_step=0.5),
    # 5 channels in the 8-channel kernel: the backward's per-lane sums past 10 + K have no slot
    "crowd-deg2-k5-80x60": dict(seed=15, n=2500, width=80, height=60, sh_degree=2, channels=5),
}


@pytest.fixture(scope="module")
def cuda_rasterizer():
    from utils.cuda_ext import load_rasterizer
    return load_rasterizer()


@pytest.fixture(scope="module")
def reference():
    from gaussian_renderer import reference
    return reference


@pytest.mark.parametrize("name", REFERENCE_CASES)
def test_reference_cases_match(name, cuda_rasterizer, reference):
    (s32, in32), (s64, in64) = case_pair(name)
    out, grads = run_backend(cuda_rasterizer, s32, in32)
    ref_out, ref_grads = run_backend(reference, s64, in64)
    assert_outputs_match(out, ref_out, name)
    assert_grads_match(grads, ref_grads, name)


@pytest.mark.parametrize("sort", ["single", "depth_first"])
@pytest.mark.parametrize("scene", list(RANDOM_SCENES))
def test_random_scenes_match(scene, sort, cuda_rasterizer, reference, monkeypatch):
    """Both ways of building the tile lists (chosen by size in use) give the reference's result."""
    monkeypatch.setattr(cuda_rasterizer, "DEPTH_FIRST_SORT_MIN_GAUSSIANS", 0 if sort == "depth_first" else 1 << 40)
    s32, in32 = random_scene(**RANDOM_SCENES[scene])
    s64, in64 = recast(s32, in32, torch.float64)
    out, grads = run_backend(cuda_rasterizer, s32, in32)
    ref_out, ref_grads = run_backend(reference, s64, in64)
    visible = int((ref_out["radii"] > 0).sum())
    assert 0 < visible < len(ref_out["radii"]), "the scene should mix visible and culled Gaussians"
    assert_outputs_match(out, ref_out, scene)
    assert_grads_match(grads, ref_grads, scene)


def test_outputs_are_deterministic_and_written_everywhere(cuda_rasterizer):
    """Two forward passes agree bit for bit (no uninitialised output memory) and are finite."""
    settings, inputs = random_scene(seed=11, n=600, width=70, height=45, sh_degree=2, channels=3)
    s = cuda_rasterizer.GaussianRasterizationSettings(**settings)
    with torch.no_grad():
        torch.cuda.empty_cache()
        first = cuda_rasterizer.GaussianRasterizer(s)(**inputs)
        garbage = torch.full((1 << 22,), float("nan"), device="cuda")  # dirty the allocator's blocks
        del garbage
        second = cuda_rasterizer.GaussianRasterizer(s)(**inputs)
    for a, b, name in zip(first, second, ("color", "depth", "feature_map", "radii", "alpha")):
        assert torch.equal(a, b), f"{name} differs between identical calls"
        if a.is_floating_point():
            assert torch.isfinite(a).all(), f"{name} has non-finite values"


def test_empty_scene_gives_background(cuda_rasterizer):
    settings, inputs = random_scene(seed=12, n=20, width=30, height=20, channels=2)
    with torch.no_grad():
        inputs["means3D"].data[:, :] = torch.tensor([0.0, 0.0, -5.0], device="cuda")  # all behind the camera
    out, grads = run_backend(cuda_rasterizer, settings, inputs)
    bg = settings["bg"].detach()
    assert torch.allclose(out["color"], bg[:, None, None].expand(3, 20, 30))
    assert out["depth"].abs().max() == 0 and out["alpha"].abs().max() == 0
    assert out["feature_map"].shape == (2, 20, 30) and out["feature_map"].abs().max() == 0
    assert (out["radii"] == 0).all()
    assert grads["means3D"].abs().max() == 0


def test_debug_mode_dumps_the_inputs_of_a_failing_call(cuda_rasterizer, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings, inputs = random_scene(seed=13, n=10, width=16, height=16, channels=1)
    settings["debug"] = True
    inputs["scales"] = inputs["scales"].detach().double()  # wrong dtype: the extension refuses it
    s = cuda_rasterizer.GaussianRasterizationSettings(**settings)
    with pytest.raises(RuntimeError) as info:
        cuda_rasterizer.GaussianRasterizer(s)(**inputs)
    path = os.path.join(str(tmp_path), "rasterizer_forward_snapshot.pt")
    assert path in str(info.value) and "float32" in str(info.value)
    saved = torch.load(path)
    assert torch.equal(saved["means3D"], inputs["means3D"].detach().cpu())


def test_unsupported_channel_count_is_a_clear_error(cuda_rasterizer):
    settings, inputs = random_scene(seed=14, n=10, width=16, height=16, channels=40)
    s = cuda_rasterizer.GaussianRasterizationSettings(**settings)
    with pytest.raises(RuntimeError, match="40 channels"):
        cuda_rasterizer.GaussianRasterizer(s)(**inputs)


LAYERED_SCENES = {  # id: (layers, random_scene kwargs)
    "3-layers-deg2-k3-96x64": (3, dict(seed=21, n=1500, width=96, height=64, sh_degree=2, channels=3)),
    "2-layers-colors-cov-k0-50x40": (2, dict(seed=22, n=600, width=50, height=40, precomp_colors=True,
                                             precomp_cov=True, channels=0)),
    "5-layers-deg1-k16-64x48": (5, dict(seed=23, n=800, width=64, height=48, sh_degree=1, channels=16)),
    "1-layer-deg3-k1-40x30": (1, dict(seed=24, n=300, width=40, height=30, sh_degree=3, channels=1)),
}


@pytest.mark.parametrize("sort", ["single", "depth_first"])
@pytest.mark.parametrize("scene", list(LAYERED_SCENES))
def test_layered_draws_match_the_reference(scene, sort, cuda_rasterizer, reference, monkeypatch):
    """A layered draw against the reference's, which is by definition one plain draw per layer:
    every image of every layer, means2D's gradient (layer 0's alone) and all the others."""
    monkeypatch.setattr(cuda_rasterizer, "DEPTH_FIRST_SORT_MIN_GAUSSIANS", 0 if sort == "depth_first" else 1 << 40)
    layers, kwargs = LAYERED_SCENES[scene]
    s32, in32 = layered_scene(layers, **kwargs)
    s64, in64 = recast(s32, in32, torch.float64)
    out, grads = run_backend(cuda_rasterizer, s32, in32)
    ref_out, ref_grads = run_backend(reference, s64, in64)
    assert out["color"].shape == (layers, 3, kwargs["height"], kwargs["width"])
    assert_outputs_match(out, ref_out, scene)
    assert_grads_match(grads, ref_grads, scene)
    assert "bg" in grads and "layer_weights" not in grads


def _plain_draw_leaves(inputs: dict) -> dict:
    """Fresh float32 leaves of a layered scene's inputs, without the layer weights."""
    return {k: v.detach().clone().requires_grad_(v.requires_grad) for k, v in inputs.items()
            if k != "layer_weights" and v is not None}


def test_a_layered_draw_is_the_plain_draws_of_the_weighted_opacities(cuda_rasterizer):
    """Every layer's images equal, bit for bit, a plain draw with opacities x the layer's weights
    (same lists, same order, same products); a layered loss's gradients are the sums of the plain
    draws' under the same cotangents, except means2D's, which is the first layer's alone."""
    settings, inputs = layered_scene(3, seed=25, n=2000, width=80, height=60, sh_degree=2, channels=3)
    rasterizer = lambda s: cuda_rasterizer.GaussianRasterizer(cuda_rasterizer.GaussianRasterizationSettings(**s))
    layered_out = rasterizer(settings)(**inputs)
    images = lambda out: (out[0], out[1], out[2], out[4])
    g = torch.Generator().manual_seed(5)
    cotangents = [torch.randn(image.shape, generator=g).cuda() for image in images(layered_out)]
    sum((image * c).sum() for image, c in zip(images(layered_out), cotangents)).backward()
    layered = {k: v.grad for k, v in inputs.items() if torch.is_tensor(v) and v.requires_grad}
    weights, bg = inputs["layer_weights"], settings["bg"].detach()
    expected = {}
    for layer in range(3):
        leaves = _plain_draw_leaves(inputs)
        weighted = dict(leaves, opacities=leaves["opacities"] * weights[layer][:, None])
        out = rasterizer({**settings, "bg": bg[layer]})(**weighted)
        for name, a, b in zip(("color", "depth", "feature_map", "alpha"), images(out), images(layered_out)):
            assert torch.equal(a, b[layer]), (name, layer)
        assert torch.equal(out[3], layered_out[3])
        sum((image * c[layer]).sum() for image, c in zip(images(out), cotangents)).backward()
        for name, leaf in leaves.items():
            if leaf.requires_grad and (name != "means2D" or layer == 0):
                expected[name] = expected.get(name, 0) + leaf.grad
    assert layered["means2D"].abs().max() > 0
    assert_grads_match(layered, expected, "layered vs plain draws", rel=1e-4)   # float32 sums in another order


def test_a_layered_draw_of_nothing_gives_each_layer_its_background(cuda_rasterizer):
    settings, inputs = layered_scene(3, seed=27, n=20, width=30, height=20, channels=2)
    with torch.no_grad():
        inputs["means3D"].data[:, :] = torch.tensor([0.0, 0.0, -5.0], device="cuda")  # all behind the camera
    out, grads = run_backend(cuda_rasterizer, settings, inputs)
    bg = settings["bg"].detach()
    assert torch.allclose(out["color"], bg[:, :, None, None].expand(3, 3, 20, 30))
    assert out["alpha"].abs().max() == 0 and grads["means3D"].abs().max() == 0
    # colour = bg everywhere, so d loss / d bg[l] is the colour cotangent summed over layer l's pixels
    cotangent = torch.randn(out["color"].shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(grads["bg"].double().cpu(), cotangent.sum(dim=(2, 3)), atol=1e-3)
