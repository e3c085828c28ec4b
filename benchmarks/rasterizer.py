"""Rasterizer benchmark: forward and forward+backward median time and peak memory, ours vs gsplat.

    python benchmarks/rasterizer.py --out benchmarks/results/rasterizer_h100.json [--sizes 100000 500000 1000000]
    python benchmarks/rasterizer.py --model output/scene [--iteration N] [--cameras 3]   # also a trained scene
    python benchmarks/rasterizer.py --model output/scene --device cpu --repeats 3        # reference rasterizer only

Workload (1280x720, fx = fy = 1000, identity pose): view z ~ U[2, 10], x ~ U(±0.7 z), y ~ U(±0.4 z);
log-scales ~ N(-4, 0.5); random unit quaternions; opacity sigmoid(N(0, 1)); SH degree 3 with
coefficients ~ N(0, 0.2); 3 mask channels ~ U(0, 1). Loss = sum of colour, depth and feature map.
gsplat (when importable) renders the same Gaussians with render_mode="RGB+ED", its SH colours and
the mask channels as 6 colour channels, in the same run. Times are CUDA-event medians. agreement_psnr:
PSNR of gsplat's colour + mask image against ours (same inputs), to show both draw the same picture.

Trained scene (--model, a folder written by train.py): its Gaussians (point_cloud/iteration_N), deformed
by its network (deform/iteration_N) at the times of --cameras views spread evenly over the time-ordered
train+test cameras, drawn at each camera's resolution, pose, field of view and principal point with the
model's SH degree and mask channels. The deformation runs once per view before timing (not timed); the
same loss, and gsplat with the same conversion (SH colours seen from the camera centre + mask channels,
render_mode="RGB+ED"). Written under "trained_scene" in the same JSON. With --device cpu only this part
runs, with the PyTorch reference rasterizer and no gsplat; times are then wall-clock medians and peak
memory is not measured (null).
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import command_line  # noqa: E402
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
            mask_feature=p["masks"] if p["masks"].shape[1] > 0 else None, scales=p["scales"], rotations=p["quats"])
        if backward:
            (color.sum() + depth.sum() + feature_map.sum()).backward()
        return torch.cat([color, feature_map], 0)  # [3 + K, H, W], for the agreement check
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
    viewmats = torch.eye(4, device="cuda")[None]
    Ks = torch.tensor([[FOCAL, 0, WIDTH / 2], [0, FOCAL, HEIGHT / 2], [0, 0, 1]], device="cuda")[None]
    return gsplat_view_step(viewmats, Ks, WIDTH, HEIGHT, sh_degree=3, campos=None, packed=packed)


def gsplat_view_step(viewmats, Ks, width: int, height: int, sh_degree: int, campos, packed: bool):
    """gsplat on one view: viewmats [1,4,4] world-to-camera (column vectors), Ks [1,3,3] in pixels;
    SH colours seen from campos [3] (None: the camera is at the origin, dirs = means)."""
    import gsplat

    def step(p, backward: bool):
        dirs = p["means"] if campos is None else p["means"] - campos
        rgb = gsplat.spherical_harmonics(sh_degree, dirs, p["shs"])
        colors = torch.cat([torch.clamp_min(rgb + 0.5, 0.0), p["masks"]], dim=1)
        render, _, _ = gsplat.rasterization(
            p["means"], p["quats"], p["scales"], p["opacities"], colors, viewmats, Ks, width, height,
            near_plane=0.2, render_mode="RGB+ED", packed=packed)
        if backward:
            render.sum().backward()
        return render[0, ..., :-1].permute(2, 0, 1)  # colour + mask channels [3 + K, H, W], depth dropped
    return step


def measure(step, params: dict, backward: bool, repeats: int, warmup: int = 3) -> dict:
    """Median milliseconds over `repeats` calls, and the peak memory of one call above the inputs.
    Tensors on the CPU: wall-clock times and no memory figure (peak_extra_mib None)."""
    if next(iter(params.values())).device.type != "cuda":
        return measure_cpu(step, params, backward, repeats, warmup)
    for _ in range(warmup):
        step(params, backward)
    torch.cuda.synchronize()
    times = [time_call(step, params, backward) for _ in range(repeats)]
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


def time_call(step, params: dict, backward: bool) -> float:
    """Milliseconds of one call on the GPU (CUDA events), gradients cleared first."""
    for v in params.values():
        v.grad = None
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    step(params, backward)
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def measure_cpu(step, params: dict, backward: bool, repeats: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        step(params, backward)
    times = []
    for _ in range(repeats):
        for v in params.values():
            v.grad = None
        start = time.perf_counter()
        step(params, backward)
        times.append(1000.0 * (time.perf_counter() - start))
    for v in params.values():
        v.grad = None
    return {"median_ms": round(statistics.median(times), 3), "min_ms": round(min(times), 3), "peak_extra_mib": None}


@torch.no_grad()
def agreement(steps: dict, params: dict) -> dict:
    """PSNR (peak 1) of each peer's colour + mask-channel image against ours on the same inputs: a
    check that both draw the same picture (camera, principal point and pixel-centre conventions),
    so that the timings compare the same work."""
    ours = steps["ours"](params, False)
    out = {}
    for name, step in steps.items():
        if name != "ours":
            mse = torch.mean((step(params, False) - ours) ** 2).item()
            out[name] = round(10 * math.log10(1.0 / mse), 2) if mse > 0 else None  # None: identical
    return out


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


# --- trained scene ---------------------------------------------------------------------------
def pick_cameras(cameras: list, count: int) -> list:
    """`count` views spread evenly over the time-ordered cameras (first and last included)."""
    ordered = sorted(cameras, key=lambda c: (float(c.fid), c.image_name))
    if count >= len(ordered):
        return ordered
    if count == 1:
        return [ordered[len(ordered) // 2]]
    picks = sorted({int(i * (len(ordered) - 1) / (count - 1) + 0.5) for i in range(count)})
    return [ordered[i] for i in picks]


@torch.no_grad()
def deformed_gaussians(gaussians, deform, fid: float, is_6dof: bool, device) -> dict:
    """The trained Gaussians deformed at time fid, as the benchmark's activated inputs on device."""
    from gaussian_renderer import _deformed_means

    xyz = gaussians.get_xyz
    d_xyz, d_rotation, d_scaling = deform.offsets(xyz, fid)
    quats = gaussians.get_rotation + d_rotation
    values = dict(
        means=_deformed_means(xyz, d_xyz, is_6dof),
        scales=gaussians.get_scaling + d_scaling,
        quats=quats / quats.norm(dim=1, keepdim=True),  # ours normalizes inside; gsplat gets unit ones too
        opacities=gaussians.get_opacity[:, 0],
        shs=gaussians.get_features,
        masks=gaussians.get_mask,
    )
    return {k: v.detach().to(device).contiguous() for k, v in values.items()}


def view_settings(module, camera, sh_degree: int, device):
    """Our rasterizer's settings for a scene camera (as gaussian_renderer.render builds them)."""
    return module.GaussianRasterizationSettings(
        image_height=int(camera.image_height), image_width=int(camera.image_width),
        tanfovx=math.tan(camera.FoVx * 0.5), tanfovy=math.tan(camera.FoVy * 0.5),
        bg=torch.zeros(3, device=device), scale_modifier=1.0,
        viewmatrix=camera.world_view_transform.to(device), projmatrix=camera.full_proj_transform.to(device),
        sh_degree=sh_degree, campos=camera.camera_center.to(device), prefiltered=False, debug=False)


def gsplat_camera(camera, device):
    """gsplat's viewmats [1,4,4] and Ks [1,3,3] for a scene camera. world_view_transform is stored
    transposed (row vectors), gsplat wants the world-to-camera matrix for column vectors. Both put
    pixel x's centre at u = x + 0.5 with the principal point at cx (the centre when cx is None)."""
    width, height = int(camera.image_width), int(camera.image_height)
    fx = width / (2.0 * math.tan(camera.FoVx * 0.5))
    fy = height / (2.0 * math.tan(camera.FoVy * 0.5))
    cx = width / 2.0 if camera.cx is None else float(camera.cx)
    cy = height / 2.0 if camera.cy is None else float(camera.cy)
    viewmats = camera.world_view_transform.to(device=device, dtype=torch.float32).T.contiguous()[None]
    Ks = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], device=device)[None]
    return viewmats, Ks


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def benchmark_trained_scene(model_path: str, iteration: int, device, num_cameras: int, repeats: int,
                            warmup: int, peer_modes: dict) -> dict:
    """Time ours (and gsplat, peer_modes = {name: packed}) on a trained model's deformed Gaussians."""
    from benchmarks.synthetic_quality import load_model
    from gaussian_renderer.backend import get_rasterizer

    device = torch.device(device)
    dataset, _pipe, scene, gaussians, deform = load_model(model_path, iteration)
    sh_degree = gaussians.active_sh_degree
    rasterizer = "cuda" if device.type == "cuda" else "torch"
    module = get_rasterizer(rasterizer, device)
    cameras = pick_cameras(scene.getTrainCameras() + scene.getTestCameras(), num_cameras)
    if not cameras:
        raise ValueError(f"The model at {model_path!r} has no cameras (source {dataset.source_path!r}).")

    rows = []
    for camera in cameras:
        params = leaves(deformed_gaussians(gaussians, deform, camera.fid, dataset.is_6dof, device))
        steps = {"ours": ours_step(module, view_settings(module, camera, sh_degree, device))}
        if peer_modes:
            viewmats, Ks = gsplat_camera(camera, device)
            for name, packed in peer_modes.items():
                steps[name] = gsplat_view_step(viewmats, Ks, int(camera.image_width), int(camera.image_height),
                                               sh_degree, camera.camera_center.to(device), packed)
        row = {"image_name": camera.image_name, "fid": round(float(camera.fid), 6),
               "resolution": [int(camera.image_width), int(camera.image_height)]}
        for name, step in steps.items():
            row[name] = {"forward": measure(step, params, False, repeats, warmup),
                         "forward_backward": measure(step, params, True, repeats, warmup)}
        if peer_modes:
            row["agreement_psnr"] = agreement(steps, params)
        _add_speedups(row, list(peer_modes))
        rows.append(row)
        del params, steps
        if device.type == "cuda":
            torch.cuda.empty_cache()

    summary = {}
    for name in ["ours", *peer_modes]:
        summary[name] = {phase: {"median_ms": _median([r[name][phase]["median_ms"] for r in rows]),
                                 "peak_extra_mib": max((r[name][phase]["peak_extra_mib"] for r in rows
                                                        if r[name][phase]["peak_extra_mib"] is not None), default=None)}
                         for phase in ("forward", "forward_backward")}
    _add_speedups(summary, list(peer_modes))
    resolutions = sorted({tuple(r["resolution"]) for r in rows})
    return {
        "model": os.path.abspath(model_path), "source_path": dataset.source_path, "iteration": scene.loaded_iter,
        "num_gaussians": int(gaussians.get_xyz.shape[0]), "sh_degree": sh_degree,
        "mask_channels": int(gaussians.get_mask.shape[1]), "is_6dof": bool(dataset.is_6dof),
        "resolution": list(resolutions[0]) if len(resolutions) == 1 else [list(r) for r in resolutions],
        "device": str(device), "rasterizer": rasterizer, "repeats": repeats, "warmup": warmup,
        "timing": "CUDA-event medians" if device.type == "cuda" else "wall-clock medians (CPU), no memory figure",
        "cameras": rows,
        "median_over_cameras": summary,  # per backend and phase: median of the per-view medians, max peak
        **{k: v for k, v in summary.items() if k.startswith("speedup_")},
    }


def _add_speedups(row: dict, peers: list) -> None:
    """speedup = the faster gsplat mode's median / ours (as the random workload rows)."""
    if not peers:
        return
    for phase in ("forward_backward", "forward"):
        best = min(row[p][phase]["median_ms"] for p in peers)
        row[f"speedup_{phase}"] = round(best / row["ours"][phase]["median_ms"], 3)


def print_trained_scene(entry: dict) -> None:
    print(f"\ntrained scene {entry['model']} (iteration {entry['iteration']}): N = {entry['num_gaussians']}, "
          f"{entry['resolution']}, {entry['rasterizer']} on {entry['device']}")
    print(f"{'view':>12} {'fid':>6} | {'ours fwd':>9} {'ours f+b':>9} {'ours MiB':>9} | "
          f"{'peer fwd':>9} {'peer f+b':>9} {'peer MiB':>9} | f+b speedup")
    for r in entry["cameras"]:
        print(f"{r['image_name'][:12]:>12} {r['fid']:6.3f} | {timing_columns(r['ours'])} | "
              f"{timing_columns(faster_peer(r))} | {r.get('speedup_forward_backward', '-')}"
              f"{agreement_text(r)}")


def agreement_text(row: dict) -> str:
    return f"   (images agree: {row['agreement_psnr']} dB)" if row.get("agreement_psnr") else ""


def faster_peer(row: dict):
    """The faster of gsplat's unpacked and packed timings in a result row, or None."""
    return min((row[k] for k in ("gsplat", "gsplat_packed") if k in row),
               key=lambda v: v["forward_backward"]["median_ms"], default=None)


def timing_columns(timing) -> str:
    """'fwd f+b MiB' columns of one backend's timing (dashes where absent)."""
    if timing is None:
        return f"{'-':>9} {'-':>9} {'-':>9}"
    mib = timing["forward_backward"]["peak_extra_mib"]
    mib_column = f"{'-':>9}" if mib is None else f"{mib:9.0f}"
    return f"{timing['forward']['median_ms']:9.2f} {timing['forward_backward']['median_ms']:9.2f} {mib_column}"


def _git_commit():
    import subprocess
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=None,
                        help="random-workload sizes (default 100000 500000 1000000 on CUDA; none with --device cpu; "
                             "pass --sizes alone to time only the trained scene)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before each measurement")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "rasterizer.json"))
    parser.add_argument("--no-gsplat", action="store_true")
    parser.add_argument("--profile", type=int, default=0, help="also print a kernel breakdown at this N")
    parser.add_argument("--model", default=None, help="also time this trained model folder (train.py -m)")
    parser.add_argument("--iteration", type=int, default=-1, help="with --model: its saved iteration (-1 = latest)")
    parser.add_argument("--cameras", type=int, default=3, help="with --model: views timed, spread over time")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: only the trained scene, with the PyTorch reference rasterizer, no gsplat")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        if args.model is None:
            parser.error("--device cpu times only a trained scene: pass --model MODEL_PATH.")
        if args.sizes:
            parser.error("the random workload needs CUDA: leave --sizes out with --device cpu.")
        if args.profile:
            parser.error("--profile needs CUDA.")
    elif not torch.cuda.is_available():
        sys.exit("benchmarks/rasterizer.py needs a CUDA GPU (or --device cpu --model MODEL_PATH).")
    if args.cameras < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--cameras and --repeats must be >= 1, --warmup >= 0.")
    sizes = args.sizes if args.sizes is not None else ([100_000, 500_000, 1_000_000] if args.device == "cuda" else [])
    if args.model is not None and not os.path.isdir(args.model):
        print(f"Error: --model {args.model!r} is not a folder: pass a model folder written by train.py -m.", file=sys.stderr)
        sys.exit(2)

    cuda = args.device == "cuda"
    peers, peer_modes, peer_note = {}, {}, None
    if cuda and not args.no_gsplat:
        try:
            import gsplat
            peer_modes = {"gsplat": False, "gsplat_packed": True}
            peers = {name: gsplat_step(packed=packed) for name, packed in peer_modes.items()}
            peer_note = f"gsplat {gsplat.__version__} (packed=False and its default packed=True)"
        except Exception as err:  # not installed, or its JIT build failed
            peers, peer_modes = {}, {}
            peer_note = f"gsplat unavailable: {type(err).__name__}: {err}"
            print(peer_note)
    elif not cuda:
        peer_note = "gsplat not run on the CPU"

    rows = []
    if sizes or args.profile:
        from utils.cuda_ext import load_rasterizer
        ours = ours_step(load_rasterizer(), ours_settings(load_rasterizer()))

    if args.profile:
        params = leaves(make_workload(args.profile))
        for name, step in dict(ours=ours, **peers).items():
            profile(name, step, params)
        del params
        torch.cuda.empty_cache()

    for n in sizes:
        params = leaves(make_workload(n))
        row = {"n": n}
        for name, step in dict(ours=ours, **peers).items():
            row[name] = {"forward": measure(step, params, False, args.repeats, args.warmup),
                         "forward_backward": measure(step, params, True, args.repeats, args.warmup)}
        if peers:  # against the faster gsplat mode
            row["agreement_psnr"] = agreement(dict(ours=ours, **peers), params)
            best = lambda phase: min(row[p][phase]["median_ms"] for p in peers)
            row["speedup_forward_backward"] = round(best("forward_backward") / row["ours"]["forward_backward"]["median_ms"], 3)
            row["speedup_forward"] = round(best("forward") / row["ours"]["forward"]["median_ms"], 3)
        rows.append(row)
        del params
        torch.cuda.empty_cache()

    trained = None
    if args.model is not None:
        from scene.readers.dataset_types import DatasetError
        try:
            trained = benchmark_trained_scene(args.model, args.iteration, args.device, args.cameras, args.repeats,
                                              args.warmup, peer_modes)
        except (DatasetError, FileNotFoundError) as err:
            print(f"Error: {err}", file=sys.stderr)
            sys.exit(2)

    device_name = torch.cuda.get_device_name() if cuda else f"CPU ({platform.processor() or platform.machine()})"
    report = {"command": command_line(__file__, argv),
              "commit": _git_commit(), "device": device_name, "torch": torch.__version__, "cuda": torch.version.cuda,
              "resolution": [WIDTH, HEIGHT], "peer": peer_note, "workload": " ".join(__doc__.split("\n\n")[2].split()), "results": rows}
    if trained is not None:
        report["trained_scene"] = trained
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\n{report['device']}  ({peer_note or 'no peer'})")
    if rows:
        print(f"random workload, {WIDTH}x{HEIGHT}")
        print(f"{'N':>9} | {'ours fwd':>9} {'ours f+b':>9} {'ours MiB':>9} | {'gsplat fwd':>9} {'peer f+b':>9} {'peer MiB':>9} | f+b speedup")
    for r in rows:
        print(f"{r['n']:>9} | {timing_columns(r['ours'])} | {timing_columns(faster_peer(r))} | "
              f"{r.get('speedup_forward_backward', '-')}{agreement_text(r)}")
    if trained is not None:
        print_trained_scene(trained)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
