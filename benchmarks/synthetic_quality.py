"""What the EgoMask losses buy, measured on the synthetic scene (which knows the truth).

Trains the same short schedule twice — with the depth prior and without it (--no_depth) — and
reports, on the test views: PSNR of the initial and final renders, hand-mask IoU of the rendered
hand map (threshold 0.5) against the true masks, and the depth error of the rendered surface depth
against depth_metric/ (absolute relative error over pixels the scene covers). Writes JSON.

    python benchmarks/synthetic_quality.py --out output/quality [--iterations 600] [--rasterizer torch]
"""
import json
import os
import platform
import sys
import time
from argparse import ArgumentParser, Namespace

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import train  # noqa: E402
from arguments import ModelParams, PipelineParams, load_config  # noqa: E402
from full_eval import scaled_schedule  # noqa: E402
from gaussian_renderer import render  # noqa: E402
from scene import Scene  # noqa: E402
from scene.decomposition import deformation_gate  # noqa: E402
from scene.deform_model import DeformModel  # noqa: E402
from scene.gaussian_model import GaussianModel  # noqa: E402
from scene.synthetic import generate  # noqa: E402
from utils.image_utils import mask_iou, psnr  # noqa: E402


def load_model(model_path: str, iteration: int):
    parser = ArgumentParser()
    lp, pp = ModelParams(parser), PipelineParams(parser)
    cfg = load_config(model_path)
    args = parser.parse_args([])
    for key, value in cfg.items():
        if hasattr(args, key):
            setattr(args, key, value)
    dataset, pipe = lp.extract(args), pp.extract(args)
    gaussians = GaussianModel(dataset.sh_degree, dataset.mask_dimension)
    scene = Scene(dataset, gaussians, load_iteration=iteration)
    deform = DeformModel.for_model(dataset, device=gaussians.get_xyz.device)
    deform.load_weights(model_path, iteration)
    deform.set_time_outside(dataset.time_outside, scene.getTrainCameras())   # as render.py
    deform.gate = deformation_gate(gaussians, Namespace(**cfg))   # the run's --deform_gate, as render.py
    return dataset, pipe, scene, gaussians, deform


@torch.no_grad()
def score(model_path: str, source: str, iteration: int, deformed: bool = True) -> dict:
    """Mean PSNR, hand-mask IoU and depth abs-rel error over the test views."""
    dataset, pipe, scene, gaussians, deform = load_model(model_path, iteration)
    background = torch.zeros(3, device=gaussians.get_xyz.device)
    psnrs, ious, depth_errors = [], [], []
    for camera in scene.getTestCameras():
        if deformed:
            d = deform.offsets(gaussians.get_xyz, camera.fid, gate=deform.gate)
        else:
            d = (0.0, 0.0, 0.0)
        out = render(camera, gaussians, pipe, background, *d, is_6dof=dataset.is_6dof)
        gt = camera.original_image.to(background.device)
        psnrs.append(psnr(out["render"].clamp(0, 1), gt).mean().item())
        if camera.mask is not None and out["hand_map"].shape[0] > 0:
            ious.append(mask_iou(out["hand_map"].mean(0, keepdim=True) > 0.5, camera.mask.to(background.device) > 0.5))
        truth = torch.from_numpy(np.load(os.path.join(source, "depth_metric", camera.image_name + ".npy")))
        surface = (out["depth"] / out["alpha"].clamp_min(1e-6)).cpu()[0]
        valid = torch.isfinite(truth) & (out["alpha"].cpu()[0] > 0.5)
        if valid.any():
            depth_errors.append(((surface[valid] - truth[valid]).abs() / truth[valid]).mean().item())
    mean = lambda xs: float(np.mean(xs)) if xs else None
    return {"psnr": mean(psnrs), "mask_iou": mean(ious), "depth_abs_rel": mean(depth_errors),
            "num_gaussians": int(gaussians.get_xyz.shape[0])}


def main(argv=None) -> dict:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="output/quality")
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--rasterizer", default="torch")
    parser.add_argument("--json", default=None, help="where to write the results (default OUT/quality.json)")
    args, passthrough = parser.parse_known_args(argv)
    source = os.path.join(args.out, "data")
    if not os.path.isdir(source):
        generate(source, frames=args.frames, width=args.width, height=args.height, seed=0, num_points=1000)
    flags = scaled_schedule(args.iterations) + ["--llffhold", "4", "--eval", "--quiet", "--rasterizer", args.rasterizer,
                                                "--deform_depth", "4", "--deform_width", "64"] + passthrough
    results = {"command": " ".join(sys.argv), "iterations": args.iterations, "frames": args.frames,
               "size": [args.width, args.height], "device": "cuda" if torch.cuda.is_available() else "cpu",
               "torch": torch.__version__, "machine": platform.processor() or platform.machine(), "runs": {}}
    for name, extra in (("with_depth_prior", []), ("without_depth_prior", ["--no_depth"])):
        model = os.path.join(args.out, name)
        start = time.perf_counter()
        train.main(["-s", source, "-m", model, *flags, *extra, "--save_iterations", "1", str(args.iterations)])
        seconds = time.perf_counter() - start
        results["runs"][name] = {"train_seconds": seconds, "iterations_per_second": args.iterations / seconds,
                                 "initial": score(model, source, 1, deformed=False),
                                 "final": score(model, source, args.iterations)}
        print(name, json.dumps(results["runs"][name], indent=1))
    path = args.json or os.path.join(args.out, "quality.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print(f"Wrote {path}")
    return results


if __name__ == "__main__":
    main()
