"""Which Gaussians are hands: the one rule used by render.py (static / hands renders) and metrics.

Each Gaussian carries a learned hand-mask feature m [K] that is splatted into the hand map and
supervised with the hand masks (1 = hand, 0 = scene), so a hand Gaussian has m close to 1.

Rules:
  ``threshold`` (default): hand  <=>  mean_k m_k > hand_threshold (0.5: halfway between the targets).
  ``percentile`` (the paper's code): hand  <=>  Σ_k |m_k| > the hand_percentile-th percentile of
      that score over all Gaussians (85 -> the top 15 % are hands, whatever the training reached).
  ``gate`` (models trained with ``--deform_gate hand``): the two layers as training drew and scored
      them, each Gaussian's opacity shared between them by its motion gate: hands opacity x gate,
      static opacity x (1 - gate). A Gaussian counts as a hand (``hands``) when its gate is >= 0.5.
static is always the complement of hands. With mask_dimension 0 there are no hands.
The static layer may be drawn with other colours for the static Gaussians that no training frame
showed outside the hands (``--static_fill``, scene/static_fill.py).

Hand pixels of a view (``hand_pixels``, used by render.py's hands_mask_binary/ and hands_segment/,
hence by metrics.py's mask_IoU), by --hand_pixels:
  ``layer`` (default): the hands layer (the hand Gaussians rendered alone) covers the pixel, its
      alpha > 0.5. The pixels are then exactly where hands/ shows a hand, one decision for both.
  ``map`` (the paper): the rendered hand feature (hands_mask/, the full render's composite of m)
      is > 0.5. It also counts a static Gaussian's stray m, and misses the hand where a hand
      Gaussian's m is below 1. It scored the lower IoU on every synthetic training and on three of
      four real-clip ones (README, "Hands decomposition").
Either map then gets the clean-up of upstream's post-processing (``segment_hand_map``): opening +
closing with a square kernel, holes filled, connected pieces smaller than MIN_PIECE_FRACTION of
the image dropped.
"""
import argparse
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from scipy import ndimage

from utils.image_utils import clean_mask

HAND_RULES = ("threshold", "percentile", "gate")
HAND_PIXEL_RULES = ("layer", "map")
HAND_MAP_THRESHOLD = 0.5
MIN_PIECE_FRACTION = 0.002  # of the image's pixels: specks below this are not a hand


@dataclass
class Decomposition:
    hands: torch.Tensor    # bool [N]
    static: torch.Tensor   # bool [N], == ~hands
    rule: str
    notice: Optional[str] = None  # one line for the user, e.g. "no hand features: all static"
    hands_weight: Optional[torch.Tensor] = None    # float [N]: the hands layer's opacity factor (gate rule)
    static_weight: Optional[torch.Tensor] = None   # float [N]: the static layer's (1 - hands_weight)
    static_features: Optional[torch.Tensor] = None  # [N, S, 3] SH the static layer is drawn with (static_fill.py)

    def layer(self, name: str):
        """(gaussian_subset, opacity_weight) that draw the "hands" or "static" layer: its Gaussians,
        or (the gate rule) every Gaussian with its opacity weighed."""
        weight = getattr(self, f"{name}_weight")
        return (None, weight) if weight is not None else (getattr(self, name), None)

    def members(self, name: str) -> torch.Tensor:
        """bool [N]: the Gaussians that appear in the "hands" or "static" layer at all."""
        weight = getattr(self, f"{name}_weight")
        return getattr(self, name) if weight is None else weight > 0

    @property
    def num_hands(self) -> int:
        return int(self.hands.sum().item())


def _percentile_arg(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"--hand_percentile must be in [0, 100], got {text}")
    return value


def _finite_arg(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"--hand_threshold must be a finite number, got {text}")
    return value


def add_decomposition_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Hands decomposition")
    group.add_argument("--hand_rule", choices=HAND_RULES, default="threshold",
                       help="threshold: mean mask feature > --hand_threshold; "
                            "percentile: summed |mask feature| above --hand_percentile (paper's code); "
                            "gate: each Gaussian's opacity shared by its motion gate, the layers training drew")
    group.add_argument("--hand_threshold", type=_finite_arg, default=0.5)
    group.add_argument("--hand_percentile", type=_percentile_arg, default=85.0)


def percentile(values: torch.Tensor, q: float) -> torch.Tensor:
    """q-th percentile (0..100) of a 1-D tensor with linear interpolation, as numpy.percentile.

    Sorting instead of torch.quantile, which refuses inputs above 2**24 elements."""
    ordered = values.sort().values
    position = q / 100.0 * (ordered.numel() - 1)
    low = int(position)
    high = min(low + 1, ordered.numel() - 1)
    frac = position - low
    return ordered[low] * (1.0 - frac) + ordered[high] * frac


def hand_score(mask_features: torch.Tensor) -> torch.Tensor:
    """[N, K] learned hand features -> [N] hand score (mean over the K channels; zeros when K = 0).
    The mask loss drives it to 1 on hands and 0 elsewhere."""
    if mask_features.shape[1] == 0:
        return mask_features.new_zeros(mask_features.shape[0])
    return mask_features.detach().mean(dim=1)


def check_training_options(opt) -> None:
    """ValueError naming the flag when the decomposition's training options cannot mean anything:
    a gate whose ramp runs backwards or has no width, a negative layer-loss weight."""
    if not opt.gate_low < opt.gate_high:
        raise ValueError(f"--gate_low ({opt.gate_low}) must be below --gate_high ({opt.gate_high}): the motion "
                         "share ramps from 0 at gate_low to 1 at gate_high.")
    for flag in ("hands_layer_weight", "static_layer_weight"):
        if not getattr(opt, flag) >= 0:   # also refuses NaN
            raise ValueError(f"--{flag} must be >= 0 (got {getattr(opt, flag)}).")


def motion_gate(mask_features: torch.Tensor, low: float = 0.25, high: float = 0.75) -> torch.Tensor:
    """[N] share of the predicted deformation each Gaussian takes (``--deform_gate hand``): 0 for a
    hand score <= low (the static scene never moves), 1 from high on (hands move freely), linear
    between, so a Gaussian whose label is still being learned moves part of the way."""
    return ((hand_score(mask_features) - low) / max(high - low, 1e-6)).clamp(0.0, 1.0)


def deformation_gate(gaussians, args) -> Optional[torch.Tensor]:
    """[N] motion_gate of a GaussianModel under --deform_gate / --gate_low / --gate_high, or None
    when every Gaussian deforms (--deform_gate none, the paper; or a model without hand feature).
    One rule for training and rendering."""
    if getattr(args, "deform_gate", "none") != "hand" or gaussians.mask_dimension == 0:
        return None
    return motion_gate(gaussians.get_mask, args.gate_low, args.gate_high)


def select_hands(mask_features: torch.Tensor, rule: str = "threshold", threshold: float = 0.5,
                 hand_percentile: float = 85.0) -> torch.Tensor:
    """bool [N]: True for hand Gaussians. mask_features [N, K] (K may be 0)."""
    if rule not in HAND_RULES:
        raise ValueError(f"Unknown hand rule {rule!r}: use one of {', '.join(HAND_RULES)}")
    features = mask_features.detach()
    n, k = features.shape
    if n == 0 or k == 0:
        return torch.zeros(n, dtype=torch.bool, device=features.device)
    if rule == "threshold":
        return hand_score(features) > threshold
    score = features.abs().sum(dim=1)
    return score > percentile(score, hand_percentile)


def decompose(mask_features: torch.Tensor, rule: str = "threshold", threshold: float = 0.5,
              hand_percentile: float = 85.0) -> Decomposition:
    """Split the Gaussians into complementary hand and static sets. mask_features [N, K]."""
    hands = select_hands(mask_features, rule, threshold, hand_percentile)
    notice = None
    if mask_features.shape[1] == 0:
        notice = "The model has no hand-mask feature (mask_dimension 0): every Gaussian is static, hands/ is empty."
    return Decomposition(hands=hands, static=~hands, rule=rule, notice=notice)


def decompose_model(gaussians, args: argparse.Namespace, gate: Optional[torch.Tensor] = None) -> Decomposition:
    """decompose() on a GaussianModel with the --hand_* flags of add_decomposition_args. The gate
    rule uses gate, the model's motion gate when the caller has it, else deformation_gate(args)."""
    features = gaussians.get_mask
    if features is None:  # tolerate models that store no mask tensor at all when K = 0
        features = torch.zeros(gaussians.get_xyz.shape[0], 0, device=gaussians.get_xyz.device)
    if args.hand_rule == "gate":
        gate = gate if gate is not None else deformation_gate(gaussians, args)
        if gate is not None:
            return decompose_by_gate(gate.detach())
        split = decompose(features, "threshold", args.hand_threshold, args.hand_percentile)
        split.notice = "--hand_rule gate needs a model trained with --deform_gate hand: the threshold rule is used."
        return split
    return decompose(features, args.hand_rule, args.hand_threshold, args.hand_percentile)


def decompose_by_gate(gate: torch.Tensor) -> Decomposition:
    """The gate rule: the hands layer weighs each opacity by gate [N], the static layer by 1 - gate."""
    hands = gate >= 0.5
    return Decomposition(hands=hands, static=~hands, rule="gate", hands_weight=gate, static_weight=1.0 - gate)


def hand_pixels(rule: str, hand_map: torch.Tensor, hands_alpha: torch.Tensor, kernel: int = 5) -> torch.Tensor:
    """bool [1, H, W] hand pixels of a view under --hand_pixels ``rule`` (see the module text).
    hand_map: the full render's hand feature [1, H, W]; hands_alpha: the hands layer's alpha [1, H, W]."""
    if rule not in HAND_PIXEL_RULES:
        raise ValueError(f"--hand_pixels must be one of {', '.join(HAND_PIXEL_RULES)}, got {rule!r}")
    return segment_hand_map(hands_alpha if rule == "layer" else hand_map, kernel)


def segment_hand_map(hand_map: torch.Tensor, kernel: int = 5) -> torch.Tensor:
    """A map [1, H, W] in [0, 1] (hand feature or hands-layer alpha) -> bool [1, H, W] hand pixels:
    > 0.5, then cleaned (see the module text)."""
    mask = clean_mask(hand_map > HAND_MAP_THRESHOLD, kernel)[0].cpu().numpy()
    mask = ndimage.binary_fill_holes(mask)
    labels, count = ndimage.label(mask)
    if count:
        sizes = np.bincount(labels.ravel())
        keep = sizes >= MIN_PIECE_FRACTION * mask.size
        keep[0] = False
        mask = keep[labels]
    return torch.from_numpy(mask)[None].to(hand_map.device)
