"""Rasterizer benchmark: forward and forward+backward median time and peak memory, ours vs gsplat.

    python benchmarks/rasterizer.py --out benchmarks/results/rasterizer_h100.json [--sizes 100000 500000 1000000]

Workload (1280x720, fx = fy = 1000, identity pose): view z ~ U[2, 10], x ~ U(±0.7 z), y ~ U(±0.4 z);
log-scales ~ N(-4, 0.5); random unit quaternions; opacity sigmoid(N(0, 1)); SH degree 3 with
coefficients ~ N(0, 0.2); 3 mask channels ~ U(0, 1). Loss = sum of colour, depth and feature map.
gsplat (when importable) renders the same Gaussians with render_mode="RGB+ED", its SH colours and
the mask channels as 6 colour channels, in the same run. Times are CUDA-event medians.
"""
import argparse
import json
import math
import os
import statistics
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from utils.graphics_utils import getProjectionMatrix  # noqa: E402

WIDTH, HEIGHT, FOCAL = 1280, 720, 1000.0


def make_workload(n: int, seed: int = 0, device="cuda") -> dict:
    g = torch.Generator(device=device).manual_seed(seed)
    z = 2.0 + 8.0 * torch.rand(n, generator=g, device=device)
    x = (torch.rand(n, generator=g, device=device) * 2 - 1) * 0.7 * z
    y = (torch.rand(n, generator=g, device=device) * 2 - 1) * 0.4 * z
    quats = torch.randn(n, 4, generator=g, device=device)
    return dict(
        means=torch.stack([x, y, z], 1),
        scales=torch.exp(-4.0 + 0.5 * torch.randn(n, 3, generator=g, device=device)),
        quats=quats / quats.norm(dim=1, keepdim=True),
        opacities=torch.sigmoid(torch.randn(n, generator=g, device=device)),
        shs=0.2 * torch.randn(n, 16, 3, generator=g, device=device),
        masks=torch.rand(n, 3, generator=g, device=device),
    )


def leaves(workload: dict) -> dict:
    return {k: v.detach().clone().requires_grad_(True) for k, v in workload.items()}


def ours_step(module, settings):
    def step(p, backward: bool):
        means2D = torch.zeros_like(p["means"], requires_grad=True)
        color, depth, feature_map, _, _ = module.GaussianRasterizer(settings)(
            means3D=p["means"], means2D=means2D, opacities=p["opacities"][:, None], shs=p["shs"],
            mask_feature=p["masks"], scales=p["scales"], rotations=p["quats"])
        if backward:
            (color.sum() + depth.sum() + feature_map.sum()).backward()
    return step


def ours_settings(module):
    tanfovx, tanfovy = WIDTH / (2 * FOCAL), HEIGHT / (2 * FOCAL)
    view = torch.eye(4, device="cuda")
    proj = getProjectionMatrix(0.01, 100.0, 2 * math.atan(tanfovx), 2 * math.atan(tanfovy)).T.cuda()
    return module.GaussianRasterizationSettings(
        image_height=HEIGHT, image_width=WIDTH, tanfovx=tanfovx, tanfovy=tanfovy,
        bg=torch.zeros(3, device="cuda"), scale_modifier=1.0, viewmatrix=view, projmatrix=view @ proj,
        sh_degree=3, campos=torch.zeros(3, device="cuda"), prefiltered=False, debug=False)


def gsplat_step(packed: bool):
    import gsplat

    viewmats = torch.eye(4, device="cuda")[None]
    Ks = torch.tensor([[FOCAL, 0, WIDTH / 2], [0, FOCAL, HEIGHT / 2], [0, 0, 1]], device="cuda")[None]

    def step(p, backward: bool):
        rgb = gsplat.spherical_harmonics(3, p["means"], p["shs"])  # camera at the origin: dirs = means
        colors = torch.cat([torch.clamp_min(rgb + 0.5, 0.0), p["masks"]], dim=1)
        render, _, _ = gsplat.rasterization(
            p["means"], p["quats"], p["scales"], p["opacities"], colors, viewmats, Ks, WIDTH, HEIGHT,
            near_plane=0.2, render_mode="RGB+ED", packed=packed)
        if backward:
            render.sum().backward()
    return step


def measure(step, params: dict, backward: bool, repeats: int, warmup: int = 3) -> dict:
    """Median milliseconds over `repeats` calls, and the peak memory of one call above the inputs."""
    for _ in range(warmup):
        step(params, backward)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        for v in params.values():
            v.grad = None
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step(params, backward)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    for v in params.values():
        v.grad = None
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step(params, backward)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    for v in params.values():
        v.grad = None
    return {"median_ms": round(statistics.median(times), 3), "min_ms": round(min(times), 3),
            "peak_extra_mib": round(peak / 2**20, 1)}


def profile(name: str, step, params: dict, rows: int = 14) -> None:
    """Print where one forward+backward spends its GPU time, kernel by kernel."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    step(params, True)
    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            step(params, True)
        torch.cuda.synchronize()
    for v in params.values():
        v.grad = None
    events = prof.key_averages()
    key = "device_time_total" if hasattr(events[0], "device_time_total") else "cuda_time_total"
    print(f"--- {name}: GPU time per kernel over 5 forward+backward calls")
    print(events.table(sort_by=key, row_limit=rows, max_name_column_width=70))


def _git_commit():
    import subprocess
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 500_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "rasterizer.json"))
    parser.add_argument("--no-gsplat", action="store_true")
    parser.add_argument("--profile", type=int, default=0, help="also print a kernel breakdown at this N")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("benchmarks/rasterizer.py needs a CUDA GPU.")

    from utils.cuda_ext import load_rasterizer
    ours = ours_step(load_rasterizer(), ours_settings(load_rasterizer()))
    peers, peer_note = {}, None
    if not args.no_gsplat:
        try:
            import gsplat
            peers = {"gsplat": gsplat_step(packed=False), "gsplat_packed": gsplat_step(packed=True)}
            peer_note = f"gsplat {gsplat.__version__} (packed=False and its default packed=True)"
        except Exception as err:  # not installed, or its JIT build failed
            peer_note = f"gsplat unavailable: {type(err).__name__}: {err}"
            print(peer_note)

    if args.profile:
        params = leaves(make_workload(args.profile))
        for name, step in dict(ours=ours, **peers).items():
            profile(name, step, params)
        del params
        torch.cuda.empty_cache()

    rows = []
    for n in args.sizes:
        params = leaves(make_workload(n))
        row = {"n": n}
        for name, step in dict(ours=ours, **peers).items():
            row[name] = {"forward": measure(step, params, False, args.repeats),
                         "forward_backward": measure(step, params, True, args.repeats)}
        if peers:  # against the faster gsplat mode
            best = lambda phase: min(row[p][phase]["median_ms"] for p in peers)
            row["speedup_forward_backward"] = round(best("forward_backward") / row["ours"]["forward_backward"]["median_ms"], 3)
            row["speedup_forward"] = round(best("forward") / row["ours"]["forward"]["median_ms"], 3)
        rows.append(row)
        del params
        torch.cuda.empty_cache()

    report = {"commit": _git_commit(), "device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
              "resolution": [WIDTH, HEIGHT], "peer": peer_note, "workload": " ".join(__doc__.split("\n\n")[2].split()), "results": rows}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\n{report['device']}  {WIDTH}x{HEIGHT}  ({peer_note or 'no peer'})")
    print(f"{'N':>9} | {'ours fwd':>9} {'ours f+b':>9} {'ours MiB':>9} | {'gsplat fwd':>9} {'peer f+b':>9} {'peer MiB':>9} | f+b speedup")
    for r in rows:
        o = r["ours"]
        p = min((r[k] for k in ("gsplat", "gsplat_packed") if k in r),
                key=lambda v: v["forward_backward"]["median_ms"], default=None)
        peer_cols = (f"{p['forward']['median_ms']:9.2f} {p['forward_backward']['median_ms']:9.2f} "
                     f"{p['forward_backward']['peak_extra_mib']:9.0f}") if p else f"{'-':>9} {'-':>9} {'-':>9}"
        print(f"{r['n']:>9} | {o['forward']['median_ms']:9.2f} {o['forward_backward']['median_ms']:9.2f} "
              f"{o['forward_backward']['peak_extra_mib']:9.0f} | {peer_cols} | {r.get('speedup_forward_backward', '-')}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
