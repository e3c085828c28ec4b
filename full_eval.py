"""Train, render and score several scenes with one command, then print one table.

    python full_eval.py -s SCENE [SCENE ...] --output_path OUT [train.py flags ...]
    python full_eval.py --synthetic OUT          # generate the built-in synthetic scene, short CPU schedule

Each scene goes to OUT/<scene folder name>/ through subprocess calls of train.py (with --eval),
render.py and metrics.py. Flags this script does not know are passed to train.py; --render_args
and --metrics_args take a quoted string for the other two. --skip_training / --skip_rendering /
--skip_metrics reuse what is already in OUT. The table (scene x PSNR / SSIM / LPIPS / FPS /
training time / Gaussians, plus mask_IoU and static_PSNR where the scene has that ground truth)
is also written to OUT/full_eval.json.

--synthetic scales the EgoMask schedule (40k iterations: warm-up 3k, mask phase 30k-40k,
densification until 15k) down to --iterations, on a small synthetic scene (--frames, --width,
--height), so that the demo finishes in minutes on a CPU. Any train.py flag given explicitly
overrides the scaled value.
"""
import json
import os
import shlex
import subprocess
import sys
import time
from argparse import ArgumentParser, Namespace
from typing import Dict, List, Optional

from arguments import positive_int
from utils.schedule import scaled_schedule

ROOT = os.path.dirname(os.path.abspath(__file__))
# About 1-2 CPU-seconds per iteration at 64x48 with the reference rasterizer (2 cores): minutes.
DEMO_ITERATIONS = 300
EXIT_BAD_INPUT = 2


class StepFailed(Exception):
    def __init__(self, step: str, command: List[str], code: int):
        super().__init__(f"{step} failed (exit status {code}): {' '.join(shlex.quote(c) for c in command)}")
        self.code = code


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description="Train, render and score scenes; print one table.", allow_abbrev=False)
    parser.add_argument("--scenes", "-s", nargs="+", default=[], help="scene folders")
    parser.add_argument("--output_path", "-o", default="output/full_eval")
    parser.add_argument("--synthetic", metavar="OUT", default=None,
                        help="generate the synthetic scene in OUT/data and run the demo schedule into OUT/model")
    parser.add_argument("--skip_training", action="store_true")
    parser.add_argument("--skip_rendering", action="store_true")
    parser.add_argument("--skip_metrics", action="store_true")
    parser.add_argument("--render_args", default="", help="extra render.py flags, one quoted string")
    parser.add_argument("--metrics_args", default="", help="extra metrics.py flags, one quoted string")
    demo = parser.add_argument_group("Synthetic demo (--synthetic)")
    demo.add_argument("--iterations", type=positive_int, default=None,
                      help=f"training iterations (train.py default, or {DEMO_ITERATIONS} with --synthetic)")
    demo.add_argument("--frames", type=positive_int, default=16)
    demo.add_argument("--width", type=positive_int, default=64)
    demo.add_argument("--height", type=positive_int, default=48)
    demo.add_argument("--points", type=positive_int, default=1000, help="initial sparse points of the synthetic scene")
    demo.add_argument("--llffhold", type=positive_int, default=4, help="every n-th frame is a test view")
    return parser


def run_step(step: str, command: List[str], log_path: str) -> float:
    """Run one tool; its output goes to the console and to log_path. Returns the wall time in s."""
    print(f"--> {step}: {' '.join(shlex.quote(c) for c in command)}", flush=True)
    start = time.perf_counter()
    with open(log_path, "a") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        # pieces as they come, not lines: a progress bar redraws its line with "\r" and no newline
        for piece in iter(lambda: process.stdout.read1(4096), b""):
            text = piece.decode(errors="replace")
            log.write(text)
            sys.stdout.write(text)
            sys.stdout.flush()
        code = process.wait()
    if code != 0:
        raise StepFailed(step, command, code)
    return time.perf_counter() - start


def latest_method(results: Dict) -> Optional[str]:
    methods = sorted(results, key=lambda m: int(m.split("_")[-1]) if m.split("_")[-1].isdigit() else -1)
    return methods[-1] if methods else None


def read_json(path: str) -> Optional[dict]:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def scene_row(name: str, model_path: str) -> Dict:
    """One table row from what train/render/metrics left in the model folder."""
    row = {"scene": name}
    results = read_json(os.path.join(model_path, "results.json")) or {}
    method = latest_method(results)
    if method:
        row.update(results[method])
        row["method"] = method
    for split in ("test", "train"):
        speed = read_json(os.path.join(model_path, split, method or "", "fps.json")) if method else None
        if speed:
            row["FPS"], row["Gaussians"] = speed.get("fps"), speed.get("num_gaussians")
            break
    timing = read_json(os.path.join(model_path, "full_eval_timing.json")) or {}
    row["train_minutes"] = timing["train_seconds"] / 60.0 if "train_seconds" in timing else None
    return row


COLUMNS = [("scene", "{}"), ("PSNR", "{:.2f}"), ("SSIM", "{:.4f}"), ("LPIPS", "{:.4f}"), ("FPS", "{:.1f}"),
           ("train_minutes", "{:.1f}"), ("Gaussians", "{:d}"), ("mask_IoU", "{:.3f}"), ("hands_precision", "{:.3f}"),
           ("hands_recall", "{:.3f}"), ("masked_PSNR", "{:.2f}"), ("static_PSNR", "{:.2f}"),
           ("static_PSNR_hand_region", "{:.2f}")]


def format_table(rows: List[Dict]) -> str:
    columns = [(k, f) for k, f in COLUMNS if k in ("scene", "PSNR", "SSIM", "LPIPS", "FPS", "train_minutes",
                                                   "Gaussians") or any(r.get(k) is not None for r in rows)]
    cells = [[k if k != "train_minutes" else "train (min)" for k, _ in columns]]
    for row in rows:
        cells.append(["-" if row.get(k) is None else f.format(row[k]) for k, f in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))) for line in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def evaluate_scene(source: str, model_path: str, args: Namespace, train_flags: List[str]) -> None:
    """train -> render -> metrics for one scene (each step skippable)."""
    os.makedirs(model_path, exist_ok=True)
    log = os.path.join(model_path, "full_eval.log")
    python = sys.executable
    if not args.skip_training:
        seconds = run_step("train", [python, "train.py", "-s", source, "-m", model_path, "--eval", "--overwrite"]
                           + train_flags, log)
        with open(os.path.join(model_path, "full_eval_timing.json"), "w") as f:
            json.dump({"train_seconds": seconds}, f)
    if not args.skip_rendering:
        run_step("render", [python, "render.py", "-m", model_path, "--skip_train", "--quiet"]
                 + shlex.split(args.render_args), log)
    if not args.skip_metrics:
        run_step("metrics", [python, "metrics.py", "-m", model_path] + shlex.split(args.metrics_args), log)


def synthetic_plan(args: Namespace, passthrough: List[str]):
    """Generate the synthetic scene; returns [(name, source, model_path)] and the train flags."""
    out = os.path.abspath(args.synthetic)
    data = os.path.join(out, "data")
    if not os.path.isfile(os.path.join(data, "scene_meta.json")):
        run_step("synthetic scene", [sys.executable, "-m", "scene.synthetic", data, "--frames", str(args.frames),
                                     "--width", str(args.width), "--height", str(args.height),
                                     "--points", str(args.points)],
                 os.path.join(out, "full_eval.log"))
    iterations = args.iterations or DEMO_ITERATIONS
    train_flags = scaled_schedule(iterations) + ["--llffhold", str(args.llffhold)] + passthrough
    return [("synthetic", data, os.path.join(out, "model"))], train_flags, out


def main(argv=None) -> int:
    parser = build_parser()
    args, passthrough = parser.parse_known_args(argv)
    if args.synthetic:
        os.makedirs(args.synthetic, exist_ok=True)
        try:
            plan, train_flags, out = synthetic_plan(args, passthrough)
        except StepFailed as err:
            print(f"Error: {err}", file=sys.stderr)
            return err.code
    else:
        if not args.scenes:
            parser.error("give scene folders with -s/--scenes, or --synthetic OUT for the demo.")
        missing = [s for s in args.scenes if not os.path.isdir(s)]
        if missing:
            print(f"Error: scene folder {missing[0]!r} does not exist.", file=sys.stderr)
            return EXIT_BAD_INPUT
        out = args.output_path
        train_flags = (["--iterations", str(args.iterations)] if args.iterations else []) + passthrough
        plan = [(os.path.basename(os.path.normpath(s)), os.path.abspath(s),
                 os.path.join(out, os.path.basename(os.path.normpath(s)))) for s in args.scenes]

    status, rows = 0, []
    for name, source, model_path in plan:
        try:
            evaluate_scene(source, model_path, args, train_flags)
        except StepFailed as err:
            print(f"Error: {name}: {err} (log: {os.path.join(model_path, 'full_eval.log')})", file=sys.stderr)
            status = err.code
        rows.append(scene_row(name, model_path))
    table = format_table(rows)
    print("\n" + table)
    with open(os.path.join(out, "full_eval.json"), "w") as f:
        json.dump(rows, f, indent=2)
    return status


if __name__ == "__main__":
    sys.exit(main())
