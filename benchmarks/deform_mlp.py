"""Time the deformation MLP (forward + backward + Adam step) per precision and size.

    python -m benchmarks.deform_mlp --gaussians 300000 --precisions fp32 tf32 bf16 [--json out.json]

Reports the median over --repeats timed iterations after --warmup untimed ones, and the largest
deviation of each precision's outputs from fp32 on the same inputs.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)   # run as a script from anywhere

from scene.deform_model import DeformModel  # noqa: E402


def time_iteration(model: DeformModel, xyz: torch.Tensor, t: torch.Tensor) -> float:
    """Seconds for one training iteration of the network (forward, backward, optimizer step)."""
    if xyz.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    d_xyz, d_rotation, d_scaling = model.step(xyz, t)
    loss = d_xyz.square().mean() + d_rotation.square().mean() + d_scaling.square().mean()
    with model.precision_context():  # TF32 must also cover the backward matmuls
        loss.backward()
    model.optimizer_step()
    if xyz.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def max_output_error(model: DeformModel, reference: DeformModel, xyz: torch.Tensor, t: torch.Tensor) -> float:
    with torch.no_grad():
        return max((a - b).abs().max().item() for a, b in zip(model.step(xyz, t), reference.step(xyz, t)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaussians", type=int, default=300_000)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "tf32", "bf16"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--is_6dof", action="store_true")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    xyz = torch.randn(args.gaussians, 3, device=args.device)
    t = torch.full((args.gaussians, 1), 0.5, device=args.device)
    hyper = argparse.Namespace(position_lr_init=1.6e-4, position_lr_final=1.6e-6, position_lr_delay_mult=0.01,
                               deform_lr_max_steps=40_000)
    reference = DeformModel(is_6dof=args.is_6dof, depth=args.depth, width=args.width, device=args.device)
    results = []
    for precision in args.precisions:
        model = DeformModel(is_6dof=args.is_6dof, depth=args.depth, width=args.width, precision=precision,
                            device=args.device)
        model.deform.load_state_dict(reference.deform.state_dict())
        error = max_output_error(model, reference, xyz, t)
        model.train_setting(hyper)
        for _ in range(args.warmup):
            time_iteration(model, xyz, t)
        times = [time_iteration(model, xyz, t) for _ in range(args.repeats)]
        row = {"precision": precision, "used": model.precision, "ms": 1000 * statistics.median(times),
               "max_abs_error_vs_fp32": error, "notices": model.notices}
        results.append(row)
        print(f"{precision:>5} (runs {model.precision}): {row['ms']:8.2f} ms/iteration  "
              f"max |Δ| vs fp32 {error:.2e}")
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    summary = {"device": device, "torch": torch.__version__, "gaussians": args.gaussians, "depth": args.depth,
               "width": args.width, "is_6dof": args.is_6dof, "results": results}
    print(f"device: {device}, torch {torch.__version__}, N = {args.gaussians}, D = {args.depth}, W = {args.width}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
