"""Small pieces the benchmark scripts share: the device's name, the `-- flags` split, NAME=VALUE
options, and the synthetic scene they train on (its size flags and its generation)."""
import os
import shlex
import subprocess
import sys
from argparse import ArgumentParser
from typing import List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def device_name() -> str:
    """The GPU's name, "cpu" without one, "unknown" without PyTorch."""
    try:
        import torch
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "unknown"


def command_line(script: str, argv: Optional[List[str]] = None) -> str:
    """How the benchmark was run, for its JSON: "python benchmarks/NAME.py ARGS" (argv None: sys.argv's)."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python", os.path.relpath(os.path.abspath(script), ROOT)] + [shlex.quote(a) for a in args])


def split_common_flags(argv: List[str]) -> Tuple[List[str], List[str]]:
    """(the script's own arguments, the train.py flags after a lone "--")."""
    if "--" not in argv:
        return list(argv), []
    cut = argv.index("--")
    return list(argv[:cut]), list(argv[cut + 1:])


def parse_named(text: str, what: str, allow_empty_value: bool = True) -> Tuple[str, str]:
    """NAME=VALUE of a repeatable option (--recipe, --variant, --scene); exits with a clear line."""
    name, sep, value = text.partition("=")
    if not name or not sep or (not value and not allow_empty_value):
        raise SystemExit(f"{what} {text!r}: write NAME=VALUE.")
    return name, value


def add_run_size_arguments(parser: ArgumentParser, frames: int, width: int, height: int, llffhold: int,
                           iterations: int = 3000) -> None:
    """--out, the synthetic scene's --frames/--width/--height, --llffhold and --iterations."""
    parser.add_argument("--out", required=True, help="output folder (scenes, models, logs, JSON)")
    parser.add_argument("--frames", type=int, default=frames, help="frames of the synthetic scene")
    parser.add_argument("--width", type=int, default=width)
    parser.add_argument("--height", type=int, default=height)
    parser.add_argument("--llffhold", type=int, default=llffhold, help="every n-th frame is a test view")
    parser.add_argument("--iterations", type=int, default=iterations)


def synthetic_scene(folder: str, frames: int, width: int, height: int, points: Optional[int] = None) -> str:
    """The synthetic scene in folder (generated unless it is there already); returns folder."""
    if not os.path.isfile(os.path.join(folder, "scene_meta.json")):
        command = [sys.executable, "-m", "scene.synthetic", folder, "--frames", str(frames), "--width", str(width),
                   "--height", str(height), "--overwrite"] + ([] if points is None else ["--points", str(points)])
        subprocess.run(command, cwd=ROOT, check=True)
    return folder
