"""Speed and memory of the pure-PyTorch reference rasterizer (forward + backward) on the CPU.

    python -m benchmarks.reference_rasterizer [--json benchmarks/results/reference_rasterizer_cpu.json]

Each configuration runs in a fresh subprocess so that its peak resident memory (ru_maxrss, minus
the process's memory before rendering) is its own. The baseline is the naive dense per-pixel
autograd compositing (gaussian_renderer/dense.py) on a case small enough for it, measured in
the same run; the tiled reference is timed on the same case and the ratio printed.
Timings on a shared machine are noisy: the median of --repeats runs is reported.
"""
import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)   # run as a script from anywhere

from gaussian_renderer.reference import GaussianRasterizationSettings, rasterize_gaussians  # noqa: E402
from utils.graphics_utils import getProjectionMatrix

CONFIGS = {  # name: (gaussians, width, height, dense compositing?)
    "baseline_dense_2k_64x48": (2_000, 64, 48, True),
    "tiled_2k_64x48": (2_000, 64, 48, False),
    "tiled_20k_160x120": (20_000, 160, 120, False),
    "tiled_100k_320x240": (100_000, 320, 240, False),
}


def synthetic_scene(n: int, width: int, height: int, seed: int = 0):
    """n Gaussians spread over the view frustum at depth 2..8, footprints of ~0.5-4 px (σ),
    random rotations and opacities, RGB colours and a 3-channel mask feature (EgoMask's K)."""
    g = torch.Generator().manual_seed(seed)
    fovx = math.radians(60.0)
    tanx = math.tan(fovx / 2)
    tany = tanx * height / width
    fx = width / (2 * tanx)
    z = 2.0 + 6.0 * torch.rand(n, generator=g)
    ndc = 2.0 * torch.rand(n, 2, generator=g) - 1.0
    means = torch.stack([ndc[:, 0] * z * tanx, ndc[:, 1] * z * tany, z], 1)
    sigma_px = torch.exp(math.log(0.5) + torch.rand(n, 3, generator=g) * math.log(8.0))
    scales = sigma_px * z[:, None] / fx
    view = torch.eye(4)
    proj = getProjectionMatrix(0.01, 100.0, fovx, 2 * math.atan(tany)).T
    kw = dict(image_height=height, image_width=width, tanfovx=tanx, tanfovy=tany, bg=torch.zeros(3),
              scale_modifier=1.0, viewmatrix=view, projmatrix=view @ proj, sh_degree=0,
              campos=torch.zeros(3), prefiltered=False, debug=False)
    leaf = lambda t: t.requires_grad_(True)
    inputs = dict(means3D=leaf(means), means2D=leaf(torch.zeros(n, 3)),
                  opacities=leaf(0.05 + 0.9 * torch.rand(n, 1, generator=g)),
                  colors_precomp=leaf(torch.rand(n, 3, generator=g)),
                  mask_feature=leaf(torch.rand(n, 3, generator=g)), scales=leaf(scales),
                  rotations=leaf(torch.randn(n, 4, generator=g)))
    return kw, inputs


def forward_backward(kw, inputs, dense: bool) -> float:
    start = time.perf_counter()
    color, depth, feats, _, alpha = rasterize_gaussians(GaussianRasterizationSettings(**kw), **inputs, dense=dense)
    loss = color.mean() + 0.1 * depth.mean() + feats.mean() + alpha.mean()
    loss.backward()
    return time.perf_counter() - start


def run_one(name: str, repeats: int, threads: int) -> dict:
    """Time one configuration in this process; peak memory is this process's."""
    n, width, height, dense = CONFIGS[name]
    torch.set_num_threads(threads)
    kw, inputs = synthetic_scene(n, width, height)
    rss_before = _rss_mb()
    times, cpu_times = [], []
    for _ in range(repeats + 1):  # the first one warms up
        cpu_start = time.process_time()
        times.append(forward_backward(kw, inputs, dense))
        cpu_times.append(time.process_time() - cpu_start)
    times, cpu_times = times[1:], cpu_times[1:]
    radii = rasterize_gaussians(GaussianRasterizationSettings(**kw), **inputs, dense=dense)[3]
    return {"config": name, "gaussians": n, "width": width, "height": height,
            "compositing": "dense autograd" if dense else "tiled",
            "visible": int((radii > 0).sum()), "mean_radius_px": float(radii[radii > 0].float().mean()),
            "threads": threads, "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "median_cpu_s": statistics.median(cpu_times),
            "peak_rss_mb_above_start": _peak_rss_mb() - rss_before, "repeats": repeats}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="torch CPU threads to try")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run in a subprocess
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.repeats, args.threads[0])))
        return

    rows = []
    for threads in args.threads:
        for name in args.configs:
            out = subprocess.run([sys.executable, "-m", "benchmarks.reference_rasterizer", "--one", name,
                                  "--repeats", str(args.repeats), "--threads", str(threads)],
                                 capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{name:>26} ({threads} thr): {row['median_s'] * 1000:8.1f} ms fwd+bwd wall, "
                  f"{row['median_cpu_s'] * 1000:8.1f} ms CPU (median of {row['repeats']}, min wall "
                  f"{row['min_s'] * 1000:.1f}), peak +{row['peak_rss_mb_above_start']:.0f} MB, "
                  f"{row['visible']} visible, mean radius {row['mean_radius_px']:.1f} px")
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    summary = {"device": "cpu", "cpu_count": os.cpu_count(), "torch": torch.__version__,
               "load_average_at_end": load, "results": rows,
               "note": "shared 2-core machine with other engineers' jobs running: wall times are noisy "
                       "and 2 threads suffer most from the contention; CPU time is steadier"}
    for threads in args.threads:
        pick = {r["config"]: r for r in rows if r["threads"] == threads}
        if "baseline_dense_2k_64x48" in pick and "tiled_2k_64x48" in pick:
            ratio = pick["baseline_dense_2k_64x48"]["median_s"] / pick["tiled_2k_64x48"]["median_s"]
            summary[f"speedup_tiled_vs_dense_2k_64x48_{threads}_threads"] = ratio
            print(f"{threads} thread(s): tiled reference is {ratio:.1f}x faster than the dense baseline "
                  "on the same case")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
