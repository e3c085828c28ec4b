"""Train a deformable Gaussian scene from an egocentric video with the EgoMask losses.

    python train.py -s SCENE -m OUT --eval [--iterations 40000 --warm_up 3000 ...]

The loss phases live in ``utils/schedule.py``; this file wires data, model, renderer and losses.
"""
import json
import os
import random
import shlex
import signal
import sys
import threading
import time
from argparse import ArgumentDefaultsHelpFormatter, ArgumentParser, Namespace
from dataclasses import dataclass, field
from functools import partial
from typing import Dict, List, Optional

import torch
from tqdm import tqdm

from arguments import (ModelParams, OptimizationParams, PipelineParams, add_run_arguments, apply_recipe,
                       explicit_arguments, save_config, UPSTREAM_TIME)
from gaussian_renderer import (DeformedGaussians, background_color, deform_gaussians, render, render_deformed,
                               render_layers)
from scene import Scene
from scene.decomposition import check_training_options, deformation_gate
from scene.deform_model import DeformModel, resolve_precision
from scene.readers.dataset_types import DatasetError
from scene.densify import DensificationStrategy
from scene.gaussian_model import GaussianModel
from utils.atomic import write_json_atomic
from utils.checkpoint import CheckpointError, capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from utils.cuda_graphs import GraphedCalls
from utils.general_utils import seed_everything, set_cpu_threads
from utils.image_utils import psnr
from utils.loss_check import LossCheck, drop_unapplied_state
from utils.loss_utils import depth_loss_minmax, depth_loss_ssi, depth_valid_mask, l1_loss, mask_loss, photometric_loss
from utils.model_folder import clear_outputs, latest_checkpoint, trained_outputs
from utils.schedule import TrainingSchedule
from utils.speed import PhaseSpeedMeter
from utils.system_utils import print_once
import view   # the --viewer page (viser itself is imported only when a page is served)

NUM_TRAIN_EVAL_VIEWS = 5
RENDER_LOSS_KEYS = ("render", "alpha", "depth", "hand_map")   # the render's outputs the losses may read
# each term of layer_losses and the flag that weighs it
LAYER_LOSS_WEIGHTS = {"hands_alpha": "hands_layer_weight", "hands_color": "hands_layer_weight",
                      "static_color": "static_layer_weight"}


class NonFiniteLoss(RuntimeError):
    pass


class RunError(Exception):
    """A run that must not start (bad flag, occupied model folder); printed in one line, exit 2."""


class TrainingInterrupted(Exception):
    """Ctrl-C: the iteration in flight finished and a checkpoint was written."""

    def __init__(self, iteration: int, path: str):
        super().__init__(f"Interrupted after iteration {iteration}; saved {path}. Resume with:\n"
                         f"  python train.py --start_checkpoint {shlex.quote(path)}")
        self.iteration, self.path = iteration, path


class InterruptRequest:
    """Turns the first Ctrl-C into a request the loop honours at the end of its iteration (so the
    checkpoint is a consistent state); a second Ctrl-C stops at once. As a context manager it
    installs itself as the SIGINT handler (main thread only) and restores the previous one."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nStopping after this iteration to save a checkpoint (Ctrl-C again to stop at once).",
              file=sys.stderr, flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


@dataclass
class RunState:
    """What changes from one iteration to the next apart from the models themselves."""
    iteration: int = 0
    camera_stack: List[int] = field(default_factory=list)
    ema_loss: float = 0.0
    best_psnr: float = 0.0
    best_iteration: int = 0
    test_psnr: Dict[int, float] = field(default_factory=dict)  # iteration -> mean test PSNR


def training_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fused_adam(device: torch.device, pipe) -> bool:
    """torch's fused Adam: on CUDA under --adam fused, never for --speed_baseline. Not on the CPU,
    where training stays bit-for-bit what it was (exact resume and the demo's figures)."""
    return device.type == "cuda" and pipe.adam == "fused" and not pipe.speed_baseline


def cuda_graphs(device: torch.device, pipe, run: Namespace) -> bool:
    """Replay the losses and the deformation network as CUDA graphs (utils/cuda_graphs.py): on
    CUDA under --cuda_graphs on, never for --speed_baseline or under --detect_anomaly (whose
    per-operation checks a replay would skip)."""
    return (device.type == "cuda" and getattr(pipe, "cuda_graphs", "off") == "on" and not pipe.speed_baseline
            and not run.detect_anomaly)


def pick_camera(state: RunState, cameras: List, rng: random.Random):
    """Random view without replacement within an epoch (as upstream), reproducibly seeded."""
    if not state.camera_stack:
        state.camera_stack = list(range(len(cameras)))
    return cameras[state.camera_stack.pop(rng.randrange(len(state.camera_stack)))]


def deform_for(camera, gaussians: GaussianModel, deform: DeformModel, phase, gate, noise_std: float = 0.0,
               every_row: bool = False):
    """Deformation offsets at the camera's time (plus annealed time noise while training), each
    Gaussian's share set by gate [N] (None: all move); zero before warm-up, without the network.
    every_row runs the network on static Gaussians too (same offsets, the speed baseline)."""
    if not phase.deform:
        return 0.0, 0.0, 0.0
    return deform.offsets(gaussians.get_xyz, camera.fid, noise_std, gate, every_row=every_row)


def recipe_without_masks(dataset, opt, run: Namespace, scene: Scene, gaussians: GaussianModel) -> List[str]:
    """Without hand masks (or without a hand feature) there are no hands to decompose: train as
    Deformable-3DGS does. --deform_gate hand would leave every Gaussian static, so the gate is
    switched off; the recipe's time handling (made for short hand clips: encoding, time network,
    time noise) goes back to upstream's, flag by flag, unless given explicitly. For this run and in
    its saved config, which render.py reads. Returns the notices."""
    if scene.has_masks and gaussians.mask_dimension > 0:
        return []
    notices = []
    if getattr(opt, "deform_gate", "none") == "hand":
        opt.deform_gate = run.deform_gate = "none"
        notices.append("No hand masks to label the hands: every Gaussian deforms (--deform_gate none for this run).")
    changed = [key for key, value in UPSTREAM_TIME.items()
               if key in getattr(run, "recipe_set", ()) and getattr(run, key) != value]
    for key in changed:
        setattr(run, key, UPSTREAM_TIME[key])
        for group in (dataset, opt):
            if hasattr(group, key):
                setattr(group, key, UPSTREAM_TIME[key])
    if changed:
        flags = " ".join(f"--{key} {UPSTREAM_TIME[key]}" for key in changed)
        notices.append(f"No hand masks: the time handling is upstream's ({flags} for this run).")
    return notices


def decomposition_layers(gate: Optional[torch.Tensor], phase, camera, opt) -> Dict[str, torch.Tensor]:
    """The decomposition's layers a step draws beside the image, as opacity weights: the hands
    (opacity x gate, the Gaussians that move) and the static scene (opacity x (1 - gate)), each
    where its loss weight is > 0, in the phases that use the hand masks. The gate is detached:
    the layer losses move, shape and colour the Gaussians, the mask loss labels them."""
    if gate is None or not phase.uses_mask or camera.mask is None:
        return {}
    gate = gate.detach()
    layers = {}
    if opt.hands_layer_weight > 0:
        layers["hands"] = gate
    if opt.static_layer_weight > 0:
        layers["static"] = 1.0 - gate
    return layers


def draw_step(camera, gaussians: DeformedGaussians, pipe, background: torch.Tensor,
              layers: Dict[str, torch.Tensor], one_draw: bool = True):
    """The step's image and its decomposition layers (each on black), from the step's deformed
    Gaussians: (image package, {layer name: package}). one_draw draws them all in one
    rasterizer call (render_layers); otherwise one call each (the speed baseline). A Gaussian
    whose weighted opacity is below the rasterizers' alpha floor (gate 0 in the hands layer)
    touches no tile of that layer, so no host sync or row gather is needed to pick a layer's
    Gaussians."""
    if not layers:
        return render_deformed(camera, gaussians, pipe, background), {}
    black = torch.zeros(3, device=background.device)
    if one_draw:
        packages = render_layers(camera, gaussians, pipe, [background] + [black] * len(layers),
                                 [None] + list(layers.values()))
        return packages[0], dict(zip(layers, packages[1:]))
    return render_deformed(camera, gaussians, pipe, background), {
        name: render_deformed(camera, gaussians, pipe, black, opacity_weight=weight) for name, weight in layers.items()}


def layer_losses(camera, layers: Dict[str, Dict]) -> Dict[str, torch.Tensor]:
    """Losses on the decomposition's layers (draw_step's packages): the hands layer's opacity is
    the hand mask (``hands_alpha``, L1) and its colour the image inside the mask
    (``hands_color``); the static layer's colour is the image outside the mask (``static_color``)."""
    terms = {}
    if not layers:
        return terms
    device = next(iter(layers.values()))["render"].device
    mask = camera.mask.to(device)
    gt = camera.original_image.to(device)
    if "hands" in layers:
        hands = layers["hands"]
        terms["hands_alpha"] = (hands["alpha"] - mask).abs().mean()
        terms["hands_color"] = (mask * (hands["render"] - gt).abs()).mean()
    if "static" in layers:
        terms["static_color"] = ((1.0 - mask) * (layers["static"]["render"] - gt).abs()).mean()
    return terms


def compute_losses(render_pkg: Dict, camera, phase, opt, depth_kind_default: str) -> Dict[str, torch.Tensor]:
    """Each active loss term, unweighted except the colour mix; the total under key ``total``."""
    image = render_pkg["render"]
    gt = camera.original_image.to(image.device)
    terms = {"color": photometric_loss(image, gt, opt.lambda_dssim)}
    total = phase.color_weight * terms["color"]
    if phase.depth_weight > 0 and camera.depth_prior is not None:
        prior = camera.depth_prior.to(image.device)
        valid = depth_valid_mask(render_pkg["alpha"], prior)
        kind = camera.depth_kind or depth_kind_default
        fn = depth_loss_ssi if opt.depth_loss == "ssi" else depth_loss_minmax
        # Σ w z reads nearer than the surface where alpha < 1: compare the expected surface depth.
        surface_depth = render_pkg["depth"] / render_pkg["alpha"].clamp_min(1e-6)
        terms["depth"] = fn(surface_depth, prior, kind, valid)
        total = total + phase.depth_weight * terms["depth"]
    if phase.mask_weight > 0 and camera.mask is not None and render_pkg["hand_map"].shape[0] > 0:
        terms["mask"] = mask_loss(render_pkg["hand_map"], camera.mask.to(image.device))
        total = total + phase.mask_weight * terms["mask"]
    terms["total"] = total
    return terms


def loss_inputs(render_pkg: Dict, layer_pkgs: Dict[str, Dict], camera) -> Dict[str, torch.Tensor]:
    """Every tensor the step's losses may read, by name: the render's outputs, each layer's colour
    and alpha, and the camera's image, hand mask and depth prior (on the render's device)."""
    device = render_pkg["render"].device
    named = {key: render_pkg[key] for key in RENDER_LOSS_KEYS}
    named["gt"] = camera.original_image.to(device)
    if camera.mask is not None:
        named["mask"] = camera.mask.to(device)
    if camera.depth_prior is not None:
        named["prior"] = camera.depth_prior.to(device)
    for layer, package in layer_pkgs.items():
        named[f"{layer}/render"], named[f"{layer}/alpha"] = package["render"], package["alpha"]
    return named


def loss_terms(named: Dict[str, torch.Tensor], depth_kind: Optional[str], phase, opt,
               depth_kind_default: str) -> Dict[str, torch.Tensor]:
    """compute_losses and layer_losses on loss_inputs' tensors, the layer terms added to the
    total at their weights: every term, and the total under ``total``."""
    camera = Namespace(original_image=named["gt"], mask=named.get("mask"), depth_prior=named.get("prior"),
                       depth_kind=depth_kind)
    render_pkg = {key: named[key] for key in RENDER_LOSS_KEYS}
    layers = {}
    for key, value in named.items():
        if "/" in key:
            layer, output = key.split("/")
            layers.setdefault(layer, {})[output] = value
    terms = compute_losses(render_pkg, camera, phase, opt, depth_kind_default)
    for name, value in layer_losses(camera, layers).items():
        terms[name] = value
        terms["total"] = terms["total"] + getattr(opt, LAYER_LOSS_WEIGHTS[name]) * value
    return terms


def step_losses(render_pkg: Dict, layer_pkgs: Dict[str, Dict], camera, phase, opt, depth_kind_default: str,
                graphs: Optional[GraphedCalls] = None) -> Dict[str, torch.Tensor]:
    """The step's loss terms (loss_terms). With graphs (on CUDA) their forward and backward replay
    as recorded CUDA graphs: the same kernels, two replays (and the copies of the inputs into the
    recording) instead of about a hundred launches. Its key is what loss_terms reads besides
    tensors and opt (fixed for a run): the phase and the prior's kind.
    Every term but the total comes back detached (only the total is differentiated)."""
    named = loss_inputs(render_pkg, layer_pkgs, camera)
    names = tuple(named)

    def terms_of(*tensors):
        return loss_terms(dict(zip(names, tensors)), camera.depth_kind, phase, opt, depth_kind_default)

    if graphs is None:
        return terms_of(*named.values())

    def build():
        def detached_terms(*tensors):
            return {name: value if name == "total" else value.detach() for name, value in terms_of(*tensors).items()}
        return detached_terms
    return graphs((names, phase, camera.depth_kind), build, list(named.values()))


def checkpoint_state(state: RunState, gaussians, deform, strategy, rng: random.Random,
                     config: Optional[Dict] = None) -> Dict:
    return {
        "iteration": state.iteration,
        "config": config,   # the run's resolved flags: --start_checkpoint alone resumes the same run
        "run_state": vars(state).copy(),
        "gaussians": gaussians.state_dict(),
        "deform": deform.state_dict(),
        "densification": strategy.state_dict(),
        "rng": capture_rng_state(),
        "camera_rng": rng.getstate(),
    }


def read_losses(check: LossCheck, state: RunState, rng: random.Random, gaussians, deform, strategy, dataset,
                run) -> Dict[str, float]:
    """The loss terms of the steps recorded since the last read (the progress bar's running mean
    follows them); returns the last step's. When one is not finite, the state before that step
    is saved as chkpnt<its iteration - 1>.pth and NonFiniteLoss raised: no update has been applied
    since (a deferred check's skipped steps included), so only the step state is rewound."""
    values = {}
    for step in check.read():
        bad = step.first_non_finite()
        if bad is not None:
            rewind(step.context, state, rng, gaussians)   # camera order, RNGs, SH degree: back before it
            state.iteration = step.iteration - 1
            for optimizer in (gaussians.optimizer, deform.optimizer):
                drop_unapplied_state(optimizer)
            path = os.path.join(dataset.model_path, f"chkpnt{state.iteration}.pth")
            save_checkpoint(path, checkpoint_state(state, gaussians, deform, strategy, rng, run_config(run)))
            raise NonFiniteLoss(f"The {bad} loss is {step.values[bad]} at iteration {step.iteration}. "
                                f"Training stopped; the last good state is in {path}.")
        values = step.values
        state.ema_loss = 0.4 * values["total"] + 0.6 * state.ema_loss
    return values


def loss_read_due(iteration: int, opt, run, strategy, log_interval: int, interrupt) -> bool:
    """Whether a deferred loss check must be read after this iteration's backward: before
    anything that uses or keeps the model state (densification, evaluation, a save), at a log,
    on Ctrl-C and at the end."""
    return (iteration % log_interval == 0 or iteration == opt.iterations or interrupt.requested
            or strategy.edits_model_at(iteration) or iteration in run.test_iterations
            or iteration in run.save_iterations or iteration in run.checkpoint_iterations)


def step_snapshot(state: RunState, rng: random.Random, gaussians) -> Dict:
    """What an iteration changes before its parameter update: camera order, RNGs, SH degree."""
    return {"camera_stack": list(state.camera_stack), "camera_rng": rng.getstate(), "rng": capture_rng_state(),
            "active_sh_degree": gaussians.active_sh_degree}


def rewind(snapshot: Dict, state: RunState, rng: random.Random, gaussians) -> None:
    state.camera_stack = snapshot["camera_stack"]
    rng.setstate(snapshot["camera_rng"])
    restore_rng_state(snapshot["rng"])
    gaussians.active_sh_degree = snapshot["active_sh_degree"]


def restore_checkpoint(ckpt: Dict, gaussians, deform, strategy, rng: random.Random, opt) -> RunState:
    gaussians.load_state_dict(ckpt["gaussians"], opt)
    deform.load_state_dict(ckpt["deform"])
    strategy.load_state_dict(ckpt["densification"])
    restore_rng_state(ckpt["rng"])
    rng.setstate(ckpt["camera_rng"])
    return RunState(**ckpt["run_state"])


@torch.no_grad()
def evaluate(scene: Scene, gaussians, deform, pipe, opt, background, is_6dof: bool, phase, writer,
             iteration: int) -> Optional[float]:
    """L1 and PSNR on the test views and a few training views; one image on the device at a time."""
    train_cams = scene.getTrainCameras()
    step = max(1, len(train_cams) // NUM_TRAIN_EVAL_VIEWS)
    splits = {"test": scene.getTestCameras(), "train": train_cams[::step][:NUM_TRAIN_EVAL_VIEWS]}
    test_psnr = None
    for split, cameras in splits.items():
        if not cameras:
            continue
        l1_sum, psnr_sum = 0.0, 0.0
        for idx, camera in enumerate(cameras):
            d = deform_for(camera, gaussians, deform, phase, deformation_gate(gaussians, opt))
            out = render(camera, gaussians, pipe, background, *d, is_6dof=is_6dof)
            image = out["render"].clamp(0.0, 1.0)
            gt = camera.original_image.to(image.device)
            l1_sum += l1_loss(image, gt).item()
            psnr_sum += psnr(image, gt).mean().item()
            if writer is not None and idx < 3:
                writer.add_image(f"{split}_view_{camera.image_name}/render", image, iteration)
                writer.add_image(f"{split}_view_{camera.image_name}/ground_truth", gt, iteration)
        l1_avg, psnr_avg = l1_sum / len(cameras), psnr_sum / len(cameras)
        print(f"\n[ITER {iteration}] Evaluating {split}: L1 {l1_avg:.5f} PSNR {psnr_avg:.2f}")
        if writer is not None:
            writer.add_scalar(f"{split}/l1", l1_avg, iteration)
            writer.add_scalar(f"{split}/psnr", psnr_avg, iteration)
        if split == "test":
            test_psnr = psnr_avg
    return test_psnr


VIEWER_REFRESH_STEPS = 10      # the page's frame is redrawn with the current model this often
VIEWER_MIN_FRAME_SECONDS = 0.1  # at most 10 frames a second: a watched run keeps most of its speed


def start_viewer(run: Namespace, scene: Scene, gaussians, deform, pipe, opt, background, is_6dof: bool,
                 phase_now: Dict):
    """view.py's page on --viewer_port, drawn by train.py between steps (ViewerPage.tick), or None
    with a one-line notice when viser is missing or the port is taken: training goes on."""
    try:
        view.require_viser()
        live = view.LiveModel(gaussians, deform, pipe, background, is_6dof,
                              deform_on=lambda: phase_now["deform"], gate=lambda: deformation_gate(gaussians, opt))
        page = view.ViewerPage(live, view.named_cameras(scene), "0.0.0.0", run.viewer_port,
                               max_width=view.default_render_width(gaussians.get_xyz.device), own_thread=False,
                               min_frame_seconds=VIEWER_MIN_FRAME_SECONDS,
                               title=f"{os.path.basename(os.path.normpath(run.model_path))} · training")
    except (view.ViewerError, OSError) as err:
        print(f"Note: no viewer ({' '.join(str(err).split())}); training goes on.")
        return None
    moved = f" (port {run.viewer_port} was taken)" if page.port != run.viewer_port else ""
    print(f"Viewer at http://localhost:{page.port}{moved} (refreshed every {VIEWER_REFRESH_STEPS} steps).")
    return page


def make_writer(model_path: str):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print_once("TensorBoard is not installed: no training curves will be logged.")
        return None
    return SummaryWriter(model_path)


def log_scalars(writer, values: Dict[str, float], gaussians, deform, iteration: int, iter_ms: float):
    if writer is None:
        return
    for name, value in values.items():
        writer.add_scalar(f"train/loss_{name}", value, iteration)
    writer.add_scalar("train/num_gaussians", gaussians.get_xyz.shape[0], iteration)
    writer.add_scalar("train/iter_time_ms", iter_ms, iteration)
    for group in gaussians.optimizer.param_groups:
        if group.get("name") == "xyz":
            writer.add_scalar("train/lr_xyz", group["lr"], iteration)
    writer.add_scalar("train/lr_deform", deform.optimizer.param_groups[0]["lr"], iteration)


def training(dataset, opt, pipe, run: Namespace, checkpoint: Optional[Dict] = None,
             interrupt: Optional["InterruptRequest"] = None) -> Dict:
    """The training loop; returns a summary (best test PSNR and its iteration, final count).

    checkpoint: a loaded chkpnt<N>.pth to resume from (main reads it before anything else). The
    model folder is written only once the scene, the models and the checkpoint have loaded."""
    device = training_device()
    set_cpu_threads(run.cpu_threads, device)
    seed_everything(run.seed)
    # Multithreaded CPU reductions (index_add_) otherwise vary in their last bits from run to run,
    # which would break exact resume; on CUDA determinism costs speed, so it is opt-in there.
    torch.use_deterministic_algorithms(device.type == "cpu" or run.deterministic, warn_only=True)
    gaussians = GaussianModel(dataset.sh_degree, dataset.mask_dimension, device=device)
    scene = Scene(dataset, gaussians)
    recipe_notices = recipe_without_masks(dataset, opt, run, scene, gaussians)   # before the network is built
    graphed = cuda_graphs(device, pipe, run)
    precision = "fp32" if pipe.speed_baseline else resolve_precision(pipe.deform_precision, device, graphed)
    deform = DeformModel.for_model(dataset, precision=precision, device=device)
    deform.set_time_outside(dataset.time_outside, scene.getTrainCameras())   # evaluate's test views
    fused = fused_adam(device, pipe)
    gaussians.training_setup(opt, fused=fused)
    deform.train_setting(opt, fused=fused)
    observed_pixels = sum(camera.image_width * camera.image_height for camera in scene.getTrainCameras())
    strategy = DensificationStrategy.from_options(opt, dataset.white_background, observed_pixels)
    strategy.reset(gaussians.get_xyz.shape[0], device)
    schedule = TrainingSchedule(opt, has_masks=scene.has_masks, has_depth=scene.has_depth,
                                is_blender=dataset.is_blender)
    for notice in schedule.notices + deform.notices + recipe_notices:
        print_once(notice)

    rng = random.Random(run.seed)
    state = RunState()
    if checkpoint is not None:
        state = restore_checkpoint(checkpoint, gaussians, deform, strategy, rng, opt)
        print(f"Resuming from {run.start_checkpoint} at iteration {state.iteration}.")
    write_model_folder(run, scene)

    background = background_color(dataset.white_background, device)
    train_cameras = scene.getTrainCameras()
    writer = make_writer(dataset.model_path)
    progress = tqdm(range(state.iteration + 1, opt.iterations + 1), initial=state.iteration, total=opt.iterations,
                    desc="Training", disable=run.quiet, dynamic_ncols=True)
    torch.autograd.set_detect_anomaly(run.detect_anomaly)
    meter = PhaseSpeedMeter(device)  # training steps alone (no tests, saving or start-up): the it/s figures
    log_interval = 1 if pipe.speed_baseline else max(1, pipe.log_interval)
    # Deferred, the finite check reads the losses every log_interval steps instead of every step;
    # it needs fused Adam, which skips a bad step's update on the device (utils/loss_check.py).
    check = LossCheck(device, deferred=fused and not run.detect_anomaly)
    loss_graphs = GraphedCalls("losses") if graphed else None
    deform.use_cuda_graphs(graphed)
    graphs = {"losses": loss_graphs, "network": deform.graphs}   # their recordings go in train_summary.json

    interrupt = interrupt or InterruptRequest()   # main() installs it as the Ctrl-C handler
    phase_now = {"deform": False}
    viewer = start_viewer(run, scene, gaussians, deform, pipe, opt, background, dataset.is_6dof, phase_now) \
        if getattr(run, "viewer", False) else None
    for iteration in progress:
        before_step = step_snapshot(state, rng, gaussians)
        phase = schedule.phase(iteration)
        meter.start_step(phase.name)
        eval_seconds = 0.0
        gaussians.set_position_lr(schedule.position_lr(iteration, gaussians.spatial_lr_scale))
        deform.set_learning_rate(schedule.deform_lr(iteration))
        gaussians.set_mask_trainable(phase.train_mask_feature)
        deform.set_trainable(phase.train_deform)
        if schedule.raises_sh_degree(iteration):
            gaussians.oneupSHdegree()

        camera = pick_camera(state, train_cameras, rng)
        if dataset.load2gpu_on_the_fly:
            camera.to(device)
        noise_std = schedule.time_noise_std(iteration, len(train_cameras))
        gate = deformation_gate(gaussians, opt) if phase.deform else None
        offsets = deform_for(camera, gaussians, deform, phase, gate, noise_std, every_row=pipe.speed_baseline)
        deformed = deform_gaussians(gaussians, *offsets, is_6dof=dataset.is_6dof)  # shared by the step's renders
        layers = decomposition_layers(gate, phase, camera, opt)
        render_pkg, layer_pkgs = draw_step(camera, deformed, pipe, background, layers,
                                           one_draw=not pipe.speed_baseline)
        terms = step_losses(render_pkg, layer_pkgs, camera, phase, opt, dataset.depth_prior_kind, loss_graphs)
        # The finite check (utils/loss_check.py) is read after queueing the backward pass, so the
        # GPU works through it during the read instead of idling; deferred, only every few steps.
        # Under --detect_anomaly, backward itself would raise on a NaN: read first there.
        check.record(iteration, terms, before_step)
        read = partial(read_losses, check, state, rng, gaussians, deform, strategy, dataset, run)
        values = read() if run.detect_anomaly else None
        with deform.backward_precision_context():
            terms["total"].backward()
        if values is None and (not check.deferred or
                               loss_read_due(iteration, opt, run, strategy, log_interval, interrupt)):
            values = read()

        if iteration in run.test_iterations:  # before this iteration's densification and opacity reset
            eval_start = meter.timed_pause()
            test_psnr = evaluate(scene, gaussians, deform, pipe, opt, background, dataset.is_6dof, phase, writer,
                                 iteration)
            if test_psnr is not None:
                state.test_psnr[iteration] = test_psnr
            if test_psnr is not None and test_psnr > state.best_psnr:
                state.best_psnr, state.best_iteration = test_psnr, iteration
            eval_seconds = time.perf_counter() - eval_start

        with torch.no_grad():
            strategy.step(gaussians, render_pkg, iteration, scene.cameras_extent, valid=check.valid)
            check.guard(gaussians.optimizer, deform.optimizer)   # the model may have rebuilt its optimizer
            gaussians.optimizer.step()
            gaussians.optimizer.zero_grad(set_to_none=True)
            deform.optimizer_step()
        if dataset.load2gpu_on_the_fly:
            camera.to("cpu")

        state.iteration = iteration
        iter_ms = meter.end_step(eval_seconds, deform.last_rows if phase.deform else 0) * 1000.0
        if viewer is not None:   # between steps, so no frame sees a half-updated model
            phase_now["deform"] = phase.deform
            if iteration % VIEWER_REFRESH_STEPS == 0:
                viewer.refresh()
            viewer.tick()
        if iteration % log_interval == 0:  # TensorBoard and the progress bar: host work, not every step
            progress.set_postfix({"loss": f"{state.ema_loss:.5f}", "gaussians": gaussians.get_xyz.shape[0]})
            log_scalars(writer, values, gaussians, deform, iteration, iter_ms)
        if iteration in run.save_iterations or iteration in run.checkpoint_iterations or interrupt.requested:
            meter.flush()   # the GPU's pending work belongs to the steps, not to the save

        if iteration in run.save_iterations:
            print(f"\n[ITER {iteration}] Saving Gaussians and deformation")
            scene.save(iteration)
            deform.save_weights(dataset.model_path, iteration)
        if iteration in run.checkpoint_iterations:
            path = os.path.join(dataset.model_path, f"chkpnt{iteration}.pth")
            save_checkpoint(path, checkpoint_state(state, gaussians, deform, strategy, rng, run_config(run)))
            print(f"\n[ITER {iteration}] Saved checkpoint {path}")
        if interrupt.requested:
            path = os.path.join(dataset.model_path, f"chkpnt{iteration}.pth")
            save_checkpoint(path, checkpoint_state(state, gaussians, deform, strategy, rng, run_config(run)))
            progress.close()
            write_summary(dataset.model_path, state, gaussians, opt, pipe, meter, graphs)   # the speed so far
            raise TrainingInterrupted(iteration, path)

    progress.close()
    if viewer is not None:
        viewer.close()
    if writer is not None:
        writer.close()
    summary = write_summary(dataset.model_path, state, gaussians, opt, pipe, meter, graphs)
    if summary["iterations_per_second"]:
        print(f"{sum(p['steps'] for p in summary['phases'].values())} training steps at "
              f"{summary['iterations_per_second']:.1f} it/s (steps alone: no tests, saving or start-up).")
    if state.best_iteration:
        print(f"Best test PSNR {state.best_psnr:.2f} at iteration {state.best_iteration}.")
    return summary


def write_summary(model_path: str, state: RunState, gaussians, opt, pipe, meter: PhaseSpeedMeter,
                  graphs: Dict[str, Optional[GraphedCalls]]) -> Dict:
    """train_summary.json: test PSNRs, the Gaussian count and the speed per phase, at the end of
    a run or when it is interrupted (``last_iteration`` says how far it got), and how many CUDA-graph
    recordings each graphed part made (each costs host time; 0 without --cuda_graphs or off the GPU)."""
    phases = meter.summary()
    steps_run = sum(p["steps"] for p in phases.values())
    step_seconds = sum(p["seconds"] for p in phases.values())
    summary = {"best_test_psnr": state.best_psnr, "best_iteration": state.best_iteration,
               "test_psnr": dict(state.test_psnr),
               "num_gaussians": int(gaussians.get_xyz.shape[0]), "iterations": opt.iterations,
               "last_iteration": state.iteration,
               "iterations_per_second": steps_run / step_seconds if step_seconds > 0 else None,
               "phases": phases, "speed_baseline": bool(pipe.speed_baseline),
               "cuda_graph_recordings": {name: calls.recordings_made if calls is not None else 0
                                         for name, calls in graphs.items()}}
    write_json_atomic(os.path.join(model_path, "train_summary.json"), summary)
    return summary


def run_config(run: Namespace) -> Dict:
    """The run's resolved flags as plain JSON values (what cfg_args.json holds)."""
    return json.loads(json.dumps(vars(run), default=str))


def write_model_folder(run: Namespace, scene: Scene) -> None:
    """The run's first writes to its model folder, once every input has loaded: cfg_args.json
    (atomically: if the disk refuses it, the folder is as it was), then an earlier run's results go
    (--overwrite), then input.ply and cameras.json."""
    save_config(run, run.model_path)
    if getattr(run, "overwrite", False) and not run.start_checkpoint:
        clear_outputs(run.model_path)
    scene.save_inputs()


# Flags added since configurations were first saved with checkpoints: the value a run saved
# without them trained with.
BEFORE_THE_FLAG = {"densify_budget": 0.0, "time_network": "auto", "time_noise": "auto"}


def resume_configuration(args: Namespace, explicit: Dict) -> Optional[Dict]:
    """With --start_checkpoint: load it, and take every flag not given now from the configuration
    it carries (the run it came from). Returns the checkpoint, or None without the flag."""
    if not args.start_checkpoint:
        return None
    checkpoint = load_checkpoint(args.start_checkpoint, map_location=training_device())
    saved = checkpoint.get("config")
    if not saved:
        print(f"Note: {args.start_checkpoint} carries no configuration (an older checkpoint): the flags given "
              "now and the defaults are used; repeat the original run's flags.")
        apply_recipe(args, explicit)
        return checkpoint
    for key, value in saved.items():
        if key not in explicit and key != "start_checkpoint" and hasattr(args, key):
            setattr(args, key, value)
    for key, value in BEFORE_THE_FLAG.items():   # a run saved before the flag existed goes on as it began
        if key not in saved and key not in explicit:
            setattr(args, key, value)
    given = sorted(k for k in explicit if k != "start_checkpoint")
    print(f"Resuming with the configuration saved in {args.start_checkpoint}"
          + (f"; flags given now win: {', '.join('--' + k for k in given)}." if given else "."))
    if "recipe" in explicit:
        apply_recipe(args, explicit)
    return checkpoint


def validate_run(args: Namespace, opt) -> None:
    """What can be checked before the scene is read: the schedule, the backend, the model folder."""
    TrainingSchedule(opt, has_masks=True, has_depth=True)  # raises ValueError on an impossible schedule
    check_training_options(opt)                             # the decomposition's gate and layer weights
    if args.rasterizer == "cuda" and not torch.cuda.is_available():
        raise RunError("--rasterizer cuda needs a CUDA GPU, but PyTorch sees none: use --rasterizer auto or torch.")
    if args.log_interval < 1:
        raise RunError(f"--log_interval must be at least 1 (steps between TensorBoard logs), got {args.log_interval}.")
    if args.time_frequencies < -1:
        raise RunError(f"--time_frequencies must be -1 (upstream's choice) or a count >= 0, got {args.time_frequencies}.")
    if not 1 <= args.viewer_port <= 65535:
        raise RunError(f"--viewer_port must be in 1..65535, got {args.viewer_port}.")
    existing = trained_outputs(args.model_path)
    if existing and not args.start_checkpoint and not args.overwrite:
        latest = latest_checkpoint(args.model_path)
        resume = f"--start_checkpoint {latest} to resume, " if latest else ""
        raise RunError(f"{args.model_path} already holds a trained model ({', '.join(existing[:4])}): pass "
                       f"{resume}--overwrite to replace it, or another -m.")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description="Train an EgoMask deformable Gaussian model from an egocentric video.",
                            formatter_class=ArgumentDefaultsHelpFormatter)
    groups = ModelParams(parser), OptimizationParams(parser), PipelineParams(parser)
    add_run_arguments(parser)
    return parser, groups


def resolve_model_path(args: Namespace) -> None:
    if not args.model_path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        args.model_path = os.path.join("output", f"{os.path.basename(os.path.normpath(args.source_path))}-{stamp}")


def main(argv=None) -> Dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, (lp, op, pp) = build_parser()
    args = parser.parse_args(argv)  # unknown flags are an error (argparse exits with status 2)
    explicit = explicit_arguments(parser, argv)
    try:
        checkpoint = resume_configuration(args, explicit)
        if checkpoint is None:
            apply_recipe(args, explicit)
        if not args.source_path:
            parser.error("-s/--source_path is required: the scene folder to train on.")
        resolve_model_path(args)
        args.save_iterations = sorted(set(args.save_iterations + [args.iterations]))
        dataset, opt, pipe = lp.extract(args), op.extract(args), pp.extract(args)
        validate_run(args, opt)
        print(f"Output folder: {args.model_path}")
        with InterruptRequest() as interrupt:
            summary = training(dataset, opt, pipe, args, checkpoint, interrupt)
    except TrainingInterrupted as stop:
        print(stop, file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("\nStopped at once (second Ctrl-C): nothing saved since the last checkpoint.", file=sys.stderr)
        sys.exit(130)
    except (DatasetError, NonFiniteLoss, CheckpointError, RunError, ValueError, FileNotFoundError, OSError) as err:
        print(f"Error: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(2)
    print("Training complete.")
    return summary


if __name__ == "__main__":
    main()
