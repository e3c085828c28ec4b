"""How a trained model moves its hands between the training frames around each held-out view.

A held-out view's time t lies between two training times a < t < b. For the hand Gaussians that
move most from a to b (the upper half by distance), this script takes their centres at a, t and b
from the model's own deformation and measures, per Gaussian,

    progress  s = ((x_t - x_a) . (x_b - x_a)) / |x_b - x_a|^2      (0 at a's position, 1 at b's)
    sideways  |x_t - x_a - s (x_b - x_a)| / |x_b - x_a|            (off the straight path)

A hand that moves steadily has s close to the view's time fraction f = (t - a) / (b - a) for all
its Gaussians and little sideways motion. "held" counts the Gaussians still near a's position
(s < f - 0.35), "ahead" those already near b's (s > f + 0.35): a model that holds the pose and
then jumps, or that draws two copies of a fast hand (one subset early, one late), shows up there.
Views before the first or after the last training time are skipped (no frame on one side).

Per view it also gives the share of the hand Gaussians' opacity whose size (largest axis) changes
by more than 2x from a to b (``resized_2x_by_opacity``, all hand Gaussians, moving or not). And
it says how much the hand Gaussians change size over the training times (``sizes``): the
share whose largest axis grows or shrinks by more than 2x, 3x and 10x between two training times,
plain and weighted by opacity. A fit that turns Gaussians on and off by size (--deform_scale on
lets the network change sizes) shows up there; rigid hands would need none.

    python benchmarks/held_out_motion.py -m MODEL [--out FILE.json] [render.py's --hand_rule ... flags]

Prints one line per view and one for the sizes; writes the same as JSON with --out.
"""
import json
import os
import sys
from argparse import ArgumentParser
from typing import Dict, List, Optional

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import render  # noqa: E402
from benchmarks.common import command_line  # noqa: E402
from gaussian_renderer import deform_gaussians  # noqa: E402
from scene.decomposition import decompose_model, deformation_gate  # noqa: E402
from utils.errors import DatasetError  # noqa: E402

OFF_PACE = 0.35   # progress this far from the time fraction counts as held back or ahead
SIZE_RATIOS = (2.0, 3.0, 10.0)   # size changes counted by size_changes


def motion_progress(x_a: torch.Tensor, x_t: torch.Tensor, x_b: torch.Tensor, fraction: float) -> Dict[str, float]:
    """The statistics above for centres [M, 3] at a, t and b (rows with x_a == x_b are skipped)."""
    step = x_b - x_a
    length2 = step.square().sum(dim=1)
    keep = length2 > 0
    step, length2, travel = step[keep], length2[keep], (x_t - x_a)[keep]
    if length2.numel() == 0:
        return {"fraction": fraction, "gaussians": 0}
    progress = (travel * step).sum(dim=1) / length2
    sideways = (travel - progress[:, None] * step).norm(dim=1) / length2.sqrt()
    return {"fraction": round(fraction, 4), "gaussians": int(progress.numel()),
            "progress_median": round(float(progress.median()), 4),
            "held": round(float((progress < fraction - OFF_PACE).float().mean()), 4),
            "ahead": round(float((progress > fraction + OFF_PACE).float().mean()), 4),
            "sideways_median": round(float(sideways.median()), 4)}


def size_changes(sizes: torch.Tensor, opacity: torch.Tensor) -> Dict[str, float]:
    """sizes [T, M]: each Gaussian's largest axis at T times; opacity [M]. The share of Gaussians
    whose largest/smallest size over the times exceeds each of SIZE_RATIOS, plain and weighted by
    opacity."""
    sizes = sizes.abs()   # a scale offset can flip an axis's sign; the covariance sees its square
    ratio = sizes.max(dim=0).values / sizes.min(dim=0).values.clamp_min(torch.finfo(sizes.dtype).tiny)
    weight = opacity / opacity.sum().clamp_min(torch.finfo(opacity.dtype).tiny)
    stats = {"gaussians": int(ratio.numel())}
    for r in SIZE_RATIOS:
        changed = (ratio > r).to(weight.dtype)
        stats[f"over_{r:g}x"] = round(float(changed.mean()), 4) if ratio.numel() else 0.0
        stats[f"over_{r:g}x_by_opacity"] = round(float((changed * weight).sum()), 4)
    return stats


def hands_at(gaussians, deform, hands: torch.Tensor, gate: Optional[torch.Tensor], is_6dof: bool, t: float):
    """The hand Gaussians' centres [H, 3] and largest axes [H] at time t, deformed as render.py does."""
    with torch.no_grad():
        deformed = deform_gaussians(gaussians, *deform.offsets(gaussians.get_xyz, t, 0.0, gate), is_6dof=is_6dof)
    return deformed.means3D[hands], deformed.scales[hands].abs().max(dim=1).values


def hand_sizes(gaussians, deform, hands: torch.Tensor, gate: Optional[torch.Tensor], is_6dof: bool,
               times: List[float]) -> Dict[str, float]:
    """size_changes of the hand Gaussians over the given (training) times."""
    largest_axes = [hands_at(gaussians, deform, hands, gate, is_6dof, t)[1] for t in times]
    return size_changes(torch.stack(largest_axes), gaussians.get_opacity[hands].detach().reshape(-1))


def view_rows(gaussians, deform, hands: torch.Tensor, gate: Optional[torch.Tensor], is_6dof: bool,
              train_times: List[float], test_times: List[float]) -> List[Dict]:
    opacity = gaussians.get_opacity[hands].detach().reshape(-1)
    rows = []
    for t in test_times:
        before, after = [s for s in train_times if s < t], [s for s in train_times if s > t]
        if not before or not after:
            continue
        a, b = before[-1], after[0]
        (x_a, s_a), (x_t, _), (x_b, s_b) = (hands_at(gaussians, deform, hands, gate, is_6dof, time) for time in (a, t, b))
        distance = (x_b - x_a).norm(dim=1)
        moving = distance > distance.median() if distance.numel() else distance > 0
        row = {"time": round(t, 6), "between": [round(a, 6), round(b, 6)]}
        row.update(motion_progress(x_a[moving], x_t[moving], x_b[moving], (t - a) / (b - a)))
        # every hand Gaussian, moving or not: one that fades out from a to b while another fades in
        # draws two half-opaque copies at t
        row["resized_2x_by_opacity"] = size_changes(torch.stack([s_a, s_b]), opacity)["over_2x_by_opacity"]
        rows.append(row)
    return rows


def main(argv=None) -> List[Dict]:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model_path", required=True)
    parser.add_argument("--iteration", type=int, default=-1)
    parser.add_argument("--out", default=None, help="JSON file for the rows")
    args, render_flags = parser.parse_known_args(argv)   # the rest: render.py's (which Gaussians are hands)
    render_parser, model_params, _ = render.build_parser()
    try:
        model_args = render.resolve_args(["-m", args.model_path, "--iteration", str(args.iteration), *render_flags],
                                         render_parser)
        dataset, scene, gaussians, deform = render.load_model(model_args, model_params, torch.device("cpu"))
    except (render.RenderError, DatasetError, OSError) as err:   # bad input: one line, status 2
        print(f"held_out_motion.py: {' '.join(str(err).split())}", file=sys.stderr)
        raise SystemExit(2) from None
    gate = deformation_gate(gaussians, model_args)
    hands = decompose_model(gaussians, model_args, gate).hands
    train_times = sorted({float(c.fid) for c in scene.getTrainCameras()})
    test_times = sorted({float(c.fid) for c in scene.getTestCameras()})
    rows = view_rows(gaussians, deform, hands, gate, dataset.is_6dof, train_times, test_times)
    for row in rows:
        if row["gaussians"]:
            print(f"t={row['time']:.3f} (f={row['fraction']:.2f}): progress median {row['progress_median']:.2f}, "
                  f"held {row['held']:.2f}, ahead {row['ahead']:.2f}, sideways {row['sideways_median']:.2f} "
                  f"({row['gaussians']} hand Gaussians); size changes over 2x from a to b: "
                  f"{row['resized_2x_by_opacity']:.2f} of the hand opacity")
    sizes = hand_sizes(gaussians, deform, hands, gate, dataset.is_6dof, train_times)
    print("sizes over the training times: " + ", ".join(
        f"{sizes[f'over_{r:g}x']:.2f} change by over {r:g}x ({sizes[f'over_{r:g}x_by_opacity']:.2f} by opacity)"
        for r in SIZE_RATIOS) + f" ({sizes['gaussians']} hand Gaussians)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"command": command_line(__file__, argv), "model": args.model_path, "views": rows,
                       "sizes": sizes}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
