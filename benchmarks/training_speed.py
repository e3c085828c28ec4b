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
import signal
import subprocess
import sys
import time
from argparse import ArgumentParser
from typing import List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import (add_run_size_arguments, command_line, device_name, parse_named, split_common_flags,  # noqa: E402
                               synthetic_scene)
from utils.atomic import write_json_atomic  # noqa: E402
from utils.schedule import scaled_schedule  # noqa: E402

DEFAULT_VARIANTS = ["baseline=--speed_baseline", "default="]


def train_once(scene: str, source: str, variant: str, flags, schedule, common, out: str,
               timeout: Optional[float] = None) -> dict:
    """One training run. After timeout seconds it gets a Ctrl-C: train.py saves a checkpoint and
    train_summary.json with the speed so far, and the row says where it stopped (``stopped``).
    A failed run gives a row with ``error`` and the end of its log."""
    model = os.path.join(out, f"{scene}_{variant}")
    command = [sys.executable, "train.py", "-s", source, "-m", model, "--eval", "--quiet", "--overwrite"] \
        + schedule + common + flags
    row = {"scene": scene, "variant": variant, "flags": flags}
    summary_path = os.path.join(model, "train_summary.json")
    if os.path.exists(summary_path):
        os.remove(summary_path)   # an earlier run's summary must not pass for this one's
    start = time.perf_counter()
    with open(model + ".log", "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = stop_gently(process)
            row["stopped"] = f"after the {timeout:.0f} s limit"
    row["wall_seconds"] = time.perf_counter() - start
    if not os.path.exists(summary_path) or ("stopped" not in row and code != 0):
        reason = row.get("stopped") or f"train.py exited {code}"
        return {**row, "error": f"{reason}; see {model}.log", "log_tail": log_tail(model + ".log")}
    with open(summary_path) as f:
        summary = json.load(f)
    if "stopped" in row:
        row["stopped"] += f", at iteration {summary.get('last_iteration')}"
    final = max(summary["test_psnr"], key=int) if summary["test_psnr"] else None
    return {**row, "iterations_per_second": summary["iterations_per_second"],
            "deformation_it_per_s": deformation_speed(summary["phases"]),
            "phases": summary["phases"], "gaussians": summary["num_gaussians"],
            "peak_memory_mb": max((p["peak_memory_mb"] for p in summary["phases"].values()), default=0.0),
            "test_psnr": summary["test_psnr"][final] if final else None,
            "cuda_graph_recordings": summary.get("cuda_graph_recordings")}


def stop_gently(process: subprocess.Popen, grace: float = 120.0) -> Optional[int]:
    """Ctrl-C (train.py then saves and writes its summary), then a kill after grace seconds."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def log_tail(path: str, lines: int = 4) -> List[str]:
    """The last lines of a log, progress-bar redraws (carriage returns) counted as lines."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()[-20_000:]
    except OSError:
        return []
    parts = [part.strip() for part in text.replace("\r", "\n").split("\n")]
    return [part for part in parts if part][-lines:]


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
        mine, theirs = row["deformation_it_per_s"], ref["deformation_it_per_s"]
        row["speedup_deformation"] = mine / theirs if mine and theirs else None   # None: no deformation phase ran
        row["speedup_per_phase"] = {name: p["it_per_s"] / ref["phases"][name]["it_per_s"]
                                    for name, p in row["phases"].items()
                                    if name in ref["phases"] and p["it_per_s"] and ref["phases"][name]["it_per_s"]}
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
    parser.add_argument("--run_timeout", type=float, default=None,
                        help="seconds after which one training run is stopped and recorded as such")
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
    command = command_line(__file__, argv) \
        + ((" -- " + " ".join(shlex.quote(a) for a in common)) if common else "")
    for scene, source in scenes:
        for variant, flags in variants:
            row = train_once(scene, source, variant, shlex.split(flags), schedule, common, args.out, args.run_timeout)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "phases"}))
            add_ratios(rows, baseline="baseline")
            # After every run, so that a session cut short keeps what was measured.
            write_json_atomic(os.path.join(args.out, "training_speed.json"),
                              {"command": command, "machine": platform.node(), "python": platform.python_version(),
                               "device": device_name(), "schedule": schedule, "common_flags": common, "runs": rows})
    for row in rows:
        print(summary_line(row))
    return 0 if all("error" not in r and "stopped" not in r for r in rows) else 1


def summary_line(row: dict) -> str:
    name = f"{row['scene']:>10} {row['variant']:>10}: "
    if "error" in row:
        return name + row["error"]

    def number(value, pattern):
        return "-" if value is None else pattern.format(value)

    return (name + f"{number(row['deformation_it_per_s'], '{:.1f}')} it/s with deformation "
            f"({number(row.get('speedup_deformation'), '{:.2f}x')}), test PSNR {number(row['test_psnr'], '{:.2f}')} "
            f"({number(row.get('psnr_change_db'), '{:+.2f} dB')}), peak {row['peak_memory_mb']:.0f} MB, "
            f"{row['gaussians']} Gaussians" + (f"; stopped {row['stopped']}" if "stopped" in row else ""))

if __name__ == "__main__":
    sys.exit(main())
