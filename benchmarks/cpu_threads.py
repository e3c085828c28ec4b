"""How many PyTorch threads a CPU training run should use: the demo's training, timed per setting.

Trains the demo scene (the synthetic scene at 64x48, the demo's scaled schedule, shortened to
--iterations) once per thread setting, on an idle machine and again while --load busy processes
run beside it (a shared machine, as CI's), and reports train.py's own it/s (training steps alone).
"default" is PyTorch's choice (one thread per core). Writes JSON with the command.
train.py's automatic --cpu_threads uses 1 thread on machines of up to 2 cores from these figures.

    python benchmarks/cpu_threads.py --out output/threads [--iterations 200] [--load 1]
"""
import json
import multiprocessing
import os
import platform
import re
import subprocess
import sys
from argparse import ArgumentParser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import command_line  # noqa: E402
from full_eval import DEMO_ITERATIONS, scaled_schedule  # noqa: E402

SETTINGS = {"1": ["--cpu_threads", "1"], "default": ["--cpu_threads", "0"]}


def busy() -> None:
    while True:
        pass


def its_per_second(source: str, model: str, threads_flags, iterations: int) -> float:
    schedule = scaled_schedule(DEMO_ITERATIONS)
    schedule[schedule.index("--iterations") + 1] = str(iterations)
    schedule[schedule.index("--test_iterations") + 1] = str(iterations)
    schedule[schedule.index("--save_iterations") + 1] = str(iterations)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "train.py", "-s", source, "-m", model, "--eval", "--llffhold", "4",
                          "--quiet", "--overwrite", "--rasterizer", "torch", *schedule, *threads_flags],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"training steps at ([\d.]+) it/s", out).group(1))


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--load", type=int, default=1, help="busy processes beside the loaded runs")
    args = parser.parse_args(argv)
    data = os.path.join(args.out, "data")
    if not os.path.isfile(os.path.join(data, "scene_meta.json")):
        subprocess.run([sys.executable, "-m", "scene.synthetic", data, "--frames", "16", "--width", "64",
                        "--height", "48"], cwd=ROOT, check=True, capture_output=True)
    results = {"idle": {}, f"{args.load} busy process(es) beside": {}}
    for name, flags in SETTINGS.items():
        results["idle"][name] = its_per_second(data, os.path.join(args.out, f"idle_{name}"), flags, args.iterations)
    hogs = [multiprocessing.Process(target=busy, daemon=True) for _ in range(args.load)]
    for hog in hogs:
        hog.start()
    try:
        for name, flags in SETTINGS.items():
            results[f"{args.load} busy process(es) beside"][name] = its_per_second(
                data, os.path.join(args.out, f"loaded_{name}"), flags, args.iterations)
    finally:
        for hog in hogs:
            hog.terminate()
    record = {"command": command_line(__file__),
              "machine": platform.node(), "cores": os.cpu_count(), "iterations": args.iterations,
              "its_per_second": results}
    with open(os.path.join(args.out, "cpu_threads.json"), "w") as f:
        json.dump(record, f, indent=2)
    for condition, row in results.items():
        print(f"{condition:>28}: " + "  ".join(f"{k} thread(s) {v:.1f} it/s" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
