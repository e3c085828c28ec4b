"""Small maths helpers shared by the Gaussian model, the renderer and training."""
import os
import random

import numpy as np
import torch


def inverse_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.log(x / (1 - x))


def get_expon_lr_func(lr_init: float, lr_final: float, lr_delay_steps: int = 0,
                      lr_delay_mult: float = 1.0, max_steps: int = 1_000_000):
    """Log-linear interpolation from lr_init to lr_final over max_steps, with an optional
    cosine-eased warm-up of lr_delay_steps starting at lr_delay_mult (as in Plenoxels / 3DGS)."""

    def lr_at(step: int) -> float:
        if step < 0 or (lr_init == 0.0 and lr_final == 0.0):
            return 0.0
        if lr_delay_steps > 0:
            delay = lr_delay_mult + (1 - lr_delay_mult) * np.sin(0.5 * np.pi * np.clip(step / lr_delay_steps, 0, 1))
        else:
            delay = 1.0
        t = np.clip(step / max_steps, 0, 1)
        return float(delay * np.exp(np.log(lr_init) * (1 - t) + np.log(lr_final) * t))

    return lr_at


def build_rotation(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [N, 3, 3] from quaternions [N, 4] (w, x, y, z), normalized here; a zero
    quaternion gives the identity (its norm is clamped) so nothing turns NaN."""
    q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(dim=1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=1).reshape(-1, 3, 3)


def build_covariance(scales: torch.Tensor, rotations: torch.Tensor, scale_modifier: float = 1.0) -> torch.Tensor:
    """Σ = R S Sᵀ Rᵀ as [N, 3, 3] from activated scales [N, 3] and quaternions [N, 4]."""
    L = build_rotation(rotations) * (scales * scale_modifier)[:, None, :]
    return L @ L.transpose(1, 2)


def strip_symmetric(sym: torch.Tensor) -> torch.Tensor:
    """Upper triangle (xx, xy, xz, yy, yz, zz) [N, 6] of symmetric matrices [N, 3, 3]."""
    i, j = torch.triu_indices(3, 3, device=sym.device)
    return sym[:, i, j]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


SMALL_MACHINE_CORES = 2


def set_cpu_threads(requested: int, device=None) -> int:
    """PyTorch's CPU threads for a run on device (None: the CPU); returns the count in use. A GPU
    run keeps PyTorch's setting (its work is not on these threads). OMP_NUM_THREADS in the
    environment always wins. requested > 0: that many; 0: PyTorch's default (one per core);
    -1 (automatic, train.py's default): 1 on machines with at most SMALL_MACHINE_CORES cores,
    else PyTorch's default.

    Why: on a 2-core machine shared with other work, two OpenMP threads wait on each other;
    benchmarks/cpu_threads.py measured the demo's training at 1.5 it/s with PyTorch's 2 threads
    and 4.9 it/s with 1 while one busy process ran beside it, against 5.6 and 4.5 it/s on the idle
    machine (benchmarks/results/cpu_threads_2core.json). Larger machines were not measured."""
    on_cpu = device is None or torch.device(device).type == "cpu"
    if on_cpu and "OMP_NUM_THREADS" not in os.environ:
        if requested < 0:
            requested = 1 if (os.cpu_count() or 1) <= SMALL_MACHINE_CORES else 0
        if requested > 0:
            torch.set_num_threads(requested)
    return torch.get_num_threads()
