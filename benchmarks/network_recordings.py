"""How often a training run records the deformation network as a CUDA graph.

Under --cuda_graphs on the network runs on the Gaussians the hand gate lets move, padded up to a
bucket size (scene.deform_model.bucket_rows), and each bucket needs a recording of its own; the
BUCKETS_KEPT used last are kept. Every new recording costs host time (the capture and a garbage collection),
so their number is part of a run's speed. This script trains with train.py (any device: on the
CPU nothing is recorded, but the gate decides the rows the same way), logs the rows of every
learning call of the network, and counts the recordings a GPU run with those rows would make.
--scale_rows multiplies the logged rows first: a quarter-resolution CPU run scaled to the row
counts a full-resolution GPU run reported (train_summary.json's deformed_rows_per_step) shows how
often those rows would change bucket.

    python benchmarks/network_recordings.py --out FILE.json [--scale_rows 14] -- TRAIN.PY FLAGS
"""
import json
import os
import statistics
import sys
from argparse import ArgumentParser
from collections import OrderedDict
from typing import List, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import command_line, split_common_flags  # noqa: E402
from scene import deform_model  # noqa: E402


def count_recordings(rows: Sequence[int], kept: int = deform_model.BUCKETS_KEPT) -> int:
    """Recordings a run whose network calls had these row counts makes: one per call whose bucket
    is not among the ``kept`` most recently used."""
    recent: "OrderedDict[int, None]" = OrderedDict()
    made = 0
    for count in rows:
        bucket = deform_model.bucket_rows(count)
        if bucket in recent:
            recent.move_to_end(bucket)
            continue
        made += 1
        while len(recent) >= kept:
            recent.popitem(last=False)
        recent[bucket] = None
    return made


def trace_rows(train_argv: List[str]) -> List[int]:
    """Train with train.py's flags and return the rows of every call in which the network learns."""
    import torch
    import train
    rows: List[int] = []
    original = deform_model.DeformModel._rows

    def logged(self, xyz, t, gate):
        if self.trainable and torch.is_grad_enabled():
            rows.append(int(xyz.shape[0]))
        return original(self, xyz, t, gate)
    deform_model.DeformModel._rows = logged
    try:
        train.main(train_argv)
    finally:
        deform_model.DeformModel._rows = original
    return rows


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    own, train_argv = split_common_flags(argv)
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--scale_rows", type=float, default=1.0,
                        help="multiply the logged rows by this before counting (see the module text)")
    args = parser.parse_args(own)
    rows = trace_rows(train_argv)
    scaled = [max(1, round(count * args.scale_rows)) for count in rows]
    result = {"command": command_line("benchmarks/network_recordings.py", argv), "calls": len(rows),
              "scale_rows": args.scale_rows,
              "rows_mean": statistics.mean(scaled) if scaled else 0.0,
              "buckets": len({deform_model.bucket_rows(count) for count in scaled}),
              "recordings": count_recordings(scaled), "rows": rows}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"{len(rows)} learning calls of the network, rows x {args.scale_rows:g}: mean {result['rows_mean']:.0f}, "
          f"{result['buckets']} buckets, {result['recordings']} recordings "
          f"({deform_model.BUCKETS_KEPT} kept) -> {args.out}")
    return result


if __name__ == "__main__":
    main()
