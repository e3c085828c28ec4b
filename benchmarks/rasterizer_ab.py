"""Our CUDA rasterizer against another version of its sources (and gsplat), in one process.

    git archive OLD_COMMIT submodules/diff-gaussian-rasterization/csrc | tar -x -C /tmp/old
    python benchmarks/rasterizer_ab.py --baseline-csrc /tmp/old/submodules/diff-gaussian-rasterization/csrc \
        [--model output/scene] [--out benchmarks/results/rasterizer_ab.json]

The baseline sources are built just in time under another extension name and driven through this
tree's Python wrapper (so its C++ signature must match, apart from the depth_first_sort flag,
which is left out for sources from before it). Timings interleave the variants
call by call (CUDA events, medians), so that drift of the machine affects all alike; this makes
small differences measurable where back-to-back runs (benchmarks/rasterizer.py) are too noisy.
Workloads: benchmarks/rasterizer.py's random one at --sizes, and --cameras views of a trained model.
"""
import argparse
import importlib.util
import json
import os
import statistics
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import rasterizer as bench  # noqa: E402
from benchmarks.common import command_line  # noqa: E402
from utils.cuda_ext import RASTERIZER_DIR, extension_build, load_rasterizer  # noqa: E402

# the files of csrc/ this tree compiles (its extension.py); the other version's csrc must have them too
BUILD = extension_build(RASTERIZER_DIR)
SOURCES = tuple(os.path.basename(s) for s in BUILD["SOURCES"])


def load_baseline(csrc: str):
    """This tree's Python wrapper around the extension built from `csrc`."""
    from torch.utils import cpp_extension

    missing = [f for f in SOURCES if not os.path.isfile(os.path.join(csrc, f))]
    if missing:
        sys.exit(f"--baseline-csrc {csrc!r} lacks {', '.join(missing)}: pass the csrc folder of the other version.")
    build = os.path.join(os.path.expanduser("~"), ".cache", "egomask_gs", "baseline_rasterizer")
    os.makedirs(build, exist_ok=True)
    print(f"Building the baseline rasterizer from {csrc} …", flush=True)
    compiled = cpp_extension.load(name="egorast_baseline_C", sources=[os.path.join(csrc, f) for f in SOURCES],
                                  build_directory=build, extra_cflags=list(BUILD["CXX_FLAGS"]),
                                  extra_cuda_cflags=list(BUILD["NVCC_FLAGS"]))
    package = os.path.join(RASTERIZER_DIR, "diff_gaussian_rasterization")
    name = "baseline_diff_gaussian_rasterization"
    spec = importlib.util.spec_from_file_location(name, os.path.join(package, "__init__.py"),
                                                  submodule_search_locations=[package])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module   # the package's relative imports look it up there
    spec.loader.exec_module(module)
    module.set_extension(_OlderApiAdapter(compiled))
    return module


class _OlderApiAdapter:
    """Lets this tree's wrapper drive an extension built from older sources. The current API
    (``RasterInputs`` present) passes straight through. Before it, the passes took the draw's
    inputs flat, the backward without the image size; before that, the forward also lacked
    depth_first_sort."""

    IMAGE_SIZE = slice(13, 15)   # image_height, image_width in RasterInputs' order

    def __init__(self, compiled):
        self.compiled = compiled
        self.takes_flag = None
        if hasattr(compiled, "RasterInputs"):
            self.RasterInputs = compiled.RasterInputs
            self.rasterize_forward = compiled.rasterize_forward
            self.rasterize_backward = compiled.rasterize_backward

    @staticmethod
    def RasterInputs(*values):
        return values

    def rasterize_forward(self, inputs, depth_first_sort, debug):
        if self.takes_flag is not False:
            try:
                result = self.compiled.rasterize_forward(*inputs, depth_first_sort, debug)
                self.takes_flag = True
                return result
            except TypeError:  # pybind11: incompatible arguments
                if self.takes_flag:
                    raise
                self.takes_flag = False
        return self.compiled.rasterize_forward(*inputs, debug)

    def rasterize_backward(self, inputs, *grads_saved_debug):
        flat = inputs[:self.IMAGE_SIZE.start] + inputs[self.IMAGE_SIZE.stop:]
        return self.compiled.rasterize_backward(*flat, *grads_saved_debug)


def interleaved(steps: dict, params: dict, repeats: int, warmup: int = 3) -> dict:
    """{phase: {variant: median ms}}, the variants timed in turn within each repeat."""
    for step in steps.values():
        for _ in range(warmup):
            step(params, True)
    result = {}
    for phase, backward in (("forward", False), ("forward_backward", True)):
        times = {name: [] for name in steps}
        for _ in range(repeats):
            for name, step in steps.items():
                times[name].append(bench.time_call(step, params, backward))
        result[phase] = {name: round(statistics.median(t), 3) for name, t in times.items()}
    result["ratio_forward_backward"] = round(result["forward_backward"]["baseline"]
                                             / result["forward_backward"]["current"], 3)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-csrc", required=True, help="csrc folder of the version to compare with")
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 200_000, 500_000, 1_000_000])
    parser.add_argument("--model", default=None, help="also a trained model folder (train.py -m)")
    parser.add_argument("--cameras", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--no-gsplat", action="store_true")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "rasterizer_ab.json"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("benchmarks/rasterizer_ab.py needs a CUDA GPU.")
    current, baseline = load_rasterizer(), load_baseline(args.baseline_csrc)
    peer = False
    if not args.no_gsplat:
        try:
            import gsplat  # noqa: F401
            peer = True
        except ImportError:
            print("gsplat not importable: comparing the two versions only.")

    rows = []
    for n in args.sizes:
        params = bench.leaves(bench.make_workload(n))
        steps = {"current": bench.ours_step(current, bench.ours_settings(current)),
                 "baseline": bench.ours_step(baseline, bench.ours_settings(baseline))}
        if peer:
            steps["gsplat"] = bench.gsplat_step(False)
        rows.append({"n": n, **interleaved(steps, params, args.repeats)})
        print(rows[-1], flush=True)
        del params
        torch.cuda.empty_cache()

    if args.model:
        from benchmarks.synthetic_quality import load_model
        dataset, _pipe, scene, gaussians, deform = load_model(args.model, -1)
        degree = gaussians.active_sh_degree
        for camera in bench.pick_cameras(scene.getTrainCameras() + scene.getTestCameras(), args.cameras):
            params = bench.leaves(bench.deformed_gaussians(gaussians, deform, camera.fid, dataset.is_6dof, "cuda"))
            steps = {name: bench.ours_step(module, bench.view_settings(module, camera, degree, "cuda"))
                     for name, module in (("current", current), ("baseline", baseline))}
            if peer:
                viewmats, Ks = bench.gsplat_camera(camera, "cuda")
                steps["gsplat"] = bench.gsplat_view_step(viewmats, Ks, int(camera.image_width), int(camera.image_height),
                                                         degree, camera.camera_center.cuda(), False)
            rows.append({"view": camera.image_name, "n": int(gaussians.get_xyz.shape[0]),
                         "resolution": [int(camera.image_width), int(camera.image_height)],
                         **interleaved(steps, params, args.repeats)})
            print(rows[-1], flush=True)

    report = {"command": command_line(__file__, argv), "device": torch.cuda.get_device_name(), "torch": torch.__version__, "baseline_csrc": args.baseline_csrc,
              "repeats": args.repeats, "timing": "CUDA-event medians, variants interleaved call by call",
              "ratio": "baseline / current forward+backward median", "rows": rows}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
