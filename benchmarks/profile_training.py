"""Where a training step's time goes: train.py in this process under torch.profiler.

Profiles --steps steps starting --offset steps into each phase (warm-up, depth, mask, colour)
and appends, per phase, the wall time per step, the Gaussian count and two tables (by device time,
by host time) to --out. train.py's stages are labelled (``##render``, ``##layer_losses``,
``##deform_for``, ``##compute_losses``, ``##backward``, ``##densify_step``...), so the tables
say which stage launches what. The labels wrap train.py's functions for this process only.

    python benchmarks/profile_training.py --out prof.txt -- -s data/glass -m /tmp/p --eval --quiet \\
        $(python -c "from utils.schedule import scaled_schedule; print(' '.join(scaled_schedule(3000)))")

Everything after ``--`` goes to train.py.
"""
import os
import sys
import time
from argparse import ArgumentParser

import torch
from torch.profiler import ProfilerActivity, profile, record_function

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import train  # noqa: E402
from scene.densify import DensificationStrategy  # noqa: E402
from utils.speed import PhaseSpeedMeter  # noqa: E402

LABELLED = ("deform_for", "render_deformed", "render_layers", "step_losses", "layer_losses", "compute_losses",
            "deformation_gate", "read_losses")


def labelled(name, fn):
    def wrapped(*args, **kwargs):
        with record_function("##" + name):
            return fn(*args, **kwargs)
    return wrapped


def synchronize():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class PhaseProfiler:
    """Hooked into PhaseSpeedMeter.start_step: opens a profile at the offset-th step of each phase."""

    def __init__(self, out: str, steps: int, offset: int, gaussians):
        self.out, self.steps, self.offset, self.gaussians = out, steps, offset, gaussians
        self.phase, self.count, self.left, self.started = None, 0, 0, 0.0
        self.profile, self.done = None, set()

    def on_step(self, name: str) -> None:
        if self.profile is not None:
            self.left -= 1
            if self.left == 0 or name != self.phase:
                self._close()
        if name != self.phase:
            self.phase, self.count = name, 0
        self.count += 1
        if self.count == self.offset and name not in self.done:
            self.done.add(name)
            synchronize()
            self.gaussian_count = self.gaussians[0].get_xyz.shape[0] if self.gaussians else -1
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
            self.profile = profile(activities=activities)
            self.profile.__enter__()
            self.left, self.started = self.steps, time.perf_counter()

    def _close(self) -> None:
        synchronize()
        wall = (time.perf_counter() - self.started) / self.steps
        self.profile.__exit__(None, None, None)
        averages = self.profile.key_averages()
        self.profile = None
        device_sort = "self_device_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
        with open(self.out, "a") as f:
            f.write(f"\n===== phase {self.phase}: {self.steps} steps, wall {wall * 1000:.2f} ms/step "
                    f"(profiler overhead included), {self.gaussian_count} Gaussians\n")
            f.write(averages.table(sort_by=device_sort, row_limit=28, max_name_column_width=60))
            f.write(averages.table(sort_by="cpu_time_total", row_limit=18, max_name_column_width=60))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="text file the tables are appended to")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--offset", type=int, default=150, help="steps into each phase before profiling")
    args = parser.parse_args(argv[:split])
    created = []
    model_class = train.GaussianModel

    class RecordedModel(model_class):   # so the profiler can report the Gaussian count
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            created.append(self)

    profiler = PhaseProfiler(args.out, args.steps, args.offset, created)
    start_step = PhaseSpeedMeter.start_step

    def start_step_hook(meter, name):
        profiler.on_step(name)
        return start_step(meter, name)

    originals = [(train, "GaussianModel", RecordedModel), (PhaseSpeedMeter, "start_step", start_step_hook),
                 (DensificationStrategy, "step", labelled("densify_step", DensificationStrategy.step)),
                 (torch.Tensor, "backward", labelled("backward", torch.Tensor.backward))] + \
        [(train, name, labelled(name, getattr(train, name))) for name in LABELLED]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in originals]
    try:
        for owner, name, replacement in originals:
            setattr(owner, name, replacement)
        train.main(argv[split + 1:])
    finally:   # this process may go on (a test): leave train.py as it was
        for owner, name, original in saved:
            setattr(owner, name, original)
    return 0


if __name__ == "__main__":
    sys.exit(main())
