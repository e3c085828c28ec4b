"""Training speed, baseline against the default, on the same scenes in one run: one JSON.

Each variant trains each scene with train.py through every phase of the EgoMask schedule
scaled to --iterations (warm-up, depth, mask, colour), one run after the other so that no two
share the GPU. train.py's train_summary.json gives per phase the steps, their seconds (training
steps alone), it/s and peak GPU memory (torch.cuda.max_memory_allocated, reset per phase), plus
the final Gaussian count and test PSNR. The baseline is today's default trained with
--speed_baseline (the deformation network on every Gaussian in fp32, losses read on the host at
every step); ratios are variant it/s over baseline it/s, phase by phase.

    python benchmarks/training_speed.py --out OUT                       # synthetic 640x360, 40 frames
    python benchmarks/training_speed.py --out OUT --scene glass=data/glass --iterations 6000
    python benchmarks/training_speed.py --out OUT --variant 'bf16=--deform_precision bf16'

Writes OUT/training_speed.json (and the logs); copy it to benchmarks/results/ with its command.
"""
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from argparse import ArgumentParser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import (add_run_size_arguments, device_name, parse_named, split_common_flags,  # noqa: E402
                               synthetic_scene)
from utils.schedule import scaled_schedule  # noqa: E402

DEFAULT_VARIANTS = ["baseline=--speed_baseline", "default="]


def train_once(scene: str, source: str, variant: str, flags, schedule, common, out: str) -> dict:
    model = os.path.join(out, f"{scene}_{variant}")
    command = [sys.executable, "train.py", "-s", source, "-m", model, "--eval", "--quiet", "--overwrite"] \
        + schedule + common + flags
    start = time.perf_counter()
    with open(model + ".log", "w") as log:
        code = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - start
    if code != 0:
        return {"scene": scene, "variant": variant, "flags": flags, "error": f"train.py exited {code}; see {model}.log"}
    with open(os.path.join(model, "train_summary.json")) as f:
        summary = json.load(f)
    final = max(summary["test_psnr"], key=int) if summary["test_psnr"] else None
    return {"scene": scene, "variant": variant, "flags": flags, "wall_seconds": wall,
            "iterations_per_second": summary["iterations_per_second"],
            "deformation_it_per_s": deformation_speed(summary["phases"]),
            "phases": summary["phases"], "gaussians": summary["num_gaussians"],
            "peak_memory_mb": max((p["peak_memory_mb"] for p in summary["phases"].values()), default=0.0),
            "test_psnr": summary["test_psnr"][final] if final else None}


def deformation_speed(phases: dict):
    """it/s over every phase in which the deformation runs (all but the warm-up)."""
    moving = [p for name, p in phases.items() if name != "warm-up"]
    seconds = sum(p["seconds"] for p in moving)
    return sum(p["steps"] for p in moving) / seconds if seconds > 0 else None


def add_ratios(rows, baseline: str) -> None:
    base = {r["scene"]: r for r in rows if r["variant"] == baseline and "error" not in r}
    for row in rows:
        ref = base.get(row["scene"])
        if ref is None or "error" in row:
            continue
        row["speedup_deformation"] = row["deformation_it_per_s"] / ref["deformation_it_per_s"]
        row["speedup_per_phase"] = {name: p["it_per_s"] / ref["phases"][name]["it_per_s"]
                                    for name, p in row["phases"].items() if name in ref["phases"]}
        row["psnr_change_db"] = (row["test_psnr"] - ref["test_psnr"]) if row["test_psnr"] and ref["test_psnr"] else None
        row["peak_memory_ratio"] = row["peak_memory_mb"] / ref["peak_memory_mb"] if ref["peak_memory_mb"] else None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    argv, common = split_common_flags(argv)
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_run_size_arguments(parser, frames=40, width=640, height=360, llffhold=8)
    parser.add_argument("--scene", action="append", default=[],
                        help="NAME=FOLDER of a converted scene, repeatable (the synthetic scene is always run)")
    parser.add_argument("--no_synthetic", action="store_true")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=FLAGS, repeatable; baseline and default are always run first")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    scenes = []
    if not args.no_synthetic:
        folder = os.path.join(args.out, f"synthetic_{args.width}x{args.height}_{args.frames}f")
        scenes.append(("synthetic", synthetic_scene(folder, args.frames, args.width, args.height)))
    for text in args.scene:
        name, folder = parse_named(text, "--scene")
        if not os.path.isdir(folder):
            print(f"--scene {text}: no folder {folder}; skipped.")
            continue
        scenes.append((name, os.path.abspath(folder)))
    variants = [parse_named(v, "--variant") for v in DEFAULT_VARIANTS + args.variant]
    schedule = scaled_schedule(args.iterations) + ["--llffhold", str(args.llffhold)]
    rows = []
    for scene, source in scenes:
        for variant, flags in variants:
            row = train_once(scene, source, variant, shlex.split(flags), schedule, common, args.out)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "phases"}))
    add_ratios(rows, baseline="baseline")
    result = {"command": "python benchmarks/training_speed.py " + " ".join(shlex.quote(a) for a in argv)
              + ((" -- " + " ".join(shlex.quote(a) for a in common)) if common else ""),
              "machine": platform.node(), "python": platform.python_version(), "device": device_name(),
              "schedule": schedule, "common_flags": common, "runs": rows}
    with open(os.path.join(args.out, "training_speed.json"), "w") as f:
        json.dump(result, f, indent=2)
    for row in rows:
        if "error" in row:
            print(f"{row['scene']} {row['variant']}: {row['error']}")
        elif "speedup_deformation" in row:
            print(f"{row['scene']:>10} {row['variant']:>10}: {row['deformation_it_per_s']:.1f} it/s with deformation "
                  f"({row['speedup_deformation']:.2f}x), test PSNR {row['test_psnr']:.2f} "
                  f"({row['psnr_change_db']:+.2f} dB), peak {row['peak_memory_mb']:.0f} MB, {row['gaussians']} Gaussians")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
