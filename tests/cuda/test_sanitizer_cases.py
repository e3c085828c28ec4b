"""One small forward + backward of each extension: the run compute-sanitizer wraps.

    compute-sanitizer --tool memcheck --error-exitcode 3 python -m pytest -q -m cuda tests/cuda/test_sanitizer_cases.py
    compute-sanitizer --tool initcheck --error-exitcode 3 python -m pytest -q -m cuda tests/cuda/test_sanitizer_cases.py

The sanitizer wraps the whole process, so these are plain pytest tests (pytest.ini gives the
paths); they also run, quickly, in every `pytest -m cuda`."""
import pytest
import torch

from cuda_parity import layered_scene, random_scene, run_backend

pytestmark = pytest.mark.cuda

# mask channels and scene options: SH of each degree and stride, precomputed colours and covariances
CASES = ((3, dict(sh_degree=3)), (0, dict(precomp_colors=True, precomp_cov=True)), (16, {}),
         (1, dict(sh_degree=1, sh_coeffs=16)), (3, dict(sh_degree=3, sh_coeffs=40)))


@pytest.mark.parametrize("depth_first_from", [0, 1 << 40], ids=["depth_first_sort", "single_sort"])
def test_each_rasterizer_case_runs_forward_and_backward(depth_first_from, monkeypatch):
    from utils.cuda_ext import load_rasterizer
    module = load_rasterizer()
    monkeypatch.setattr(module, "DEPTH_FIRST_SORT_MIN_GAUSSIANS", depth_first_from)   # both ways to build tile lists
    for channels, kwargs in CASES:
        settings, inputs = random_scene(seed=21, n=500, width=45, height=37, channels=channels, **kwargs)
        out, grads = run_backend(module, settings, inputs)
        torch.cuda.synchronize()
        assert all(torch.isfinite(g).all() for g in grads.values()), (channels, kwargs)


@pytest.mark.parametrize("depth_first_from", [0, 1 << 40], ids=["depth_first_sort", "single_sort"])
def test_a_layered_draw_runs_forward_and_backward(depth_first_from, monkeypatch):
    """Training's draw: the image and the hands and static layers in one call (grid z = layer)."""
    from utils.cuda_ext import load_rasterizer
    module = load_rasterizer()
    monkeypatch.setattr(module, "DEPTH_FIRST_SORT_MIN_GAUSSIANS", depth_first_from)
    settings, inputs = layered_scene(3, seed=23, n=500, width=45, height=37, channels=3, sh_degree=2)
    out, grads = run_backend(module, settings, inputs)
    torch.cuda.synchronize()
    assert out["color"].shape == (3, 3, 37, 45)
    assert all(torch.isfinite(g).all() for g in grads.values())


def test_knn_runs():
    from utils.cuda_ext import load_knn
    distances = load_knn()(torch.rand(5000, 3, device="cuda"))
    torch.cuda.synchronize()
    assert distances.shape == (5000,) and torch.isfinite(distances).all() and (distances > 0).all()
