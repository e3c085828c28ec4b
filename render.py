"""Render a trained model: views, depth, hand map, hands decomposition and a fixed view over time.

    python render.py -m OUT [-s SCENE] [--iteration N] [--skip_train] [--skip_test] [--fix_view I]

The saved configuration (OUT/cfg_args.json) supplies every training flag; flags given here win.
For each split, OUT/<split>/ours_<N>/ receives (one PNG per view, named by the camera's image name):
  renders/        the rendered image              gt/         the ground truth
  depth/          expected depth, near bright (min-max per view; black where nothing is rendered)
  hands_mask/     the rendered hand map (mean over the K mask channels, grey)
  hands_mask_binary/  the hand pixels (scene/decomposition.py's hand_pixels, --hand_pixels: by default where
                  the hands layer covers the pixel, alpha > 0.5; cleaned)
  static/         only the static Gaussians (with --static_fill on, the default, the Gaussians no training
                  frame showed outside the hands take their neighbours' colour and the holes the hands
                  leave are painted from around them: scene/static_fill.py)
  hands/          only the hand Gaussians
  hands_alpha/    the opacity of the hands layer (what metrics.py's hands_precision/recall score)
  hands_segment/  the render inside hands_mask_binary, background outside
  fix/, fix_mask/ training camera --fix_view (default: the middle one) at the time of every view
  strip/          gt | render | static | hands side by side, to judge a run at a glance
  gt_masks/       the scene's hand mask at the render's size (scenes with masks; metrics.py reads it)
plus <folder>.mp4 (or .gif) per sequence (not gt_masks) and fps.json (deformation + render of one
view, timed over --fps_renders renders after --fps_warmup, the views repeated; Gaussian count).
Which Gaussians are hands is decided by scene/decomposition.py (--hand_rule, --hand_threshold, ...).
"""
import os
import sys
import time
from argparse import ArgumentParser, Namespace
from typing import Dict, List, Optional

import torch

from arguments import (ModelParams, PipelineParams, get_combined_args, non_negative_int, positive_float,
                       positive_int)
from gaussian_renderer import DeformedGaussians, background_color, deform_gaussians, render_deformed
from gaussian_renderer.backend import get_rasterizer
from scene import Scene
from scene.readers.dataset_types import DatasetError
from scene.decomposition import (Decomposition, add_decomposition_args, decompose_model, deformation_gate,
                                 hand_pixels)
from scene.deform_model import DeformModel, resolve_precision
from scene.static_fill import fill_colours, fill_holes, shown_weight, with_features
from scene.gaussian_model import GaussianModel
from utils.atomic import write_json_atomic
from utils.general_utils import set_cpu_threads
from utils.schedule import deformation_applied
from utils.image_io import read_rgb, write_image
from utils.image_utils import depth_for_viewing, to_uint8
from utils.video import write_video

IMAGE_FOLDERS = ("renders", "gt", "depth", "hands_mask", "hands_mask_binary", "static", "hands", "hands_alpha",
                 "hands_segment", "fix", "fix_mask", "strip")
GT_MASK_FOLDER = "gt_masks"   # written when the scene has hand masks; no video
STRIP_GAP = 2  # px of white between the panels of strip/ (gt | render | static | hands)
EXIT_BAD_INPUT = 2


class RenderError(Exception):
    """A problem with the command line or the model folder; printed in one line (exit status 2)."""


def build_parser():
    parser = ArgumentParser(description="Render a trained EgoMask model (views, depth, hands decomposition).")
    model, pipeline = ModelParams(parser), PipelineParams(parser)
    parser.add_argument("--iteration", default=-1, type=int, help="saved iteration to render (-1: latest)")
    parser.add_argument("--skip_train", action="store_true")
    parser.add_argument("--skip_test", action="store_true")
    parser.add_argument("--fix_view", type=int, default=None,
                        help="index of the training camera (time order) for fix/; default the middle one")
    parser.add_argument("--mask_kernel", type=int, default=5, help="odd kernel size of the hand-mask cleaning")
    parser.add_argument("--fps_warmup", type=non_negative_int, default=3, help="untimed renders before the speed is timed")
    parser.add_argument("--fps_renders", type=positive_int, default=100,
                        help="renders timed for fps.json (the split's views repeated as needed)")
    parser.add_argument("--video_fps", type=positive_float, default=10.0)
    parser.add_argument("--no_video", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    add_decomposition_args(parser)
    return parser, model, pipeline


def resolve_args(argv, parser: Optional[ArgumentParser] = None) -> Namespace:
    """Command line over the saved cfg_args.json, after checking the model folder exists.
    parser: another tool's parser with ModelParams (view.py); default render.py's."""
    parser = parser or build_parser()[0]
    given = parser.parse_args(argv)
    if not given.model_path:
        raise RenderError("-m/--model_path is required: the output folder of train.py.")
    if not os.path.isdir(given.model_path):
        what = "is a file, not a folder" if os.path.exists(given.model_path) else "does not exist"
        raise RenderError(f"Model folder {given.model_path!r} {what}: pass the -m folder of train.py.")
    if not os.path.isfile(os.path.join(given.model_path, "cfg_args.json")) and not given.source_path:
        raise RenderError(f"No cfg_args.json in {given.model_path!r}: pass -s SCENE and the training flags.")
    if getattr(given, "mask_kernel", 1) < 1 or getattr(given, "mask_kernel", 1) % 2 == 0:
        raise RenderError(f"--mask_kernel must be a positive odd number, got {given.mask_kernel}.")
    args = get_combined_args(parser, argv)
    args.model_path = given.model_path  # the folder named here, even if cfg_args.json was copied from another
    return args


# ---------------------------------------------------------------- loading

def load_model(args: Namespace, model_params, device: torch.device):
    """Scene (cameras + Gaussians of the chosen iteration) and the deformation of the same iteration."""
    dataset = model_params.extract(args)
    if dataset.data_device == "cuda" and device.type != "cuda":
        dataset.data_device = "cpu"  # a config saved on a GPU machine, rendered on a CPU one
    gaussians = GaussianModel(dataset.sh_degree, dataset.mask_dimension, device=device)
    scene = Scene(dataset, gaussians, load_iteration=args.iteration)
    deform = DeformModel.for_model(
        dataset, precision=resolve_precision(getattr(args, "deform_precision", "auto"), device, recorded=False),
        device=device)
    try:
        deform.load_weights(dataset.model_path, scene.loaded_iter)
    except RuntimeError as err:  # truncated file or another architecture: the message says what to do
        raise RenderError(str(err)) from err
    deform.set_time_outside(dataset.time_outside, scene.getTrainCameras())
    for notice in deform.notices:
        print(notice)
    return dataset, scene, gaussians, deform


def deformation_active(args: Namespace, iteration: int) -> bool:
    """Training deforms from iteration warm_up on; an earlier snapshot is rendered undeformed."""
    return deformation_applied(iteration, int(getattr(args, "warm_up", 0) or 0))


def fixed_camera(train_cameras: List, fix_view: Optional[int]):
    if not train_cameras:
        raise RenderError("The scene has no training cameras: nothing to use for the fixed view (fix/).")
    index = len(train_cameras) // 2 if fix_view is None else fix_view
    if not 0 <= index < len(train_cameras):
        raise RenderError(f"--fix_view {fix_view} is out of range: the scene has {len(train_cameras)} "
                          f"training cameras, pass 0..{len(train_cameras) - 1}.")
    return train_cameras[index]


# ---------------------------------------------------------------- rendering

class ViewRenderer:
    """Deforms the Gaussians to a time and renders one camera, optionally a subset of them."""

    def __init__(self, gaussians, deform, pipe, background: torch.Tensor, is_6dof: bool, deform_on: bool,
                 gate: Optional[torch.Tensor] = None, fill_static: bool = False):
        self.gaussians, self.deform, self.pipe = gaussians, deform, pipe
        self.background, self.is_6dof, self.deform_on = background, is_6dof, deform_on
        self.gate = gate  # [N] share of the motion per Gaussian (--deform_gate), None: all move
        self.fill_static = fill_static   # --static_fill on: static_image paints the layer's holes

    def deformation(self, fid: float) -> DeformedGaussians:
        """The Gaussians at time fid (Camera.fid), once for every render of that time; undeformed
        when the snapshot predates warm-up."""
        offsets = self.deform.offsets(self.gaussians.get_xyz, fid, gate=self.gate) if self.deform_on \
            else (0.0, 0.0, 0.0)
        return deform_gaussians(self.gaussians, *offsets, is_6dof=self.is_6dof)

    def __call__(self, camera, deformed: DeformedGaussians, subset: Optional[torch.Tensor] = None,
                 opacity_weight: Optional[torch.Tensor] = None, colors: Optional[torch.Tensor] = None
                 ) -> Dict[str, torch.Tensor]:
        return render_deformed(camera, deformed, self.pipe, self.background, override_color=colors,
                               gaussian_subset=subset, opacity_weight=opacity_weight)

    def layer(self, camera, deformed: DeformedGaussians, split: Decomposition, name: str) -> Dict[str, torch.Tensor]:
        """The "hands" or "static" layer of a decomposition (Decomposition.layer), the static one
        with its filled colours when it has them."""
        if name == "static":
            deformed = with_features(deformed, split.static_features)
        return self(camera, deformed, *split.layer(name))

    def static_image(self, camera, deformed: DeformedGaussians, split: Decomposition, full: Dict) -> torch.Tensor:
        """The static layer as static/ shows it; with fill_static, the coverage the hands took from
        it (full["alpha"], the render of every Gaussian, minus the layer's) painted from around it."""
        layer = self.layer(camera, deformed, split, "static")
        if not self.fill_static:
            return layer["render"]
        return fill_holes(layer["render"], layer["alpha"], full["alpha"], self.background)

    def fill_static_layer(self, split: Decomposition, cameras: List) -> str:
        """--static_fill on: give split the static layer's colours (scene/static_fill.py), measured on
        cameras (the training views, with their hand masks); returns the line to print."""
        subset, weight = split.layer("static")
        device = self.gaussians.get_xyz.device

        def views():
            for camera in cameras:
                home = camera.data_device
                camera.to(device)
                with torch.no_grad():
                    deformed = self.deformation(camera.fid)
                yield camera, lambda colors: self(camera, deformed, subset, weight, colors)
                camera.to(home)

        members = split.members("static")
        shown = shown_weight(views(), members.shape[0], device)
        features, filled = fill_colours(self.gaussians.get_xyz, self.gaussians.get_features, members, shown)
        split.static_features = features if filled else None
        return (f"Static layer: {filled} of {int(members.sum())} static Gaussians were never shown outside the "
                "hands in the training views and take their shown neighbours' colour there (--static_fill off: "
                "their own).")

    def backend_name(self) -> str:
        module = get_rasterizer(getattr(self.pipe, "rasterizer", "auto"), self.gaussians.get_xyz.device)
        return "torch" if module.__name__.endswith("reference") else "cuda"


def hand_map_image(hand_map: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Rendered hand map [K, H, W] -> [1, H, W] in [0, 1] (mean over channels; zeros when K = 0)."""
    if hand_map.shape[0] == 0:
        return torch.zeros_like(like[:1])
    return hand_map.mean(dim=0, keepdim=True).clamp(0.0, 1.0)


def hands_segment(image: torch.Tensor, pixels: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """The render inside the hand pixels, background colour elsewhere. image [3,H,W], pixels [1,H,W] bool."""
    return torch.where(pixels, image, background[:, None, None].to(image.device))


def side_by_side(images: List[torch.Tensor], gap: int = STRIP_GAP) -> torch.Tensor:
    """[3, H, W] images -> one [3, H, n·W + (n-1)·gap] strip with white gaps between them."""
    height = images[0].shape[1]
    spacer = torch.ones(3, height, gap, dtype=images[0].dtype, device=images[0].device)
    pieces = []
    for index, image in enumerate(images):
        pieces += ([spacer] if index else []) + [image.to(spacer.device)[:3]]
    return torch.cat(pieces, dim=2)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def view_outputs(camera, fix_cam, deformed: DeformedGaussians, full: Dict, renderer: ViewRenderer,
                 split_info: Decomposition, kernel: int, pixel_rule: str) -> Dict[str, torch.Tensor]:
    """Every image of one view, by output folder. full: the render of all Gaussians at this view;
    pixel_rule: --hand_pixels."""
    image = full["render"].clamp(0.0, 1.0)
    hand_map = hand_map_image(full["hand_map"], image)
    fixed = renderer(fix_cam.to(camera.data_device), deformed)  # the fixed camera at this view's time
    fix_image = fixed["render"].clamp(0.0, 1.0)
    static = renderer.static_image(camera, deformed, split_info, full).clamp(0.0, 1.0)
    hands = renderer.layer(camera, deformed, split_info, "hands")
    hands_image = hands["render"].clamp(0.0, 1.0)
    hands_alpha = hands["alpha"].clamp(0.0, 1.0)
    hand_mask = hand_pixels(pixel_rule, hand_map, hands_alpha, kernel)
    gt = camera.original_image[:3]
    outputs = {
        "renders": image,
        "gt": gt,
        "depth": depth_for_viewing(full["depth"], full["alpha"]),
        "hands_mask": hand_map,
        "hands_mask_binary": hand_mask.float(),
        "static": static,
        "hands": hands_image,
        "hands_alpha": hands_alpha,
        "hands_segment": hands_segment(image, hand_mask, renderer.background),
        "fix": fix_image,
        "fix_mask": hand_map_image(fixed["hand_map"], fix_image),
        "strip": side_by_side([gt, image, static, hands_image]),
    }
    if camera.mask is not None:
        outputs["gt_masks"] = camera.mask  # the training mask at the render's size, for metrics.py
    return outputs


def render_split(split: str, cameras: List, fix_cam, renderer: ViewRenderer, split_info: Decomposition,
                 out_dir: str, args: Namespace) -> Dict:
    """Every output of one split; returns the speed record written to fps.json."""
    device = renderer.gaussians.get_xyz.device
    with torch.no_grad():
        for index, camera in enumerate(cameras):
            home = camera.data_device
            camera.to(device)  # cameras kept on the CPU (--data_device cpu) render next to the Gaussians
            deformed = renderer.deformation(camera.fid)
            full = renderer(camera, deformed)
            outputs = view_outputs(camera, fix_cam, deformed, full, renderer, split_info, args.mask_kernel,
                                   args.hand_pixels)
            for folder, picture in outputs.items():
                write_image(os.path.join(out_dir, folder, f"{camera.image_name}.png"), picture)
            camera.to(home)
            if not args.quiet:
                print(f"\r[{split}] {index + 1}/{len(cameras)} {camera.image_name}", end="", flush=True)
    if not args.quiet:
        print()
    return measure_speed(cameras, renderer, args.fps_warmup, args.fps_renders)


def measure_speed(cameras: List, renderer: ViewRenderer, warmup: int, renders: int) -> Dict:
    """FPS of deformation + render of one view: ``warmup`` untimed renders, then ``renders`` timed
    ones (the split's views in turn, repeated as needed), one clock around them all."""
    device = renderer.gaussians.get_xyz.device
    order = [cameras[i % len(cameras)] for i in range(warmup + renders)]
    homes = [camera.data_device for camera in cameras]
    with torch.no_grad():
        for camera in cameras:
            camera.to(device)
        for camera in order[:warmup]:
            renderer(camera, renderer.deformation(camera.fid))
        synchronize(device)
        start = time.perf_counter()
        for camera in order[warmup:]:
            renderer(camera, renderer.deformation(camera.fid))
        synchronize(device)
        seconds = (time.perf_counter() - start) / max(renders, 1)
        for camera, home in zip(cameras, homes):
            camera.to(home)
    return {"fps": 1.0 / seconds if seconds > 0 else None, "ms_per_frame": seconds * 1000.0,
            "frames_timed": renders, "warmup_frames": warmup, "views": len(cameras),
            "num_gaussians": int(renderer.gaussians.get_xyz.shape[0]),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "rasterizer": renderer.backend_name(),
            "includes_deformation": renderer.deform_on}


def write_videos(out_dir: str, names: List[str], fps: float) -> List[str]:
    """One video per image folder, frames in time order."""
    written = []
    for folder in IMAGE_FOLDERS:
        frames = [to_uint8(torch.from_numpy(read_rgb(os.path.join(out_dir, folder, f"{n}.png"))).permute(2, 0, 1))
                  for n in names]
        path = write_video(frames, os.path.join(out_dir, folder), fps)
        if path:
            written.append(path)
    return written


def render_sets(args: Namespace, model_params, pipeline_params) -> Dict[str, str]:
    """Render the requested splits; returns {split: output folder}."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    set_cpu_threads(getattr(args, "cpu_threads", -1), device)   # as train.py
    dataset, scene, gaussians, deform = load_model(args, model_params, device)
    pipe = pipeline_params.extract(args)
    iteration = scene.loaded_iter
    gate = deformation_gate(gaussians, args)
    split_info = decompose_model(gaussians, args, gate)
    if split_info.notice:
        print(split_info.notice)
    print(f"Rendering {dataset.model_path} at iteration {iteration}: {gaussians.get_xyz.shape[0]} Gaussians, "
          f"{split_info.num_hands} hands ({args.hand_rule} rule).")
    deform_on = deformation_active(args, iteration)
    if not deform_on:
        print(f"Iteration {iteration} is before the deformation warm-up ({args.warm_up}): rendering undeformed.")
    background = background_color(dataset.white_background, device)
    renderer = ViewRenderer(gaussians, deform, pipe, background, dataset.is_6dof, deform_on,
                            gate, fill_static=args.static_fill == "on")
    try:
        renderer.backend_name()  # --rasterizer cuda without a usable GPU fails here, before any output
    except RuntimeError as err:
        raise RenderError(" ".join(str(err).split())) from err
    fix_cam = fixed_camera(scene.getTrainCameras(), args.fix_view)
    if args.static_fill == "on" and split_info.num_hands and scene.has_masks:
        print(renderer.fill_static_layer(split_info, scene.getTrainCameras()))

    splits = {"train": scene.getTrainCameras() if not args.skip_train else [],
              "test": scene.getTestCameras() if not args.skip_test else []}
    written = {}
    for split, cameras in splits.items():
        if not cameras:
            continue
        out_dir = os.path.join(dataset.model_path, split, f"ours_{iteration}")
        speed = render_split(split, cameras, fix_cam, renderer, split_info, out_dir, args)
        speed["num_hand_gaussians"] = split_info.num_hands
        write_json_atomic(os.path.join(out_dir, "fps.json"), speed)
        print(f"[{split}] {speed['fps']:.2f} FPS over {speed['frames_timed']} views, "
              f"{speed['num_gaussians']} Gaussians -> {out_dir}")
        if not args.no_video:
            videos = write_videos(out_dir, [c.image_name for c in cameras], args.video_fps)
            if not videos:
                print(f"[{split}] no video writer available: videos skipped.")
        written[split] = out_dir
    if not written:
        raise RenderError("Nothing to render: the splits asked for are empty or skipped (a model trained without "
                          "--eval has no test split: drop --skip_train, or train with --eval).")
    return written


def main(argv=None) -> int:
    try:
        args = resolve_args(argv)
        _, model_params, pipeline_params = build_parser()
        render_sets(args, model_params, pipeline_params)
    except (RenderError, DatasetError, OSError) as err:  # OSError: also a full or read-only disk
        print(f"Error: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
