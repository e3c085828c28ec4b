"""simple_knn distCUDA2 against exact brute force (torch.cdist in float64, in chunks)."""
import pytest
import torch

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def dist_cuda2():
    from utils.cuda_ext import load_knn
    return load_knn()


def exact_mean_dist2(points: torch.Tensor, k: int = 3) -> torch.Tensor:
    """points [N,3] -> [N]: mean squared distance to the k nearest other points, float64."""
    p = points.double()
    out = []
    for start in range(0, p.shape[0], 2048):
        d = torch.cdist(p[start:start + 2048], p, compute_mode="donot_use_mm_for_euclid_dist").pow(2)
        rows = torch.arange(start, min(start + 2048, p.shape[0]), device=p.device)
        d[rows - start, rows] = float("inf")  # not its own neighbour (duplicates still count)
        out.append(d.topk(min(k, p.shape[0] - 1), dim=1, largest=False).values.mean(1))
    return torch.cat(out)


def clouds():
    g = torch.Generator().manual_seed(0)
    uniform = torch.rand(20000, 3, generator=g) * torch.tensor([4.0, 1.0, 2.0])
    clustered = torch.cat([torch.randn(5000, 3, generator=g) * 0.01, torch.randn(5000, 3, generator=g) * 0.01 + 50])
    flat = torch.cat([torch.rand(8000, 2, generator=g), torch.zeros(8000, 1)], 1)
    line = torch.cat([torch.linspace(0, 1, 3000)[:, None], torch.zeros(3000, 2)], 1)
    duplicates = torch.cat([torch.rand(3000, 3, generator=g)] * 2)
    heavy_tail = torch.randn(20000, 3, generator=g) ** 3
    return {"uniform": uniform, "clustered": clustered, "flat": flat, "line": line,
            "duplicates": duplicates, "heavy_tail": heavy_tail, "four": torch.rand(4, 3, generator=g),
            "two": torch.rand(2, 3, generator=g)}


@pytest.mark.parametrize("name", list(clouds()))
def test_matches_exact_knn(name, dist_cuda2):
    points = clouds()[name].cuda()
    got = dist_cuda2(points)
    want = exact_mean_dist2(points).float()
    assert got.shape == (points.shape[0],) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0.0)


def test_matches_the_cpu_fallback(dist_cuda2):
    from scene.knn import dist2_knn3
    points = torch.rand(30000, 3, generator=torch.Generator().manual_seed(1))
    cpu = dist2_knn3(points)
    torch.testing.assert_close(dist_cuda2(points.cuda()).cpu(), cpu, rtol=1e-6, atol=0.0)


def test_rejects_bad_input(dist_cuda2):
    with pytest.raises(RuntimeError, match="float32"):
        dist_cuda2(torch.rand(10, 3, device="cuda", dtype=torch.float64))
    with pytest.raises(RuntimeError, match=r"\[N, 3\]"):
        dist_cuda2(torch.rand(10, 2, device="cuda"))
