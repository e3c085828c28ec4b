"""Image maths for evaluation: PSNR, 8-bit frames, depth for viewing, mask morphology, IoU.

Images are float tensors [C, H, W] in [0, 1]; masks are [1, H, W] (1 = hand). File reading and
writing is in ``utils/image_io.py``.
"""
import numpy as np
import torch
import torch.nn.functional as F


def mse(img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image: [C, H, W] -> 0-d, [B, C, H, W] -> [B]."""
    diff = (img1 - img2) ** 2
    return diff.mean() if diff.dim() == 3 else diff.flatten(1).mean(dim=1)


def psnr(img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
    """PSNR in dB for images in [0, 1], as 3DGS: 20 log10(1 / sqrt(MSE)); +inf when identical."""
    return 10.0 * torch.log10(1.0 / mse(img1, img2))


def masked_psnr(img1: torch.Tensor, img2: torch.Tensor, keep: torch.Tensor) -> float:
    """PSNR over the pixels where keep [1, H, W] (bool) is True, all channels of [C, H, W] images;
    NaN when no pixel is kept, +inf when they agree there."""
    selected = keep.expand_as(img1)
    if not bool(selected.any()):
        return float("nan")
    error = ((img1 - img2)[selected] ** 2).mean()
    return float(10.0 * torch.log10(1.0 / error))


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[C, H, W] float in [0, 1] -> [H, W, C] uint8, rounded to nearest (as torchvision.save_image)."""
    array = (img.detach().float().clamp(0.0, 1.0) * 255.0 + 0.5).floor().to(torch.uint8)
    return array.permute(1, 2, 0).cpu().numpy()


def depth_for_viewing(depth: torch.Tensor, alpha: torch.Tensor, min_alpha: float = 0.05) -> torch.Tensor:
    """Rendered depth [1, H, W] (Σ w_i z_i) -> [1, H, W] in [0, 1]: near bright, far dark, empty black.

    The rendered depth is not normalized by opacity, so it is divided by alpha first (expected
    depth of the covered part) and min-max scaled over pixels with alpha > min_alpha."""
    covered = alpha > min_alpha
    view = torch.zeros_like(depth)
    if not bool(covered.any()):
        return view
    expected = depth[covered] / alpha[covered]
    near, far = expected.min(), expected.max()
    span = (far - near).clamp_min(1e-8)
    view[covered] = 1.0 - (expected - near) / span * 0.9  # the farthest covered pixel stays visible (0.1)
    return view


def erode(mask: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Binary erosion of a float mask [1, H, W] with a square kernel. Pixels outside the image are
    ignored (replicated edge), so a hand entering from the border keeps its border pixels."""
    padded = F.pad(mask[None], [kernel_size // 2] * 4, mode="replicate")
    return -F.max_pool2d(-padded, kernel_size, stride=1)[0]


def dilate(mask: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Binary dilation of a float mask [1, H, W] with a square kernel."""
    return F.max_pool2d(mask[None], kernel_size, stride=1, padding=kernel_size // 2)[0]


def clean_mask(mask: torch.Tensor, kernel_size: int = 5) -> torch.Tensor:
    """Opening (drops specks smaller than the kernel) then closing (fills small holes).

    mask: bool or {0, 1} float [1, H, W]; returns bool [1, H, W]. kernel_size must be odd."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"clean_mask: kernel_size must be a positive odd number, got {kernel_size}")
    m = mask.float()
    opened = dilate(erode(m, kernel_size), kernel_size)
    closed = erode(dilate(opened, kernel_size), kernel_size)
    return closed > 0.5


def mask_iou(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Intersection over union of two bool masks of equal shape; 1.0 when both are empty."""
    if pred.shape != target.shape:
        raise ValueError(f"mask_iou: shapes differ {tuple(pred.shape)} vs {tuple(target.shape)}")
    union = (pred | target).sum().item()
    if union == 0:
        return 1.0
    return (pred & target).sum().item() / union
