"""render(): deformation, subsets, pipeline switches and the backend choice, with a stand-in model."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import gaussian_renderer.backend as backend
from gaussian_renderer import render
from gaussian_renderer import reference
from scene.cameras import Camera
from utils.sh_utils import RGB2SH


class TinyModel:
    """The GaussianModel attributes the renderer reads (docs/ARCHITECTURE.md)."""

    def __init__(self, n=12, sh_degree=1, mask_dimension=3, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.get_xyz = torch.cat([(torch.rand(n, 2, generator=g) - 0.5) * 2.0, 2 + 2 * torch.rand(n, 1, generator=g)], 1)
        coeffs = (sh_degree + 1) ** 2
        self.get_features = 0.2 * torch.randn(n, coeffs, 3, generator=g)
        self.get_features[:, 0] = RGB2SH(torch.rand(n, 3, generator=g))
        self.get_opacity = 0.3 + 0.6 * torch.rand(n, 1, generator=g)
        self.get_scaling = 0.05 + 0.2 * torch.rand(n, 3, generator=g)
        self.get_rotation = torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=1)
        self.get_mask = torch.rand(n, mask_dimension, generator=g)
        self.active_sh_degree = self.max_sh_degree = sh_degree
        self.mask_dimension = mask_dimension

    def get_covariance(self, scaling_modifier=1.0):
        raise AssertionError("the renderer builds the deformed covariance itself")

    def only(self, keep):
        other = TinyModel.__new__(TinyModel)
        other.__dict__.update(self.__dict__)
        for name in ("get_xyz", "get_features", "get_opacity", "get_scaling", "get_rotation", "get_mask"):
            setattr(other, name, getattr(self, name)[keep])
        return other


def make_camera(width=40, height=30):
    fovx = math.radians(60)
    fovy = 2 * math.atan(math.tan(fovx / 2) * height / width)
    angle = 0.1
    R = np.array([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]])
    return Camera(0, R, np.array([0.05, 0.0, 0.1]), fovx, fovy, torch.zeros(3, height, width), "view", 0.0)


PIPE = SimpleNamespace(convert_SHs_python=False, compute_cov3D_python=False, debug=False, rasterizer="torch")
BG = torch.tensor([0.1, 0.2, 0.3])
IMAGE_KEYS = ("render", "depth", "hand_map", "alpha")


def assert_same_images(a, b, atol=1e-6):
    for key in IMAGE_KEYS:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0)


def test_outputs_and_viewspace_gradient():
    pc, cam = TinyModel(), make_camera()
    out = render(cam, pc, PIPE, BG, 0.0, 0.0, 0.0)
    assert out["render"].shape == (3, 30, 40) and out["depth"].shape == (1, 30, 40)
    assert out["hand_map"].shape == (3, 30, 40) and out["alpha"].shape == (1, 30, 40)
    assert out["radii"].shape == (12,) and torch.equal(out["visibility_filter"], out["radii"] > 0)
    out["render"].sum().backward()
    grad = out["viewspace_points"].grad
    assert grad.shape == (12, 3) and grad[out["visibility_filter"], :2].abs().sum() > 0


def test_offsets_equal_a_moved_model():
    pc, cam = TinyModel(), make_camera()
    d_xyz = 0.05 * torch.randn(12, 3)
    d_rotation = 0.1 * torch.randn(12, 4)
    d_scaling = 0.02 * torch.rand(12, 3)
    moved = pc.only(slice(None))
    moved.get_xyz = pc.get_xyz + d_xyz
    moved.get_rotation = pc.get_rotation + d_rotation
    moved.get_scaling = pc.get_scaling + d_scaling
    assert_same_images(render(cam, pc, PIPE, BG, d_xyz, d_rotation, d_scaling), render(cam, moved, PIPE, BG, 0.0, 0.0, 0.0))
    assert not torch.allclose(render(cam, pc, PIPE, BG, d_xyz, d_rotation, d_scaling)["render"],
                              render(cam, pc, PIPE, BG, 0.0, 0.0, 0.0)["render"])


def test_6dof_transform_moves_the_points():
    pc, cam = TinyModel(), make_camera()
    angle = 0.2
    T = torch.eye(4).repeat(12, 1, 1)
    T[:, :3, :3] = torch.tensor([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
    T[:, :3, 3] = torch.tensor([0.1, -0.05, 0.2])
    moved = pc.only(slice(None))
    moved.get_xyz = pc.get_xyz @ T[0, :3, :3].T + T[0, :3, 3]
    # The two paths round the moved centres differently (by ~1e-7): a few ulps in the image.
    assert_same_images(render(cam, pc, PIPE, BG, T, 0.0, 0.0, is_6dof=True), render(cam, moved, PIPE, BG, 0.0, 0.0, 0.0),
                       atol=1e-5)
    assert_same_images(render(cam, pc, PIPE, BG, 0.0, 0.0, 0.0, is_6dof=True), render(cam, pc, PIPE, BG, 0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="4, 4"):
        render(cam, pc, PIPE, BG, torch.zeros(12, 3), 0.0, 0.0, is_6dof=True)


def test_subset_render_equals_a_smaller_model():
    pc, cam = TinyModel(), make_camera()
    keep = torch.zeros(12, dtype=torch.bool)
    keep[::3] = True
    out = render(cam, pc, PIPE, BG, 0.0, 0.0, 0.0, gaussian_subset=keep)
    small = render(cam, pc.only(keep), PIPE, BG, 0.0, 0.0, 0.0)
    assert_same_images(out, small)
    assert torch.all(out["radii"][~keep] == 0) and torch.equal(out["radii"][keep], small["radii"])
    assert not out["visibility_filter"][~keep].any()
    out["render"].sum().backward()
    assert torch.all(out["viewspace_points"].grad[~keep] == 0)
    with pytest.raises(ValueError, match="gaussian_subset"):
        render(cam, pc, PIPE, BG, 0.0, 0.0, 0.0, gaussian_subset=keep.float())


def _leaf_model(pc, device):
    """pc's tensors as leaves on device, so a render's gradients can be read per Gaussian."""
    other = TinyModel.__new__(TinyModel)
    other.__dict__.update(pc.__dict__)
    for name in ("get_xyz", "get_features", "get_opacity", "get_scaling", "get_rotation", "get_mask"):
        setattr(other, name, getattr(pc, name).to(device).requires_grad_(True))
    return other


@pytest.mark.parametrize("rasterizer", ["torch", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_zero_opacity_weight_equals_leaving_the_gaussian_out(rasterizer):
    """The training's hands layer relies on this: drawn from all Gaussians with opacity x gate, the
    ones with gate 0 change neither the images nor any gradient, as if they were not drawn."""
    device = "cuda" if rasterizer == "cuda" else "cpu"
    pipe = SimpleNamespace(**{**vars(PIPE), "rasterizer": rasterizer})
    base, cam = TinyModel(n=40), make_camera()
    cam.to(device)
    keep = torch.arange(40) % 3 != 0
    weight = torch.where(keep, 0.2 + 0.8 * torch.rand(40, generator=torch.Generator().manual_seed(1)),
                         torch.zeros(40)).to(device)
    outputs = []
    for model, kwargs in ((_leaf_model(base, device), dict(opacity_weight=weight)),
                          (_leaf_model(base, device), dict(gaussian_subset=keep.to(device), opacity_weight=weight))):
        out = render(cam, model, pipe, BG.to(device), 0.0, 0.0, 0.0, **kwargs)
        (out["render"].square().sum() + out["alpha"].sum() + out["hand_map"].sum()).backward()
        outputs.append((out, model))
    (full, full_model), (subset, subset_model) = outputs
    assert full["alpha"].sum() > 1.0   # the kept Gaussians are drawn
    assert_same_images(full, subset, atol=1e-5)
    for name in ("get_xyz", "get_features", "get_opacity", "get_scaling", "get_rotation", "get_mask"):
        a, b = getattr(full_model, name).grad, getattr(subset_model, name).grad
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        assert torch.all(a[~keep.to(device)] == 0), name


@pytest.mark.parametrize("rasterizer", ["torch", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_render_layers_draws_what_separate_renders_draw(rasterizer):
    """Training's one-draw image + hands + static layers: each image as render_deformed with its
    opacity weight and background, the same gradients summed over the layers, and the
    screen-space gradient for densification from the first image alone."""
    from gaussian_renderer import deform_gaussians, render_deformed, render_layers
    device = "cuda" if rasterizer == "cuda" else "cpu"
    pipe = SimpleNamespace(**{**vars(PIPE), "rasterizer": rasterizer})
    base, cam = TinyModel(n=40), make_camera()
    cam.to(device)
    gate = torch.where(torch.arange(40) % 3 == 0, 1.0, 0.0).to(device)
    gate[1] = 0.4
    backgrounds, weights = [BG.to(device), torch.zeros(3, device=device), torch.zeros(3, device=device)], \
        [None, gate, 1.0 - gate]
    results = []
    for one_draw in (True, False):
        model = _leaf_model(base, device)
        deformed = deform_gaussians(model, 0.0, 0.0, 0.0)
        if one_draw:
            packages = render_layers(cam, deformed, pipe, backgrounds, weights)
        else:
            packages = [render_deformed(cam, deformed, pipe, bg, opacity_weight=w) for bg, w in zip(backgrounds, weights)]
        loss = sum(p["render"].square().sum() + p["alpha"].sum() + p["hand_map"].sum() for p in packages)
        loss.backward()
        results.append((packages, model))
    (layered, layered_model), (separate, separate_model) = results
    for a, b in zip(layered, separate):
        assert_same_images(a, b, atol=1e-5)
        assert torch.equal(a["radii"], b["radii"])
    assert layered[1]["alpha"].sum() > 1.0 and layered[2]["alpha"].sum() > 1.0   # both layers hold Gaussians
    torch.testing.assert_close(layered[0]["viewspace_points"].grad, separate[0]["viewspace_points"].grad,
                               atol=1e-5, rtol=1e-4)
    assert all(p["viewspace_points"] is None for p in layered[1:])
    for name in ("get_xyz", "get_features", "get_opacity", "get_scaling", "get_rotation", "get_mask"):
        torch.testing.assert_close(getattr(layered_model, name).grad, getattr(separate_model, name).grad,
                                   atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="one background per layer"):
        render_layers(cam, deform_gaussians(base, 0.0, 0.0, 0.0), pipe, backgrounds[:2], weights)


@pytest.mark.cuda
@pytest.mark.parametrize("rasterizer", ["torch", "cuda"])
def test_a_camera_kept_on_the_host_renders_gaussians_on_the_gpu(rasterizer):
    """--data_device cpu keeps a camera's images and matrices on the host while the Gaussians
    train on the GPU: the render is the one of a camera on the GPU (it crashed before)."""
    pipe = SimpleNamespace(**{**vars(PIPE), "rasterizer": rasterizer})
    model = _leaf_model(TinyModel(n=40), "cuda")
    host = render(make_camera(), model, pipe, BG.cuda(), 0.0, 0.0, 0.0)
    device = render(make_camera().to("cuda"), model, pipe, BG.cuda(), 0.0, 0.0, 0.0)
    assert host["render"].is_cuda and host["alpha"].sum() > 1.0
    assert_same_images(host, device)


def test_layered_draw_arguments_are_checked():
    settings = reference.GaussianRasterizationSettings(
        image_height=8, image_width=8, tanfovx=0.5, tanfovy=0.5, bg=torch.zeros(2, 3), scale_modifier=1.0,
        viewmatrix=torch.eye(4), projmatrix=torch.eye(4), sh_degree=0, campos=torch.zeros(3), prefiltered=False)
    n = 5
    args = dict(means3D=torch.zeros(n, 3), means2D=torch.zeros(n, 3), opacities=torch.ones(n, 1),
                colors_precomp=torch.zeros(n, 3), scales=torch.ones(n, 3), rotations=torch.ones(n, 4))
    for weights, message in ((torch.ones(2, n + 1), r"\[L, N=5\]"), (torch.ones(9, n), "L <= 8"),
                             (torch.ones(2, n, requires_grad=True), "detach"), (torch.ones(3, n), r"bg \[3, 3\]")):
        with pytest.raises(ValueError, match=message):
            reference.rasterize_gaussians(settings, layer_weights=weights, **args)


def test_python_sh_and_covariance_paths_match_the_rasterizer():
    pc, cam = TinyModel(sh_degree=2), make_camera()
    d_rotation, d_scaling = 0.1 * torch.randn(12, 4), 0.02 * torch.rand(12, 3)
    base = render(cam, pc, PIPE, BG, 0.0, d_rotation, d_scaling, scaling_modifier=0.8)
    python_pipe = SimpleNamespace(**dict(vars(PIPE), convert_SHs_python=True, compute_cov3D_python=True))
    assert_same_images(base, render(cam, pc, python_pipe, BG, 0.0, d_rotation, d_scaling, scaling_modifier=0.8), atol=1e-5)


def test_override_color_and_no_mask():
    pc, cam = TinyModel(mask_dimension=0), make_camera()
    pc.get_mask = torch.zeros(12, 0)
    white = torch.ones(12, 3)
    out = render(cam, pc, PIPE, torch.zeros(3), 0.0, 0.0, 0.0, override_color=white)
    assert out["hand_map"].shape == (0, 30, 40)
    torch.testing.assert_close(out["render"], out["alpha"].expand(3, -1, -1), atol=1e-6, rtol=0)


def test_backend_choice(monkeypatch, capsys):
    monkeypatch.setattr(backend, "_cache", {})
    monkeypatch.setattr(backend, "_fallback_reported", False)
    assert backend.get_rasterizer("torch", "cpu") is reference
    with pytest.raises(ValueError, match="auto, cuda, torch"):
        backend.get_rasterizer("opengl", "cpu")
    assert backend.get_rasterizer("auto", "cpu") is reference
    assert backend.get_rasterizer("auto", "cpu") is reference
    message = capsys.readouterr().err
    assert message.count("[rasterizer]") == 1 and "reference" in message
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="--rasterizer torch"):
            backend.get_rasterizer("cuda", "cpu")


def test_cuda_load_failure_is_reported(monkeypatch):
    """A failing build surfaces the compiler's message for --rasterizer cuda."""
    monkeypatch.setattr(backend, "_cache", {})
    monkeypatch.setattr(backend.torch.cuda, "is_available", lambda: True)

    def broken():
        raise RuntimeError("nvcc: error: something went wrong")
    monkeypatch.setattr(backend, "load_rasterizer", broken)
    with pytest.raises(RuntimeError, match="something went wrong"):
        backend.get_rasterizer("cuda", "cuda")


def _fake_cuda(monkeypatch, load):
    monkeypatch.setattr(backend, "_cache", {})
    monkeypatch.setattr(backend, "_cuda_attempt", {})
    monkeypatch.setattr(backend, "_fallback_reported", False)
    monkeypatch.setattr(backend.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(backend, "load_rasterizer", load)


def test_auto_takes_cuda_for_gpu_tensors_when_it_loads(monkeypatch):
    compiled = object()
    _fake_cuda(monkeypatch, lambda: compiled)
    assert backend.get_rasterizer("auto", "cuda") is compiled
    assert backend.get_rasterizer("auto", "cpu") is reference  # CPU tensors: the reference


def test_auto_falls_back_once_when_the_build_fails(monkeypatch, capsys):
    calls = []

    def broken():
        calls.append(1)
        raise RuntimeError("nvcc not found\nfull log ...")
    _fake_cuda(monkeypatch, broken)
    assert backend.get_rasterizer("auto", "cuda") is reference
    assert backend.get_rasterizer("auto", "cuda") is reference
    err = capsys.readouterr().err
    assert err.count("[rasterizer]") == 1 and "nvcc not found" in err and "full log" not in err
    assert len(calls) == 1
