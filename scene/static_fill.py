"""Colours for the static Gaussians that no training frame ever showed outside the hands.

Behind a hand sit static Gaussians whose colour only ever reached pixels the hand covered (the
floor under a wrist that is in every frame, a piece of hand labelled static). Their colour was
fitted to the hand, or never fitted at all, and the static layer shows it as a skin-coloured or
speckled patch exactly where the hand was. The fill gives each such Gaussian the colour of the
static Gaussians around it that the frames did show: a 3D, view-consistent guess of what lies
under the hand, instead of a remnant. The full render is left as it was (those Gaussians may well
draw the hand there); only the static layer uses the filled colours.

How much a frame showed a Gaussian is its blending weight (T_i alpha_i) summed over the frame's
hand-free pixels in the static layer; that sum is the gradient of the layer's hand-free pixels
with respect to the Gaussian's colour, so one forward and one backward pass per training view
measure every Gaussian at once, with either rasterizer.
"""
from dataclasses import replace
from typing import Callable, Iterable, Optional, Tuple

import torch
import torch.nn.functional as F

from utils.image_utils import dilate

SEEN_PIXELS = 0.1        # shown less than a tenth of a pixel in all the frames together: never shown
FILL_NEIGHBOURS = 32     # shown static Gaussians that give an unseen one its colour
MASK_MARGIN_PX = 2       # hand masks are grown by this much: their edges are not exact
DISTANCE_CHUNK = 256     # unseen rows per distance block (memory: chunk x shown rows floats)


def hand_free_pixels(mask: torch.Tensor, margin: int = MASK_MARGIN_PX) -> torch.Tensor:
    """[K, H, W] hand masks (1 = hand) -> [1, H, W] float, 1 where no hand is within margin px."""
    hand = (mask.amax(dim=0, keepdim=True) > 0.5).float()
    return 1.0 - dilate(hand, 2 * margin + 1)


def shown_weight(views: Iterable[Tuple[object, Callable]], count: int, device) -> torch.Tensor:
    """[count] how much the static layer showed each Gaussian on the hand-free pixels of views.

    views yields (camera, draw) with draw(colors [count, 3]) -> the static layer's render package
    at that camera drawn with those colours; cameras without a hand mask are skipped."""
    total = torch.zeros(count, device=device)
    for camera, draw in views:
        if camera.mask is None:
            continue
        probe = torch.zeros(count, 3, device=device, requires_grad=True)
        with torch.enable_grad():
            image = draw(probe)["render"]
            free = hand_free_pixels(camera.mask.to(image.device))
            if image.requires_grad:   # not when nothing is drawn (an empty layer, on some backends)
                (image[:1] * free).sum().backward()
        if probe.grad is not None:
            total += probe.grad[:, 0]
    return total


def fill_colours(xyz: torch.Tensor, features: torch.Tensor, static: torch.Tensor, shown: torch.Tensor,
                 neighbours: int = FILL_NEIGHBOURS) -> Tuple[torch.Tensor, int]:
    """SH features [N, S, 3] for the static layer, and how many rows were filled: every static
    Gaussian shown less than SEEN_PIXELS takes the inverse-distance mean base colour (SH degree 0)
    of its nearest shown static Gaussians, with no view-dependent part. Rows that are not static,
    or were shown, keep their features. With no shown static Gaussian nothing is filled."""
    static = static.bool()
    unseen = static & (shown < SEEN_PIXELS)
    donors = torch.nonzero(static & ~unseen).squeeze(1)
    targets = torch.nonzero(unseen).squeeze(1)
    if targets.numel() == 0 or donors.numel() == 0:
        return features, 0
    k = min(neighbours, donors.numel())
    donor_xyz, donor_dc = xyz[donors].detach(), features[donors, 0].detach()
    filled_dc = []
    for start in range(0, targets.numel(), DISTANCE_CHUNK):
        rows = targets[start:start + DISTANCE_CHUNK]
        distance, nearest = torch.cdist(xyz[rows].detach(), donor_xyz).topk(k, dim=1, largest=False)
        weight = 1.0 / (distance + 1e-8)
        filled_dc.append((weight[..., None] * donor_dc[nearest]).sum(1) / weight.sum(1, keepdim=True))
    out = features.detach().clone()
    out[targets] = 0.0
    out[targets, 0] = torch.cat(filled_dc)
    return out, int(targets.numel())


def with_features(deformed, features: Optional[torch.Tensor]):
    """DeformedGaussians drawn with other SH features (None: as they are)."""
    return deformed if features is None else replace(deformed, features=features)


def pull_push(premultiplied: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """[C, H, W] colour times weight, [1, H, W] weight in [0, 1] -> [C, H, W] colour everywhere:
    a pixel keeps its own colour by its weight and takes the rest from the weighted mean colour of
    ever coarser blocks around it (pull-push interpolation), so a hole takes its border's colour."""
    weight = weight.clamp(0.0, 1.0)
    own = premultiplied / weight.clamp_min(1e-6)
    if min(weight.shape[-2:]) <= 1 or float(weight.min()) >= 1.0:
        return own
    coarse = pull_push(F.avg_pool2d(premultiplied[None], 2, ceil_mode=True)[0],
                       F.avg_pool2d(weight[None], 2, ceil_mode=True)[0])
    up = F.interpolate(coarse[None], size=weight.shape[-2:], mode="bilinear", align_corners=False)[0]
    return weight * own + (1.0 - weight) * up


def fill_holes(static_rgb: torch.Tensor, static_alpha: torch.Tensor, full_alpha: torch.Tensor,
               background: torch.Tensor) -> torch.Tensor:
    """The static layer [3, H, W] (alpha [1, H, W], over background [3]) with the coverage the
    hands took away painted from the static pixels around it.

    Only the coverage the layer lacks against its usual coverage there is painted: the hands
    cover full_alpha - static_alpha, but where the static layer is translucent around the hands
    too, its colours were fitted over the background at that alpha and already give the scene's
    colour; painting all of it brightened those pixels into a ghost of the hand (on the issue's
    synthetic bed, 2.6-4.1 dB lost inside the hand region, README). The usual coverage is the
    static alpha of the pixels around, those the hands leave free, interpolated into the hands'
    pixels (pull-push)."""
    bg = background.reshape(3, 1, 1).to(static_rgb)
    premultiplied = static_rgb - (1.0 - static_alpha) * bg
    taken = (full_alpha - static_alpha).clamp(0.0, 1.0)
    free = 1.0 - taken
    usual = pull_push(static_alpha * free, free).clamp(0.0, 1.0)
    missing = torch.minimum((usual - static_alpha).clamp(0.0, 1.0), taken)
    return static_rgb + missing * (pull_push(premultiplied, static_alpha) - bg)
