"""Mean squared distance of each point to its 3 nearest OTHER points (initial Gaussian scales).

``dist2_knn3(points)`` is exact on every path:
- CUDA tensors use our simple-knn extension (``utils.cuda_ext.load_knn``); if it cannot be
  loaded, one notice is printed and the exact CPU path is used instead.
- CPU, small N: blocked ``torch.cdist`` (float64) + ``topk``.
- CPU, large N: ``scipy.spatial.cKDTree`` (O(N log N); 1M points take seconds).
Both CPU paths pick neighbours, then recompute the squared distances in float64 from the
coordinates, so the result is the same whichever path ran.

Conventions for degenerate inputs: duplicates of a point are neighbours at distance 0; with
N < 4 the mean is over the N - 1 points that exist; a single point has no neighbour and gets
``SINGLE_POINT_DIST2`` (= the 1e-7 floor ``create_from_pcd`` clamps to anyway); N = 0 gives [0].
"""
from typing import Callable, Optional

import numpy as np
import torch

from utils.cuda_ext import load_knn

NUM_NEIGHBOURS = 3
SINGLE_POINT_DIST2 = 1e-7
KDTREE_MIN_POINTS = 20_000       # below this, blocked cdist is as fast and needs no scipy
CDIST_BLOCK_ELEMENTS = 1 << 23   # rows x N per cdist block: 64 MiB of float64

_cuda_knn: Optional[Callable] = None
_cuda_knn_failed = False


def dist2_knn3(points: torch.Tensor, method: str = "auto") -> torch.Tensor:
    """points [N, 3] -> [N] mean squared distance to the 3 nearest other points (same dtype/device).

    ``method``: "auto" (CUDA kernel for CUDA tensors, else by size), "cdist" or "kdtree" (CPU).
    """
    _check_points(points)
    n = points.shape[0]
    if n == 0:
        return points.new_zeros(0)
    if n == 1:
        return points.new_full((1,), SINGLE_POINT_DIST2)
    if method == "auto" and points.is_cuda:
        cuda_fn = _load_cuda_knn()
        if cuda_fn is not None and n > NUM_NEIGHBOURS:
            return cuda_fn(points.float().contiguous()).to(points.dtype)
    if method == "auto":
        method = "kdtree" if n >= KDTREE_MIN_POINTS else "cdist"
    if method not in ("cdist", "kdtree"):
        raise ValueError(f"dist2_knn3: unknown method {method!r}; use 'auto', 'cdist' or 'kdtree'.")

    coords = points.detach().to("cpu", torch.float64)
    k = min(NUM_NEIGHBOURS, n - 1)
    find = _neighbours_cdist if method == "cdist" else _neighbours_kdtree
    neighbours = find(coords, k)                                     # [N, k] indices
    d2 = (coords[neighbours] - coords[:, None, :]).pow(2).sum(-1)    # [N, k]
    return d2.mean(dim=1).to(points.device, points.dtype)


def _check_points(points: torch.Tensor) -> None:
    if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[1] != 3:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"dist2_knn3 expects a tensor of points [N, 3], got {shape}.")
    bad = (~torch.isfinite(points).all(dim=1)).sum().item()
    if bad:
        raise ValueError(f"dist2_knn3: {bad} of {points.shape[0]} points are NaN or infinite; "
                         "remove them from the point cloud (e.g. points3D) before initialising.")


def _drop_self(candidates: torch.Tensor, k: int) -> torch.Tensor:
    """candidates [N, k+1] nearest indices incl. (usually) the point itself -> [N, k] others.

    With exact duplicates the point itself may rank anywhere among the distance-0 ties, or not be
    returned at all (then all k+1 are at distance 0 and dropping the last one is just as exact).
    """
    n = candidates.shape[0]
    is_self = candidates == torch.arange(n)[:, None]
    no_self = ~is_self.any(dim=1)
    is_self[no_self, -1] = True
    return candidates[~is_self].reshape(n, k)


def _neighbours_cdist(coords: torch.Tensor, k: int) -> torch.Tensor:
    """coords [N, 3] float64 -> [N, k] indices of the nearest other points, by blocks of rows."""
    n = coords.shape[0]
    rows_per_block = max(1, CDIST_BLOCK_ELEMENTS // n)
    blocks = []
    for start in range(0, n, rows_per_block):
        block = coords[start:start + rows_per_block]
        d = torch.cdist(block, coords, compute_mode="donot_use_mm_for_euclid_dist")
        blocks.append(d.topk(k + 1, dim=1, largest=False).indices)
    return _drop_self(torch.cat(blocks), k)


def _neighbours_kdtree(coords: torch.Tensor, k: int) -> torch.Tensor:
    """coords [N, 3] float64 -> [N, k] indices of the nearest other points, with a k-d tree."""
    from scipy.spatial import cKDTree

    array = coords.numpy()
    _, idx = cKDTree(array).query(array, k=k + 1, workers=-1)
    return _drop_self(torch.from_numpy(np.asarray(idx, dtype=np.int64)).reshape(-1, k + 1), k)


def _load_cuda_knn() -> Optional[Callable]:
    """The CUDA kernel, loaded once; None (after one notice) where it cannot be built or imported."""
    global _cuda_knn, _cuda_knn_failed
    if _cuda_knn is None and not _cuda_knn_failed:
        try:
            _cuda_knn = load_knn()
        except Exception as err:  # any build/import problem: the CPU path is exact, only slower
            _cuda_knn_failed = True
            print(f"Note: CUDA kNN unavailable ({type(err).__name__}: {err}); using the exact CPU kNN.")
    return _cuda_knn
