"""How far the synthetic scene's held-out hand masks can be reached from its training frames alone.

A test view's hands are at a time no training frame shows. Any method that learns the hands from
the training frames must guess their pose in between (or, for the clip's first and last frames,
beyond). This script poses the scene's true hands from the true poses at the neighbouring
training frames, renders them from the test view's own camera, and scores the hand mask against
the view's true mask (IoU, as metrics.py's mask_IoU, without the cleaning):

- ``hold``: the pose of the nearest training frame before (after, for the first frame);
- ``linear``: wrist, rotation (on the rotation group) and finger flex interpolated between the
  training frames around the view, or continued from the two nearest ones past the clip's ends.

That is a ceiling for a first-order motion model that knew the hands' shape and pose exactly at
every training frame; a trained model also pays for its geometry seen from a new viewpoint.

    python benchmarks/motion_bound.py --out OUT --frames 24 --width 128 --height 96 --llffhold 4

Writes OUT/motion_bound.json (per view and mean).
"""
import json
import os
import sys
import types
from argparse import ArgumentParser
from typing import Dict, List, Tuple

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import command_line  # noqa: E402
from scene.synthetic.generator import SyntheticScene  # noqa: E402

POLICIES = ("hold", "linear")


def rotation_log(r: np.ndarray) -> np.ndarray:
    """Axis-angle vector of a rotation matrix (angles below pi)."""
    cos = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    if angle < 1e-9:
        return np.zeros(3)
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]]) / (2.0 * np.sin(angle))
    return axis * angle


def rotation_exp(v: np.ndarray) -> np.ndarray:
    """Rotation matrix of an axis-angle vector (Rodrigues)."""
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.eye(3)
    k = v / angle
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross


def blend_pose(a: Tuple, b: Tuple, s: float) -> Tuple:
    """Pose at share s from pose a (s = 0) to pose b (s = 1); s outside [0, 1] extrapolates."""
    (wa, ra, fa), (wb, rb, fb) = a, b
    return wa + s * (wb - wa), ra @ rotation_exp(s * rotation_log(ra.T @ rb)), fa + s * (fb - fa)


def anchors(view: int, train: List[int]) -> Tuple[int, int]:
    """The two training frames the view's pose is taken from: around it, or the two nearest
    past an end of the clip."""
    before = [t for t in train if t < view]
    after = [t for t in train if t > view]
    if before and after:
        return before[-1], after[0]
    if after:
        return after[0], after[1]
    return before[-1], before[-2]


def hand_mask(scene: SyntheticScene, fid: float, width: int, height: int) -> np.ndarray:
    return scene.render(fid, width, height).hand_fraction >= 0.5


def posed_mask(seed: int, fid: float, poses: List[Tuple], width: int, height: int) -> np.ndarray:
    """The hand mask seen by the camera at fid with each hand at the given pose."""
    scene = SyntheticScene(seed)
    for hand, pose in zip(scene.hands, poses):
        hand.pose = types.MethodType(lambda self, _fid, pose=pose: pose, hand)
    return hand_mask(scene, fid, width, height)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def view_bounds(seed: int, frames: int, width: int, height: int, llffhold: int) -> List[Dict]:
    fids = [i / (frames - 1) for i in range(frames)]
    test = [i for i in range(frames) if i % llffhold == 0]
    train = [i for i in range(frames) if i % llffhold != 0]
    truth = SyntheticScene(seed)
    rows = []
    for view in test:
        a, b = anchors(view, train)
        share = (fids[view] - fids[a]) / (fids[b] - fids[a])
        nearest = min(train, key=lambda t: (abs(t - view), t))
        poses = {"hold": [h.pose(fids[nearest]) for h in truth.hands],
                 "linear": [blend_pose(h.pose(fids[a]), h.pose(fids[b]), share) for h in truth.hands]}
        target = hand_mask(truth, fids[view], width, height)
        row = {"frame": view, "anchors": [a, b]}
        row.update({f"IoU_{p}": round(iou(posed_mask(seed, fids[view], poses[p], width, height), target), 4)
                    for p in POLICIES})
        rows.append(row)
    return rows


def main(argv=None) -> Dict:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--llffhold", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.frames < 3 or args.llffhold < 2 or args.frames < 2 * args.llffhold:
        raise SystemExit(f"--frames {args.frames} --llffhold {args.llffhold}: need at least 3 frames, "
                         "--llffhold >= 2, and two training frames past each end.")
    rows = view_bounds(args.seed, args.frames, args.width, args.height, args.llffhold)
    report = {"command": command_line(__file__, argv),
              "views": rows,
              "mean": {f"IoU_{p}": round(float(np.mean([r[f"IoU_{p}"] for r in rows])), 4) for p in POLICIES}}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "motion_bound.json"), "w") as f:
        json.dump(report, f, indent=2)
    for row in rows:
        print(f"frame {row['frame']:3d}  " + "  ".join(f"{p} {row[f'IoU_{p}']:.3f}" for p in POLICIES))
    print("mean       " + "  ".join(f"{p} {report['mean'][f'IoU_{p}']:.3f}" for p in POLICIES))
    return report


if __name__ == "__main__":
    main()
