"""Hands decomposition, recipe against recipe, on one scene and one schedule: one table, one JSON.

Each recipe is a name and the train.py flags that make it (``paper="--recipe paper"``); every
recipe trains on the same data with the same schedule (the EgoMask schedule scaled to
--iterations, as full_eval.py's demo), then render.py and metrics.py score its test views. Recipes
run --parallel at a time (each a process of its own; on one GPU they share it).

    python benchmarks/decomposition.py --out OUT --synthetic --frames 24 --width 128 --height 96 \\
        --iterations 3000 --recipe default= --recipe paper="--recipe paper" -- --deform_depth 4 --deform_width 128
    python benchmarks/decomposition.py --out OUT -s SCENE --iterations 40000 --full_schedule \\
        --recipe default= --recipe paper="--recipe paper"

Flags after ``--`` go to every training run. ``--render NAME=FLAGS`` (repeatable) also renders and
scores every trained model with those render.py flags, in a copy of its folder (OUT/<recipe>@NAME),
so render-time choices are compared on the same trainings:

    python benchmarks/decomposition.py --out OUT --synthetic --iterations 3000 --recipe default= \\
        --render "raw=--static_fill off" --render "gate=--hand_rule gate"

Writes OUT/decomposition.json (the command, the machine, and per recipe and render variant: its
flags, results.json's test-view averages, training time, Gaussian count) and prints the table; one
strip image per row is copied to OUT/strip_<row>.png.
"""
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from argparse import ArgumentParser
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import (add_run_size_arguments, command_line, device_name, parse_named, split_common_flags,  # noqa: E402
                               synthetic_scene)
from full_eval import format_table, scene_row  # noqa: E402
from utils.schedule import scaled_schedule  # noqa: E402


def parse_recipe(text: str):
    name, flags = parse_named(text, "--recipe")
    return name, shlex.split(flags)


def run_steps(steps, log):
    """Runs each tool (its argv after python) from the repository root, its output into log, until
    one fails: (None or "<tool> exited <code>", seconds per tool)."""
    seconds = {}
    for step in steps:
        start = time.perf_counter()
        code = subprocess.run([sys.executable] + step, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
        seconds[step[0]] = time.perf_counter() - start
        if code != 0:
            return f"{step[0]} exited {code}", seconds
    return None, seconds


def run_recipe(name: str, flags, source: str, out: str, schedule, common, args) -> list:
    """The recipe trained, rendered and scored; then each --render variant in a copy of its folder.
    One row each (a row with "error" for a step that failed)."""
    model = os.path.join(out, name)
    log_path = os.path.join(out, f"{name}.log")
    steps = [["train.py", "-s", source, "-m", model, "--eval", "--quiet", "--overwrite"] + schedule + common + flags,
             ["render.py", "-m", model, "--skip_train", "--quiet"],
             ["metrics.py", "-m", model]]
    with open(log_path, "w") as log:
        error, seconds = run_steps(steps, log)
    if error:
        return [{"recipe": name, "flags": flags, "error": f"{error}; see {log_path}"}]
    rows = [scored_row(name, model, out, {"recipe": name, "flags": flags, "train_seconds": seconds["train.py"]})]
    for variant, render_flags in args.render:
        row_name, copy = f"{name}@{variant}", f"{model}@{variant}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(model, copy, ignore=shutil.ignore_patterns("test", "train"))
        with open(log_path, "a") as log:
            error, _ = run_steps([["render.py", "-m", copy, "--skip_train", "--quiet", *render_flags],
                                  ["metrics.py", "-m", copy]], log)
        rows.append({"recipe": row_name, "error": f"{error}; see {log_path}"} if error else
                    scored_row(row_name, copy, out, {"recipe": row_name, "flags": flags, "render_flags": render_flags}))
    return rows


def scored_row(name: str, model: str, out: str, extra: dict) -> dict:
    """full_eval's row of a rendered and scored model, plus extra; its middle test strip copied
    to OUT/strip_<name>.png."""
    row = scene_row(name, model)
    row.update(extra)
    strip_dir = os.path.join(model, "test", row.get("method", ""), "strip")
    if os.path.isdir(strip_dir):
        frames = sorted(f for f in os.listdir(strip_dir) if f.endswith(".png"))
        if frames:
            shutil.copy(os.path.join(strip_dir, frames[len(frames) // 2]), os.path.join(out, f"strip_{name}.png"))
    return row


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    argv, common = split_common_flags(argv)
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_run_size_arguments(parser, frames=24, width=128, height=96, llffhold=4)
    parser.add_argument("-s", "--source", default=None, help="scene folder (else --synthetic)")
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--full_schedule", action="store_true",
                        help="train.py's own schedule with --iterations (no scaling)")
    parser.add_argument("--recipe", action="append", required=True, help="NAME=FLAGS, repeatable")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--render", action="append", default=[], type=parse_recipe,
                        help="NAME=FLAGS for render.py, repeatable: each model is also scored rendered so")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    source = (synthetic_scene(os.path.join(args.out, "data"), args.frames, args.width, args.height, args.points)
              if args.synthetic else os.path.abspath(args.source))
    schedule = (["--iterations", str(args.iterations)] if args.full_schedule else scaled_schedule(args.iterations))
    schedule += ["--llffhold", str(args.llffhold)]
    recipes = [parse_recipe(r) for r in args.recipe]
    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        rows = [row for rows in pool.map(lambda r: run_recipe(r[0], r[1], source, args.out, schedule, common, args),
                                         recipes) for row in rows]
    result = {"command": command_line(__file__),
              "machine": platform.node(), "python": platform.python_version(),
              "device": device_name(), "schedule": schedule, "common_flags": common, "recipes": rows}
    with open(os.path.join(args.out, "decomposition.json"), "w") as f:
        json.dump(result, f, indent=2)
    good = [r for r in rows if "error" not in r]
    print(format_table([{**r, "scene": r["recipe"]} for r in good]))
    for r in rows:
        if "error" in r:
            print(f"{r['recipe']}: {r['error']}")
    return 0 if len(good) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
