"""Training losses: photometric (L1, SSIM), monocular depth prior, hand mask.

Shapes: images [C, H, W] or [B, C, H, W]; depth maps and masks [1, H, W].

Depth prior losses compare the rendered view-space depth z with a monocular prior known only up
to an affine map ("disparity" = relative inverse depth, or "depth"). EgoMask's depth loss is
``L1(minmax(z), prior)`` with min-max over the whole image. Corrected here (see
``depth_loss_minmax``):
  1. the render is converted to the prior's convention first (1/z for a disparity prior); upstream
     compared z with disparity, which pulls the scene towards the reversed depth order;
  2. min and max (and the loss) are taken over valid pixels only (the scene covers them and the
     prior is finite); upstream included the empty background, whose rendered depth is 0;
  3. an epsilon in the denominator, so a constant image does not divide by zero;
  4. the prior is normalized in every phase (upstream skipped it during the mask phase).
"""
import functools

import torch
import torch.nn.functional as F

SSIM_C1 = 0.01 ** 2
SSIM_C2 = 0.03 ** 2
SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
DEPTH_KINDS = ("disparity", "depth")
_REL_EPS = 1e-6    # ranges / variances below this fraction of the values' size count as "constant"
_TINY = 1e-20
_MIN_DEPTH = 1e-6  # rendered z below this is "nothing rendered" and cannot be inverted


def l1_loss(network_output: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    return (network_output - gt).abs().mean()


def photometric_loss(image: torch.Tensor, gt: torch.Tensor, lambda_dssim: float) -> torch.Tensor:
    """The 3DGS colour loss (1 − λ)·L1 + λ·(1 − SSIM) for images [C, H, W].

    When only the render needs a gradient (training), one autograd node with a hand-written
    backward (_PhotometricLoss): the same value and gradient as the composition of l1_loss and
    ssim, in about a third of the operations (the training step is bound by the host issuing them)."""
    if image.requires_grad and not gt.requires_grad and image.dim() == 3 and image.shape == gt.shape:
        return _PhotometricLoss.apply(image, gt, float(lambda_dssim))
    return (1.0 - lambda_dssim) * l1_loss(image, gt) + lambda_dssim * (1.0 - ssim(image, gt))


# ---- SSIM ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _gaussian_window(window_size: int, channels: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Depthwise conv weights [C, 1, k, k]: a normalized k×k Gaussian (σ = 1.5) per channel.

    Built outside inference mode: the cached tensor may later be saved for a backward pass.
    """
    with torch.inference_mode(False):
        return _build_gaussian_window(window_size, channels, dtype, device)


def _build_gaussian_window(window_size, channels, dtype, device) -> torch.Tensor:
    x = torch.arange(window_size, dtype=torch.float64) - window_size // 2
    g = torch.exp(-x ** 2 / (2 * SSIM_SIGMA ** 2))
    g = g / g.sum()
    window = torch.outer(g, g).to(dtype=dtype, device=device)
    return window.expand(channels, 1, window_size, window_size).contiguous()


def ssim(img1: torch.Tensor, img2: torch.Tensor, window_size: int = SSIM_WINDOW, size_average: bool = True) -> torch.Tensor:
    """SSIM as defined by 3DGS: Gaussian-weighted local statistics ('same' convolution, zero
    padding), C1 = 0.01², C2 = 0.03² (data range 1), averaged over every pixel and channel.

    img1, img2: [C, H, W] or [B, C, H, W]. Returns a scalar, or [B] with size_average=False.
    """
    if img1.shape != img2.shape:
        raise ValueError(f"ssim needs images of the same shape, got {list(img1.shape)} and {list(img2.shape)}.")
    if img1.dim() not in (3, 4):
        raise ValueError(f"ssim expects [C, H, W] or [B, C, H, W] images, got shape {list(img1.shape)}.")
    batched = img1 if img1.dim() == 4 else img1.unsqueeze(0)
    other = img2 if img2.dim() == 4 else img2.unsqueeze(0)
    a1, a2, b1, b2 = _ssim_terms(*_ssim_statistics(batched, other, window_size))
    ssim_map = (a1 * a2) / (b1 * b2)
    if size_average:
        return ssim_map.mean()
    per_image = ssim_map.flatten(1).mean(dim=1)
    return per_image if img1.dim() == 4 else per_image[0]


def _ssim_statistics(x: torch.Tensor, y: torch.Tensor, window_size: int = SSIM_WINDOW):
    """Local means and (co)variances of [B, C, H, W] images under ssim's window: the five local
    statistics in one depthwise convolution (five would cost five launches forward and five
    backward at every training step)."""
    channels = x.shape[1]
    maps = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    window5 = _gaussian_window(window_size, 5 * channels, x.dtype, x.device)
    mu_x, mu_y, m_xx, m_yy, m_xy = F.conv2d(maps, window5, padding=window_size // 2, groups=5 * channels).split(
        channels, dim=1)
    return mu_x, mu_y, m_xx - mu_x * mu_x, m_yy - mu_y * mu_y, m_xy - mu_x * mu_y


def _ssim_terms(mu_x, mu_y, s_xx, s_yy, s_xy):
    """SSIM = (A1 A2) / (B1 B2) from the local statistics: (A1, A2, B1, B2)."""
    return (2 * mu_x * mu_y + SSIM_C1, 2 * s_xy + SSIM_C2,
            mu_x * mu_x + mu_y * mu_y + SSIM_C1, s_xx + s_yy + SSIM_C2)


class _PhotometricLoss(torch.autograd.Function):
    """(1 − λ) mean|x − y| + λ (1 − mean S) with S the SSIM map, differentiated by hand w.r.t. x.

    With A1 = 2 μx μy + C1, A2 = 2 σxy + C2, B1 = μx² + μy² + C1, B2 = σxx + σyy + C2 and
    S = A1 A2 / (B1 B2), as functions of the local moments μx = w∗x, mxx = w∗x², mxy = w∗xy:
      ∂S/∂μx = S (2 μy (1/A1 − 1/A2) − 2 μx (1/B1 − 1/B2)),  ∂S/∂mxx = −S / B2,  ∂S/∂mxy = 2 S / A2,
    and, the window being symmetric (its zero-padded 'same' convolution is its own adjoint),
      ∂(mean S)/∂x = w∗gμ + 2 x (w∗gxx) + y (w∗gxy)   (g = the partials above / the pixel count)."""

    @staticmethod
    def forward(ctx, image, gt, lambda_dssim):
        x, y = image[None], gt[None]
        statistics = _ssim_statistics(x, y)
        mu_x, mu_y = statistics[:2]
        a1, a2, b1, b2 = _ssim_terms(*statistics)
        ssim_map = (a1 * a2) / (b1 * b2)
        difference = image - gt
        ctx.save_for_backward(image, gt, difference, mu_x, mu_y, a1, a2, b1, b2, ssim_map)
        ctx.lambda_dssim = lambda_dssim
        return (1.0 - lambda_dssim) * difference.abs().mean() + lambda_dssim * (1.0 - ssim_map.mean())

    @staticmethod
    def backward(ctx, grad_output):
        image, gt, difference, mu_x, mu_y, a1, a2, b1, b2, ssim_map = ctx.saved_tensors
        lam, count = ctx.lambda_dssim, image.numel()
        scale = -lam * grad_output / count                         # d loss / d S at every pixel
        s = ssim_map * scale
        g_mu = s * (2 * mu_y * (1 / a1 - 1 / a2) - 2 * mu_x * (1 / b1 - 1 / b2))
        g_xx = -s / b2
        g_xy = 2 * s / a2
        channels = image.shape[0]
        window3 = _gaussian_window(SSIM_WINDOW, 3 * channels, image.dtype, image.device)
        spread = F.conv2d(torch.cat([g_mu, g_xx, g_xy], dim=1), window3, padding=SSIM_WINDOW // 2,
                          groups=3 * channels)[0]
        c_mu, c_xx, c_xy = spread.split(channels, dim=0)
        grad = c_mu + 2 * image * c_xx + gt * c_xy
        grad = grad + ((1.0 - lam) * grad_output / count) * torch.sign(difference)
        return grad, None, None


# ---- depth prior -----------------------------------------------------------------------------
def depth_valid_mask(alpha: torch.Tensor, prior: torch.Tensor, min_alpha: float = 0.5) -> torch.Tensor:
    """Pixels where a depth comparison makes sense: the scene covers them (alpha > min_alpha)
    and the prior is finite. alpha, prior [1, H, W] -> bool [1, H, W]."""
    return (alpha.detach() > min_alpha) & torch.isfinite(prior)


def to_prior_convention(rendered_depth: torch.Tensor, prior_kind: str) -> torch.Tensor:
    """View-space depth z -> the prior's convention: 1/z for "disparity", z for "depth"."""
    if prior_kind == "disparity":
        return 1.0 / rendered_depth.clamp_min(_MIN_DEPTH)
    if prior_kind == "depth":
        return rendered_depth
    raise ValueError(f"Unknown depth prior kind {prior_kind!r}: use one of {', '.join(DEPTH_KINDS)} "
                     "(--depth_prior_kind).")


def _valid_pixels(rendered_depth, prior, prior_kind, valid_mask):
    """(rendered values in the prior's convention, prior values, valid pixels as 0/1 floats, their
    count clamped to >= 1), all [1, H, W] but the count, with zeros at invalid pixels. Every sum
    below is masked rather than taken over rendered_depth[valid]: boolean indexing would read the
    pixel count on the host (a GPU sync) at every training step."""
    for name, tensor in (("prior", prior), ("valid_mask", valid_mask)):
        if tensor.shape != rendered_depth.shape:
            raise ValueError(f"depth loss: {name} has shape {list(tensor.shape)} but the rendered depth has "
                             f"{list(rendered_depth.shape)}; load the prior at the training resolution.")
    if valid_mask.dtype != torch.bool:
        raise ValueError(f"depth loss: valid_mask must be a bool tensor, got {valid_mask.dtype}.")
    valid = valid_mask & torch.isfinite(prior) & (rendered_depth.detach() > _MIN_DEPTH)
    zero = rendered_depth.new_zeros(())
    rendered = torch.where(valid, to_prior_convention(rendered_depth, prior_kind), zero)
    target = torch.where(valid, prior, zero)
    weight = valid.to(rendered_depth.dtype)
    return rendered, target, weight, weight.sum().clamp_min(1.0)


def _masked_mean(x: torch.Tensor, weight: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    return (x * weight).sum() / count


def _min_max_normalize(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """x [1, H, W] -> [0, 1] over the valid pixels (bool). The floor on the range only acts on
    (near-)constant inputs, so the result is exactly invariant to positive scale and shift
    otherwise. Without valid pixels the range is [0, 0] (the caller's mask zeroes the result)."""
    big = torch.finfo(x.dtype).max
    lo = torch.where(valid, x, big).amin()
    hi = torch.where(valid, x, -big).amax()
    if_any = valid.any()
    lo, hi = torch.where(if_any, lo, 0.0), torch.where(if_any, hi, 0.0)
    floor = _REL_EPS * torch.maximum(lo.abs(), hi.abs()).detach() + _TINY
    return (x - lo) / (hi - lo).clamp_min(floor)


def depth_loss_minmax(rendered_depth: torch.Tensor, prior: torch.Tensor, prior_kind: str,
                      valid_mask: torch.Tensor) -> torch.Tensor:
    """EgoMask's min–max normalized L1 depth loss, corrected (module docstring).

    rendered_depth: [1, H, W] view-space z; prior: [1, H, W]; valid_mask: bool [1, H, W].
    The rendered depth is used as given: the rasterizer's Σ wᵢzᵢ reads nearer where alpha < 1,
    which the usual alpha > 0.5 validity mask (depth_valid_mask) keeps small; pass
    depth / alpha for the expected surface depth instead.
    Invariant to a positive scale and any shift of the prior (up to the epsilon); 0 when the
    converted render is a positive affine image of the prior. Zero (with a graph) when no pixel
    is valid.
    """
    rendered, target, weight, count = _valid_pixels(rendered_depth, prior, prior_kind, valid_mask)
    valid = weight > 0
    difference = (_min_max_normalize(rendered, valid) - _min_max_normalize(target, valid)).abs()
    return _masked_mean(torch.where(valid, difference, 0.0), weight, count)


def depth_loss_ssi(rendered_depth: torch.Tensor, prior: torch.Tensor, prior_kind: str,
                   valid_mask: torch.Tensor) -> torch.Tensor:
    """Scale-and-shift-invariant L1 depth loss (MiDaS-style).

    The prior is first brought to zero mean and unit mean absolute deviation over the valid
    pixels (this makes the loss independent of the prior's scale and shift); the converted render r
    is then aligned to it by least squares, s, t = argmin Σ (s r + t − p̂)², in closed form, and the
    loss is mean |s r + t − p̂|. Gradients flow through s and t (they are differentiable functions
    of the render). s is not constrained to be positive, so a render with reversed depth order
    also fits; depth_loss_minmax does not have this blind spot.
    Shapes and zero-valid-pixel behaviour as depth_loss_minmax; every mean is over the valid pixels.
    """
    rendered, target, weight, count = _valid_pixels(rendered_depth, prior, prior_kind, valid_mask)
    mean = functools.partial(_masked_mean, weight=weight, count=count)
    deviation_floor = _REL_EPS * target.abs().amax() + _TINY
    target = target - mean(target)
    target = target / mean(target.abs()).clamp_min(deviation_floor)
    centred = rendered - mean(rendered)
    # The floor only acts on a (near-)constant render, where it sends the scale to 0.
    variance_floor = _REL_EPS * mean(rendered.detach() ** 2) + _TINY
    scale = mean(centred * target) / mean(centred * centred).clamp_min(variance_floor)
    # With a zero-mean target, the optimal shift aligns the means: s r + t - p̂ = s (r - mean r) - p̂.
    return mean((scale * centred - target).abs())


# ---- hand mask -------------------------------------------------------------------------------
def mask_loss(hand_map: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 between the rendered K-channel hand map [K, H, W] and the mask [1, H, W] on every channel."""
    if hand_map.dim() != 3 or hand_map.shape[0] == 0:
        raise ValueError(f"mask_loss expects a rendered hand map [K, H, W] with K >= 1, got {list(hand_map.shape)} "
                         "(is --mask_dimension 0?).")
    if mask.dim() != 3 or mask.shape[0] != 1 or mask.shape[1:] != hand_map.shape[1:]:
        raise ValueError(f"mask_loss expects a mask [1, {hand_map.shape[1]}, {hand_map.shape[2]}] "
                         f"matching the render, got {list(mask.shape)}.")
    return (hand_map - mask).abs().mean()
