"""Score rendered views against ground truth, in the Inria layout.

    python metrics.py -m OUT [OUT2 ...] [--split test] [--lpips_net vgg|alex] [--require_lpips]

For every OUT/<split>/ours_N: PSNR, SSIM (3DGS: 11x11 Gaussian window, σ = 1.5) and LPIPS (the
``lpips`` package, inputs scaled to [-1, 1]) between renders/<name>.png and gt/<name>.png.
Where a view's hand mask is known (gt_masks/ written by render.py for any scene with masks, or the
source scene's masks/), it adds the decomposition scores:
  mask_IoU          render.py's hand pixels (hands_mask_binary/, its --hand_pixels rule) vs mask > 0.5
  hands_precision   share of the hands layer's opacity (hands_alpha/) inside the mask dilated by 3 px
  hands_recall      mean opacity of the hands layer over the mask's pixels
  masked_PSNR       PSNR of renders/ vs gt/ on the pixels outside the mask
and where the source scene has hand-free frames (gt_static/, the built-in synthetic scene):
  static_PSNR       static/ vs gt_static/ over the frame
  static_PSNR_hand_region   the same inside the mask only (remnants and holes both cost)
Writes OUT/results.json and OUT/per_view.json (per-view dicts keyed by
file name, as Inria); a split other than test goes to results_<split>.json / per_view_<split>.json.

LPIPS needs the ImageNet backbone weights of torchvision in the torch hub cache (nothing is
downloaded here); without them LPIPS is null and the run says so (exit 1 with --require_lpips).
"""
import json
import math
import os
import pickle
import re
import sys
from argparse import ArgumentParser
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from scene.readers.dataset_types import DatasetError
from utils.general_utils import set_cpu_threads
from utils.image_io import read_image, to_gray, to_rgb
from utils.image_utils import dilate, mask_iou, masked_psnr, psnr
from utils.loss_utils import ssim
from utils.atomic import write_json_atomic

# torchvision's ImageNet weights that lpips loads for its backbone (file names in the hub cache)
BACKBONE_FILES = {"vgg": "vgg16-397923af.pth", "alex": "alexnet-owt-7be5be79.pth"}
EXIT_BAD_INPUT = 2
EXIT_NO_LPIPS = 1
PRECISION_TOLERANCE_PX = 3  # hands_precision counts the hands layer within this distance of the true mask


class LpipsUnavailable(Exception):
    """LPIPS cannot be computed offline: the lpips package or the backbone weights are missing."""


def backbone_weights_path(net: str) -> str:
    return os.path.join(torch.hub.get_dir(), "checkpoints", BACKBONE_FILES[net])


def load_lpips(net: str, device: torch.device, weights_path: Optional[str] = None) -> torch.nn.Module:
    """LPIPS with its calibrated linear heads (shipped in the package) and the ImageNet backbone read
    from ``weights_path`` (default: the torch hub cache). Never downloads; raises LpipsUnavailable."""
    try:
        import lpips
        import torchvision
    except ImportError as err:
        raise LpipsUnavailable(f"LPIPS unavailable: {err} (pip install -r requirements.txt).") from err

    path = weights_path or backbone_weights_path(net)
    if not os.path.isfile(path):
        raise LpipsUnavailable(
            f"LPIPS unavailable: no {net} backbone weights at {path} (this run does not download; "
            f"copy torchvision's {BACKBONE_FILES[net]} there or pass --lpips_weights).")
    features = (torchvision.models.vgg16() if net == "vgg" else torchvision.models.alexnet()).features
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        # only the convolutional trunk is used: a file holding just "features.*" is enough
        features.load_state_dict({k[len("features."):]: v for k, v in state.items() if k.startswith("features.")})
    except (OSError, RuntimeError, KeyError, AttributeError, EOFError, pickle.UnpicklingError) as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]   # torch's messages run on
        raise LpipsUnavailable(f"LPIPS unavailable: cannot load the {net} backbone from {path} ({first_line}).") from err
    model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)  # random trunk (no download), then ours
    for block in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5):
        for index, layer in block.named_children():
            layer.load_state_dict(features[int(index)].state_dict())
    return model.eval().to(device)


def load_image(path: str, channels: int = 3) -> torch.Tensor:
    """[channels, H, W] float in [0, 1] (3 = RGB, 1 = grey); DatasetError names a missing/bad file."""
    image = read_image(path)
    array = to_rgb(image) if channels == 3 else to_gray(image)[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)


def lpips_distance(model: torch.nn.Module, img1: torch.Tensor, img2: torch.Tensor) -> Optional[float]:
    """LPIPS between two [3, H, W] images in [0, 1] (scaled to [-1, 1] as the network expects);
    None for images too small for the backbone's pooling."""
    try:
        with torch.no_grad():
            return float(model(img1[None] * 2.0 - 1.0, img2[None] * 2.0 - 1.0).item())
    except RuntimeError as err:
        if "too small" not in str(err):
            raise
        return None


def method_dirs(split_dir: str) -> List[str]:
    """ours_N folders of a split, by increasing N."""
    if not os.path.isdir(split_dir):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(split_dir)
             if (m := re.fullmatch(r"ours_(\d+)", name)) and os.path.isdir(os.path.join(split_dir, name))]
    return [os.path.join(split_dir, name) for _, name in sorted(found)]


def view_names(method_dir: str) -> List[str]:
    """Image names (file stems) of renders/, each with its gt/ counterpart."""
    renders = os.path.join(method_dir, "renders")
    names = sorted(os.path.splitext(f)[0] for f in os.listdir(renders) if f.endswith(".png")) \
        if os.path.isdir(renders) else []
    if not names:
        raise DatasetError(f"No renders in {renders!r}: run render.py -m on the model first.")
    for name in names:
        if not os.path.isfile(os.path.join(method_dir, "gt", name + ".png")):
            raise DatasetError(f"Render {name}.png has no ground truth {os.path.join(method_dir, 'gt', name + '.png')!r}: "
                               "re-run render.py for this model.")
    return names


def resized_to(img: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Ground truth at the render's resolution (renders may be at -r N)."""
    if img.shape[1:] == (height, width):
        return img
    return F.interpolate(img[None], size=(height, width), mode="area")[0]


def decomposition_truth(model_path: str) -> Optional[str]:
    """The source scene folder (from the saved cfg_args.json) when it has masks/ or gt_static/."""
    cfg = os.path.join(model_path, "cfg_args.json")
    if not os.path.isfile(cfg):
        return None
    try:
        with open(cfg) as f:
            source = json.load(f).get("source_path", "")
    except (OSError, ValueError):
        return None
    has_truth = source and any(os.path.isdir(os.path.join(source, d)) for d in ("gt_static", "masks"))
    return source if has_truth else None


def score_view(method_dir: str, name: str, lpips_model, truth_dir: Optional[str], device) -> Dict[str, float]:
    """All metrics of one view; keys PSNR, SSIM, LPIPS (if a model), mask_IoU, static_PSNR (if truth)."""
    render = load_image(os.path.join(method_dir, "renders", name + ".png")).to(device)
    gt = load_image(os.path.join(method_dir, "gt", name + ".png")).to(device)
    if render.shape != gt.shape:
        raise DatasetError(f"{name}.png: render {tuple(render.shape)} and gt {tuple(gt.shape)} differ in size "
                           f"in {method_dir!r}: re-run render.py.")
    scores = {"PSNR": float(psnr(render, gt)), "SSIM": float(ssim(render[None], gt[None]))}
    if lpips_model is not None:
        distance = lpips_distance(lpips_model, render, gt)
        if distance is None:
            print(f"Note: {name}.png ({gt.shape[2]}x{gt.shape[1]}) is too small for LPIPS; its LPIPS is null.")
        else:
            scores["LPIPS"] = distance
    scores.update(decomposition_scores(method_dir, name, render, gt, truth_dir, device))
    return scores


def true_hand_mask(method_dir: str, name: str, truth_dir: Optional[str], size, device) -> Optional[torch.Tensor]:
    """bool [1, H, W] hand mask of a view: gt_masks/ written by render.py (any scene with masks),
    else the source scene's masks/ resized; None when the view has no mask."""
    candidates = [os.path.join(method_dir, "gt_masks", name + ".png")]
    if truth_dir is not None:
        candidates.append(os.path.join(truth_dir, "masks", name + ".png"))
    for path in candidates:
        if os.path.isfile(path):
            return resized_to(load_image(path, channels=1).to(device), *size) > 0.5
    return None


def hands_layer_scores(hands_alpha: torch.Tensor, true_mask: torch.Tensor) -> Dict[str, float]:
    """hands_precision: the share of the hands layer's opacity inside the true mask dilated by
    PRECISION_TOLERANCE_PX (1 when the layer is empty); hands_recall: the mean opacity of the layer
    over the true-mask pixels (1 when the view has no hand). hands_alpha [1,H,W] in [0,1]."""
    near_hand = dilate(true_mask.float(), 2 * PRECISION_TOLERANCE_PX + 1) > 0.5
    total = float(hands_alpha.sum())
    precision = float(hands_alpha[near_hand].sum()) / total if total > 0 else 1.0
    recall = float(hands_alpha[true_mask].mean()) if bool(true_mask.any()) else 1.0
    return {"hands_precision": precision, "hands_recall": recall}


def decomposition_scores(method_dir: str, name: str, render: torch.Tensor, gt: torch.Tensor,
                         truth_dir: Optional[str], device) -> Dict[str, float]:
    """Scores of the hands decomposition of one view where its hand mask is known (module text)."""
    scores = {}
    size = render.shape[1:]
    true_mask = true_hand_mask(method_dir, name, truth_dir, size, device)
    if true_mask is not None:
        scores["masked_PSNR"] = masked_psnr(render, gt, ~true_mask)
        # render.py's hand pixels; renders of an older render.py have only the map (plain 0.5 threshold)
        hand_paths = [os.path.join(method_dir, folder, name + ".png") for folder in ("hands_mask_binary", "hands_mask")]
        hand_path = next((path for path in hand_paths if os.path.isfile(path)), None)
        if hand_path is not None:
            scores["mask_IoU"] = mask_iou(load_image(hand_path, channels=1).to(device) > 0.5, true_mask)
        alpha_path = os.path.join(method_dir, "hands_alpha", name + ".png")
        if os.path.isfile(alpha_path):
            scores.update(hands_layer_scores(load_image(alpha_path, channels=1).to(device), true_mask))
    static_path = os.path.join(method_dir, "static", name + ".png")
    true_static_path = None if truth_dir is None else os.path.join(truth_dir, "gt_static", name + ".png")
    if true_static_path and os.path.isfile(static_path) and os.path.isfile(true_static_path):
        static = load_image(static_path).to(device)
        hand_free = resized_to(load_image(true_static_path).to(device), *size)
        scores["static_PSNR"] = float(psnr(static, hand_free))
        if true_mask is not None:
            scores["static_PSNR_hand_region"] = masked_psnr(static, hand_free, true_mask)
    return scores


def evaluate_method(method_dir: str, lpips_model, truth_dir: Optional[str], device) -> Dict[str, Dict[str, float]]:
    """Per-view scores of one ours_N folder as {metric: {file name: value}}, keyed like Inria's
    per_view.json by the render's file name (``00000.png``)."""
    per_view: Dict[str, Dict[str, float]] = {}
    for name in view_names(method_dir):
        for metric, value in score_view(method_dir, name, lpips_model, truth_dir, device).items():
            per_view.setdefault(metric, {})[name + ".png"] = value
    return per_view


def averages(per_view: Dict[str, Dict[str, float]], with_lpips: bool) -> Dict[str, Optional[float]]:
    means = {metric: sum(values.values()) / len(values) for metric, values in per_view.items()}
    summary = {"SSIM": means["SSIM"], "PSNR": means["PSNR"], "LPIPS": means.get("LPIPS") if with_lpips else None}
    summary.update({k: v for k, v in means.items() if k not in summary})
    return summary


def json_safe(value):
    """JSON has no inf/nan (identical images give PSNR inf): write them as null."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str, data: dict) -> None:
    write_json_atomic(path, json_safe(data), allow_nan=False)


def result_file_names(split: str):
    suffix = "" if split == "test" else f"_{split}"
    return f"results{suffix}.json", f"per_view{suffix}.json"


def missing_model_message(model_path: str) -> str:
    return f"Model folder {model_path!r} does not exist: pass the -m folder of train.py."


def evaluate_model(model_path: str, split: str, lpips_model, device) -> Dict[str, Dict]:
    """Score every ours_N of one model folder; writes and returns its results dict."""
    if not os.path.isdir(model_path):
        raise DatasetError(missing_model_message(model_path))
    split_dir = os.path.join(model_path, split)
    methods = method_dirs(split_dir)
    if not methods:
        hint = " (was the model trained with --eval? else use --split train)" if split == "test" else ""
        raise DatasetError(f"No {split_dir}/ours_N folders{hint}: run render.py -m {model_path} first.")
    truth_dir = decomposition_truth(model_path)
    results, per_view = {}, {}
    for method_dir in methods:
        method = os.path.basename(method_dir)
        print(f"Scene: {model_path}  Method: {method}")
        per_view[method] = evaluate_method(method_dir, lpips_model, truth_dir, device)
        results[method] = averages(per_view[method], lpips_model is not None)
        for metric, value in results[method].items():
            print(f"  {metric:<12}: {'null' if value is None else f'{value:.7f}'}")
    results_name, per_view_name = result_file_names(split)
    write_json(os.path.join(model_path, results_name), results)
    write_json(os.path.join(model_path, per_view_name), per_view)
    return results


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description="PSNR / SSIM / LPIPS (and decomposition scores) of rendered models.")
    parser.add_argument("--model_paths", "-m", required=True, nargs="+", type=str)
    parser.add_argument("--split", default="test", help="folder under each model to score (test or train)")
    parser.add_argument("--lpips_net", choices=sorted(BACKBONE_FILES), default="vgg")
    parser.add_argument("--lpips_weights", default=None, help="torchvision backbone weights file (default: hub cache)")
    parser.add_argument("--require_lpips", action="store_true", help="fail (exit 1) when LPIPS cannot be computed")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    set_cpu_threads(-1, device)   # as train.py
    status = 0
    model_paths = [m for m in args.model_paths if os.path.isdir(m)]
    for missing in sorted(set(args.model_paths) - set(model_paths)):  # reported before any LPIPS notice
        print(f"Error: {missing_model_message(missing)}", file=sys.stderr)
        status = EXIT_BAD_INPUT
    if not model_paths:
        return status
    try:
        lpips_model = load_lpips(args.lpips_net, device, args.lpips_weights)
    except LpipsUnavailable as err:
        if args.lpips_weights:   # a file named on the command line that cannot serve is bad input
            print(f"Error: {' '.join(str(err).split())} Check --lpips_weights.", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"{err} LPIPS will be null.", file=sys.stderr)
        if args.require_lpips:
            return EXIT_NO_LPIPS
        lpips_model = None
    for model_path in model_paths:
        try:
            evaluate_model(model_path, args.split, lpips_model, device)
        except (DatasetError, OSError) as err:  # OSError: a full or read-only disk
            print(f"Error: {' '.join(str(err).split())}", file=sys.stderr)
            status = EXIT_BAD_INPUT
    return status


if __name__ == "__main__":
    sys.exit(main())
