"""The EgoMask training phases as one object: which losses weigh what, and what learns, per iteration.

Phases (EgoMask train.py, defaults in brackets; iterations run 1..iterations):
  warm-up  1 <= it < warm_up [3000]          no deformation; colour loss only
  depth    warm_up <= it < mask_start [30000] colour + 0.5·loss_reduce·depth
  mask     mask_start <= it <= mask_stop [40000] colour + 0.8·loss_reduce·mask + 0.2·loss_reduce·depth;
                                               the per-Gaussian hand-mask feature learns only here
  colour   it > mask_stop                    colour only
The colour loss is (1 − λ)·L1 + λ·(1 − SSIM) throughout (λ = lambda_dssim). Deformation is applied
from warm_up on, and the deformation network learns while warm_up <= it < stop_MLP (upstream steps
its optimizer only for it < stop_MLP). Boundaries follow EgoMask's comparisons, with one
correction: at it == mask_start upstream swaps the mask/depth weights (0.2 / 0.8) for that single
iteration, an artefact of overlapping conditions; here the mask phase starts cleanly.
A phase whose data is missing (no masks, no depth priors) keeps its place but its weight is 0;
``notices`` says so once. Annealing smooth training (Deformable 3DGS): with time noise
(--time_noise on; auto is upstream's, on except for Blender scenes), once deformation is on, t gets
Gaussian noise of std ``time_noise_std`` = (1 / frames) × a linear ramp 0.1 -> 1e-15 over
time_noise_steps [20000] iterations counted from iteration 0.

Configuration rules (checked in the constructor, ValueError otherwise): non-negative boundaries,
iterations >= 1, time_noise_steps >= 1, mask_start <= mask_stop, loss_reduce >= 0,
0 <= lambda_dssim <= 1, and stop_MLP > warm_up whenever deformation starts before the end
(otherwise the network would be applied without ever learning). Boundaries beyond the last
iteration are allowed (a short test run simply never reaches those phases) and get a notice.
"""
from argparse import ArgumentParser
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from arguments import OptimizationParams, resolve_switch
from utils.general_utils import get_expon_lr_func

DEFORM_LR_SCALE = 5          # upstream's "spatial_lr_scale" of the deformation network (a constant there)
SH_UP_INTERVAL = 1000        # the SH degree goes up by one every this many iterations (3DGS)
DEPTH_PHASE_FACTOR = 0.5
MASK_PHASE_MASK_FACTOR = 0.8
MASK_PHASE_DEPTH_FACTOR = 0.2
TIME_NOISE_START = 0.1
TIME_NOISE_END = 1e-15


def deformation_applied(iteration: int, warm_up: int) -> bool:
    """Whether the deformation network moves the Gaussians at (or in a model saved after) this
    iteration: from warm_up on. The one rule train.py (through the phases) and render.py use."""
    return iteration >= int(warm_up)


@dataclass(frozen=True)
class Phase:
    name: str                  # "warm-up", "depth", "mask" or "colour"
    deform: bool               # apply the deformation network
    color_weight: float
    depth_weight: float        # 0 when there is no depth prior
    mask_weight: float         # 0 when there are no hand masks
    train_mask_feature: bool   # the per-Gaussian hand-mask feature receives gradients
    train_deform: bool         # the deformation network learns (DeformModel.set_trainable)
    time_noise: bool           # add annealed noise to t (time_noise_std)

    @property
    def uses_depth(self) -> bool:
        return self.depth_weight > 0

    @property
    def uses_mask(self) -> bool:
        return self.mask_weight > 0


class TrainingSchedule:
    def __init__(self, opt, has_masks: bool, has_depth: bool, is_blender: bool = False):
        self.iterations = int(opt.iterations)
        self.warm_up = int(opt.warm_up)
        self.mask_start = int(opt.mask_start)
        self.mask_stop = int(opt.mask_stop)
        self.stop_MLP = int(opt.stop_MLP)
        self.loss_reduce = float(opt.loss_reduce)
        self.lambda_dssim = float(opt.lambda_dssim)
        self.time_noise_steps = int(getattr(opt, "time_noise_steps", 20_000))
        self.early_mask_weight = float(getattr(opt, "early_mask_weight", 0.0))
        self.has_masks, self.has_depth = bool(has_masks), bool(has_depth)
        # --time_noise auto is upstream's: no time noise on D-NeRF/Blender scenes
        self.time_noise = resolve_switch(getattr(opt, "time_noise", "auto"), auto=not is_blender)
        # Position learning rates decay log-linearly (3DGS); the deformation network's starts
        # DEFORM_LR_SCALE times higher and ends at the plain final rate (Deformable 3DGS).
        self._position = (opt.position_lr_init, opt.position_lr_final, opt.position_lr_delay_mult,
                          opt.position_lr_max_steps)
        self._deform_lr = get_expon_lr_func(opt.position_lr_init * DEFORM_LR_SCALE, opt.position_lr_final,
                                            lr_delay_mult=opt.position_lr_delay_mult,
                                            max_steps=opt.deform_lr_max_steps)
        self._validate()
        self.notices: List[str] = self._notices()

    # ---- per iteration ------------------------------------------------------------------------
    def phase(self, iteration: int) -> Phase:
        in_mask = self.mask_start <= iteration <= self.mask_stop
        in_depth = self.warm_up <= iteration < self.mask_start
        deform = deformation_applied(iteration, self.warm_up)
        if in_mask:
            name = "mask"
            depth_factor, mask_factor = MASK_PHASE_DEPTH_FACTOR, MASK_PHASE_MASK_FACTOR
        else:
            name = "depth" if in_depth else ("warm-up" if not deform else "colour")
            depth_factor = DEPTH_PHASE_FACTOR if in_depth else 0.0
            mask_factor = self.early_mask_weight if iteration < self.mask_start else 0.0
        learns_hands = self.has_masks and (in_mask or (mask_factor > 0 and iteration < self.mask_start))
        return Phase(
            name=name, deform=deform, color_weight=1.0,
            depth_weight=depth_factor * self.loss_reduce if self.has_depth else 0.0,
            mask_weight=mask_factor * self.loss_reduce if self.has_masks else 0.0,
            train_mask_feature=learns_hands,
            train_deform=deform and iteration < self.stop_MLP,
            time_noise=deform and self.time_noise)

    def position_lr(self, iteration: int, spatial_scale: float) -> float:
        """Learning rate of the Gaussians' positions (the scene's extent scales it, as 3DGS)."""
        init, final, delay_mult, max_steps = self._position
        # Scaled before the interpolation, as upstream, so the rates match its to the last bit.
        return get_expon_lr_func(init * spatial_scale, final * spatial_scale, lr_delay_mult=delay_mult,
                                 max_steps=max_steps)(iteration)

    def deform_lr(self, iteration: int) -> float:
        """Learning rate of the deformation network."""
        return self._deform_lr(iteration)

    def raises_sh_degree(self, iteration: int) -> bool:
        """Whether the SH degree goes up by one at this iteration (up to the model's maximum)."""
        return iteration % SH_UP_INTERVAL == 0

    def time_noise_scale(self, iteration: int) -> float:
        """Upstream get_linear_noise_func(0.1, 1e-15, max_steps=time_noise_steps): a linear ramp
        in the global iteration, flat after time_noise_steps (its delay multiplier has no effect
        without delay steps)."""
        if iteration < 0:
            return 0.0
        t = float(np.clip(iteration / self.time_noise_steps, 0.0, 1.0))
        return TIME_NOISE_START * (1 - t) + TIME_NOISE_END * t

    def time_noise_std(self, iteration: int, num_frames: int) -> float:
        """Standard deviation of the noise added to t at this iteration (0 when off). Upstream
        divides by the number of cameras left in its shuffled stack, a slip for the frame count."""
        if not self.phase(iteration).time_noise:
            return 0.0
        return self.time_noise_scale(iteration) / max(int(num_frames), 1)

    # ---- whole run ----------------------------------------------------------------------------
    def segments(self) -> List[Tuple[int, int, Phase]]:
        """(first, last, phase) for each run of identical phases over 1..iterations."""
        cuts = {1, self.iterations + 1, self.warm_up, self.mask_start, self.mask_stop + 1, self.stop_MLP}
        starts = sorted(c for c in cuts if 1 <= c <= self.iterations)
        result: List[Tuple[int, int, Phase]] = []
        for start, next_start in zip(starts, starts[1:] + [self.iterations + 1]):
            phase = self.phase(start)
            if result and result[-1][2] == phase:
                result[-1] = (result[-1][0], next_start - 1, phase)
            else:
                result.append((start, next_start - 1, phase))
        return result

    def describe(self) -> List[str]:
        """One line per segment, for the training log."""
        lines = []
        for first, last, p in self.segments():
            terms = ["colour"] + (["%.2g·depth" % p.depth_weight] if p.uses_depth else []) + \
                    (["%.2g·mask" % p.mask_weight] if p.uses_mask else [])
            learns = (["deformation"] if p.train_deform else []) + (["mask feature"] if p.train_mask_feature else [])
            span = f"iteration {first}" if first == last else f"iterations {first}–{last}"
            lines.append(f"{span}: {p.name}, loss = {' + '.join(terms)}"
                         f"{', deformed' if p.deform else ', static'}"
                         f"{', learns ' + ' and '.join(learns) if learns else ''}")
        return lines

    # ---- checks -------------------------------------------------------------------------------
    def _validate(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"--iterations must be at least 1 (got {self.iterations}).")
        for flag in ("warm_up", "mask_start", "mask_stop", "stop_MLP"):
            if getattr(self, flag) < 0:
                raise ValueError(f"--{flag} must be >= 0 (got {getattr(self, flag)}).")
        if self.time_noise_steps < 1:
            raise ValueError(f"--time_noise_steps must be at least 1 (got {self.time_noise_steps}).")
        if self.mask_start > self.mask_stop:
            raise ValueError(f"--mask_start ({self.mask_start}) is after --mask_stop ({self.mask_stop}): "
                             "the mask phase would be empty; make mask_start <= mask_stop.")
        if self.early_mask_weight < 0:
            raise ValueError(f"--early_mask_weight must be >= 0 (got {self.early_mask_weight}).")
        if self.loss_reduce < 0:
            raise ValueError(f"--loss_reduce must be >= 0 (got {self.loss_reduce}).")
        if not 0.0 <= self.lambda_dssim <= 1.0:
            raise ValueError(f"--lambda_dssim must be in [0, 1] (got {self.lambda_dssim}).")
        if self.warm_up < self.iterations and self.stop_MLP <= self.warm_up:
            raise ValueError(f"--stop_MLP ({self.stop_MLP}) is not after --warm_up ({self.warm_up}): the "
                             "deformation network would be applied without ever learning; "
                             "set stop_MLP > warm_up.")

    def _notices(self) -> List[str]:
        notices = []
        if self.warm_up >= self.iterations:
            notices.append(f"warm_up ({self.warm_up}) is not before the last iteration ({self.iterations}): "
                           "the deformation network is never trained (static scene).")
        mask_span = self._span(self.mask_start, self.mask_stop)
        if self.mask_start > self.iterations:
            notices.append(f"mask_start ({self.mask_start}) is after the last iteration ({self.iterations}): "
                           "the hand-mask feature is never trained.")
        elif not self.has_masks and mask_span:
            notices.append(f"No hand masks: the mask phase ({mask_span}) has no mask loss and the hand-mask "
                           "feature is not trained.")
        depth_span = self._span(min(self.warm_up, self.mask_start), self.mask_stop)
        if not self.has_depth and depth_span:
            notices.append(f"No depth priors: the depth loss ({depth_span}) is off.")
        return notices

    def _span(self, first: int, last: int) -> str:
        """'a–b' for the iterations first..last clipped to the run, '' when none is run."""
        first, last = max(first, 1), min(last, self.iterations)
        return f"{first}–{last}" if first <= last else ""


# ---- shorter runs ---------------------------------------------------------------------------------
# The iteration counts of the schedule, scaled with --iterations by scaled_schedule(); their full
# length values are train.py's defaults (arguments.OptimizationParams), read from there.
SCALED_ITERATION_FLAGS = ("warm_up", "mask_start", "mask_stop", "stop_MLP", "densify_from_iter",
                          "densify_until_iter", "opacity_reset_interval", "position_lr_max_steps",
                          "deform_lr_max_steps", "time_noise_steps")
MIN_WARM_UP = 100            # the deformation starts once the canonical Gaussians have settled
MIN_RESET_RECOVERY = 1000    # opacity resets closer than this collapse a short run: none then
MIN_DENSIFICATION_INTERVAL = 50
MAX_SHORT_RUN_MASK_LR = 0.05


def default_schedule() -> Dict[str, float]:
    """train.py's default values of the schedule flags (the paper's 40k-iteration recipe)."""
    parser = ArgumentParser()
    OptimizationParams(parser)
    defaults = parser.parse_args([])
    names = SCALED_ITERATION_FLAGS + ("iterations", "densification_interval", "mask_lr")
    return {name: getattr(defaults, name) for name in names}


def scaled_schedule(iterations: int) -> List[str]:
    """train.py flags that keep the default phase proportions at another run length, with floors
    where plain scaling breaks training (measured on the synthetic scene at 300 iterations: scaled
    as is, the deformation starts at 22 and opacity resets every 22 iterations collapse the model
    to black). At the default length it gives the defaults back."""
    full = default_schedule()
    ratio = iterations / full["iterations"]
    values = {name: max(1, round(full[name] * ratio)) for name in SCALED_ITERATION_FLAGS}
    values["warm_up"] = max(values["warm_up"], min(MIN_WARM_UP, iterations // 3))
    if values["opacity_reset_interval"] < MIN_RESET_RECOVERY:
        values["opacity_reset_interval"] = iterations + 1
    values["densification_interval"] = max(MIN_DENSIFICATION_INTERVAL, round(full["densification_interval"] * ratio))
    # Adam moves a parameter by about lr per step: keep the mask feature able to reach 1 within
    # the (shorter) mask phase, without exceeding a rate where it oscillates.
    values["mask_lr"] = full["mask_lr"] if ratio >= 1 else min(MAX_SHORT_RUN_MASK_LR, full["mask_lr"] / ratio)
    flags = ["--iterations", str(iterations)]
    for name, value in values.items():
        flags += [f"--{name}", f"{value:g}" if isinstance(value, float) else str(value)]
    return flags + ["--test_iterations", str(iterations), "--save_iterations", str(iterations)]
