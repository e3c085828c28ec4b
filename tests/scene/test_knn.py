"""dist2_knn3: exact mean squared distance to the 3 nearest other points, on every path."""

import pytest
import torch

import scene.knn as knn
from scene.knn import dist2_knn3


def brute_force(points: torch.Tensor) -> torch.Tensor:
    """All pairs in float64; the point itself excluded; as many neighbours as exist (max 3)."""
    p = points.double()
    d2 = (p[:, None, :] - p[None, :, :]).pow(2).sum(-1)
    d2.fill_diagonal_(float("inf"))
    k = min(3, p.shape[0] - 1)
    return d2.sort(dim=1).values[:, :k].mean(dim=1)


def cloud_with_duplicates(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    points = torch.randn(n, 3, generator=g, dtype=torch.float64)
    points[10:15] = points[3]          # five copies of one point: neighbours at distance 0
    points[20] = points[21]            # a single duplicate pair
    points[30:32] = points[40] + 1e-9  # near-duplicates
    return points


@pytest.mark.parametrize("method", ["cdist", "kdtree"])
def test_matches_brute_force_with_duplicates(method):
    points = cloud_with_duplicates(700)
    result = dist2_knn3(points, method=method)
    assert result.dtype == torch.float64 and result.shape == (700,)
    torch.testing.assert_close(result, brute_force(points), rtol=1e-12, atol=1e-15)
    assert result[3] == 0.0 and result[10] == 0.0   # >= 3 copies of itself
    assert result[20] > 0.0                          # one copy, two other neighbours


@pytest.mark.parametrize("method", ["cdist", "kdtree"])
@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_tiny_clouds_use_the_neighbours_that_exist(method, n):
    points = torch.randn(n, 3, dtype=torch.float64)
    torch.testing.assert_close(dist2_knn3(points, method=method), brute_force(points), rtol=1e-12, atol=0)


def test_two_points_known_value():
    points = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]])
    assert dist2_knn3(points).tolist() == [9.0, 9.0]


def test_single_and_empty_clouds():
    assert dist2_knn3(torch.zeros(1, 3, dtype=torch.float64)).tolist() == [knn.SINGLE_POINT_DIST2]
    assert dist2_knn3(torch.zeros(0, 3)).shape == (0,)


def test_all_identical_points_are_at_distance_zero():
    points = torch.ones(50, 3)
    assert torch.equal(dist2_knn3(points, method="kdtree"), torch.zeros(50))
    assert torch.equal(dist2_knn3(points, method="cdist"), torch.zeros(50))


def test_kdtree_and_cdist_paths_agree_float32():
    points = torch.rand(3000, 3)
    a, b = dist2_knn3(points, method="cdist"), dist2_knn3(points, method="kdtree")
    assert a.dtype == torch.float32
    torch.testing.assert_close(a, b, rtol=1e-6, atol=0)


def test_cdist_blocks_cover_every_row(monkeypatch):
    monkeypatch.setattr(knn, "CDIST_BLOCK_ELEMENTS", 7 * 300)   # 7 rows per block, last block partial
    points = cloud_with_duplicates(300, seed=1)
    torch.testing.assert_close(dist2_knn3(points, method="cdist"), brute_force(points), rtol=1e-12, atol=1e-15)


def test_auto_picks_kdtree_for_large_clouds(monkeypatch):
    calls = []
    real = knn._neighbours_kdtree
    monkeypatch.setattr(knn, "_neighbours_kdtree", lambda c, k: calls.append(len(c)) or real(c, k))
    monkeypatch.setattr(knn, "KDTREE_MIN_POINTS", 100)
    dist2_knn3(torch.rand(99, 3))
    assert calls == []
    dist2_knn3(torch.rand(100, 3))
    assert calls == [100]


def test_large_cloud_rows_are_exact():
    """50k points through the default (k-d tree) path; a sample of rows checked by brute force."""
    g = torch.Generator().manual_seed(2)
    points = torch.rand(50_000, 3, generator=g, dtype=torch.float64)
    points[:1000] = torch.round(points[:1000] * 10) / 10   # a lattice with many exact ties
    result = dist2_knn3(points)
    rows = torch.cat([torch.arange(0, 1000, 13), torch.randint(1000, 50_000, (80,), generator=g)])
    d2 = torch.cdist(points[rows], points, compute_mode="donot_use_mm_for_euclid_dist").pow(2)
    d2[torch.arange(len(rows)), rows] = float("inf")
    expected = d2.topk(3, dim=1, largest=False).values.mean(dim=1)
    torch.testing.assert_close(result[rows], expected, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("bad", [torch.zeros(5, 2), torch.zeros(5), "points"])
def test_rejects_wrong_shapes(bad):
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        dist2_knn3(bad)


def test_rejects_non_finite_points():
    points = torch.rand(10, 3)
    points[4, 1] = float("nan")
    points[7, 0] = float("inf")
    with pytest.raises(ValueError, match="2 of 10 points"):
        dist2_knn3(points)


def test_cuda_loader_failure_gives_one_notice(monkeypatch, capsys):
    def broken_loader():
        raise RuntimeError("nvcc not found")

    monkeypatch.setattr(knn, "load_knn", broken_loader)
    monkeypatch.setattr(knn, "_cuda_knn", None)
    monkeypatch.setattr(knn, "_cuda_knn_failed", False)
    assert knn._load_cuda_knn() is None
    assert knn._load_cuda_knn() is None
    out = capsys.readouterr().out
    assert out.count("CUDA kNN unavailable") == 1 and "nvcc not found" in out


@pytest.mark.cuda
def test_cuda_path_matches_cpu():
    points = cloud_with_duplicates(5000).float()
    result = dist2_knn3(points.cuda())
    assert result.is_cuda
    torch.testing.assert_close(result.cpu().double(), brute_force(points), rtol=1e-4, atol=1e-7)


@pytest.mark.slow
def test_one_million_points_on_cpu():
    """Memory-safe and exact at COLMAP scale (seconds on 2 idle cores)."""
    g = torch.Generator().manual_seed(3)
    points = torch.rand(1_000_000, 3, generator=g)
    result = dist2_knn3(points)
    assert result.shape == (1_000_000,) and torch.isfinite(result).all()
    rows = torch.randint(0, 1_000_000, (50,), generator=g)
    d2 = torch.cdist(points[rows].double(), points.double(), compute_mode="donot_use_mm_for_euclid_dist").pow(2)
    d2[torch.arange(50), rows] = float("inf")
    expected = d2.topk(3, dim=1, largest=False).values.mean(dim=1).float()
    torch.testing.assert_close(result[rows], expected, rtol=1e-5, atol=0)
