"""L1, SSIM (against a per-pixel numpy evaluation), depth-prior losses (invariances), mask loss."""
import math

import numpy as np
import pytest
import torch

from utils.loss_utils import (depth_loss_minmax, depth_loss_ssi, depth_valid_mask, l1_loss, mask_loss,
                              photometric_loss, ssim, to_prior_convention)

DEPTH_LOSSES = [depth_loss_minmax, depth_loss_ssi]


# ---- L1 and SSIM -----------------------------------------------------------------------------
def test_l1_is_the_mean_absolute_difference():
    a = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, 3.5]])
    assert l1_loss(a, b).item() == pytest.approx((1 + 0 + 2 + 0.5) / 4)


def ssim_numpy(x: np.ndarray, y: np.ndarray, size: int = 11, sigma: float = 1.5) -> float:
    """SSIM by its definition, one pixel at a time: Gaussian-weighted means, variances and
    covariance over the window centred on the pixel, zero outside the image."""
    half = size // 2
    offsets = np.arange(size) - half
    g = np.exp(-offsets ** 2 / (2 * sigma ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    channels, height, width = x.shape
    values = []
    for c in range(channels):
        px = np.pad(x[c], half)  # zero padding
        py = np.pad(y[c], half)
        for i in range(height):
            for j in range(width):
                wx = px[i:i + size, j:j + size]
                wy = py[i:i + size, j:j + size]
                mx, my = (w * wx).sum(), (w * wy).sum()
                vx = (w * wx * wx).sum() - mx * mx
                vy = (w * wy * wy).sum() - my * my
                cxy = (w * wx * wy).sum() - mx * my
                values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_a_per_pixel_evaluation():
    rng = np.random.default_rng(3)
    x = rng.random((2, 9, 13))
    y = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
    expected = ssim_numpy(x, y)
    got = ssim(torch.tensor(x), torch.tensor(y)).item()
    assert got == pytest.approx(expected, abs=1e-10)
    assert 0.2 < expected < 0.99  # a discriminating case, not a trivial 1


def test_ssim_known_answers():
    img = torch.rand(3, 20, 24)
    assert ssim(img, img).item() == pytest.approx(1.0, abs=1e-6)
    assert ssim(img, 1 - img).item() < 0.0  # anti-correlated structure
    noisy = [ssim(img, (img + s * torch.randn_like(img)).clamp(0, 1)).item() for s in (0.02, 0.1, 0.3)]
    assert noisy[0] > noisy[1] > noisy[2]
    assert ssim(img, noisy_img := img * 0.5).item() == pytest.approx(ssim(noisy_img, img).item())


def test_ssim_batches_and_per_image_values():
    a, b = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    per_image = ssim(a, b, size_average=False)
    assert per_image.shape == (2,)
    assert per_image[1].item() == pytest.approx(ssim(a[1], b[1]).item(), abs=1e-6)
    assert ssim(a, b).item() == pytest.approx(per_image.mean().item(), abs=1e-6)


def test_photometric_loss_mixes_l1_and_dssim():
    a, b = torch.rand(3, 12, 12), torch.rand(3, 12, 12)
    l1, s = (a - b).abs().mean().item(), ssim(a, b).item()
    assert photometric_loss(a, b, 0.2).item() == pytest.approx(0.8 * l1 + 0.2 * (1 - s), rel=1e-6)
    assert photometric_loss(a, b, 0.0).item() == pytest.approx(l1, rel=1e-6)
    assert photometric_loss(a, a, 0.2).item() == pytest.approx(0.0, abs=1e-6)


def test_ssim_after_inference_mode_still_supports_backward():
    a, b = torch.rand(3, 10, 10), torch.rand(3, 10, 10)
    with torch.inference_mode():  # e.g. an evaluation pass fills the window cache first
        ssim(a, b, window_size=7)
    a.requires_grad_()
    ssim(a, b, window_size=7).backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_ssim_rejects_mismatched_images():
    with pytest.raises(ValueError, match="same shape"):
        ssim(torch.rand(3, 8, 8), torch.rand(3, 8, 9))


# ---- depth priors ----------------------------------------------------------------------------
def scene_depth(h=12, w=16):
    """A positive view-space depth map [1, H, W] with structure (a slanted plane and a bump)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return (1.5 + xx + 0.5 * yy + torch.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) * 20)).unsqueeze(0)


def all_valid(depth):
    return torch.ones_like(depth, dtype=torch.bool)


@pytest.mark.parametrize("loss_fn", DEPTH_LOSSES)
@pytest.mark.parametrize("kind", ["disparity", "depth"])
def test_zero_for_a_render_that_matches_the_prior(loss_fn, kind):
    z = scene_depth()
    prior = 0.3 * (1 / z if kind == "disparity" else z) + 0.7  # an affine image of the truth
    assert loss_fn(z, prior, kind, all_valid(z)).item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("loss_fn", DEPTH_LOSSES)
def test_invariant_to_positive_scale_and_shift_of_the_prior(loss_fn):
    z = scene_depth()
    prior = 1 / z + 0.2 * torch.rand_like(z)  # not a perfect match
    base = loss_fn(z, prior, "disparity", all_valid(z)).item()
    assert base > 1e-3
    for scale, shift in [(7.0, -3.0), (0.25, 10.0), (1000.0, 0.0)]:
        moved = loss_fn(z, scale * prior + shift, "disparity", all_valid(z)).item()
        assert moved == pytest.approx(base, rel=1e-3)


def test_ssi_is_also_invariant_to_a_negative_scale_but_minmax_is_not():
    z = scene_depth()
    prior = 1 / z + 0.05 * torch.rand_like(z)
    assert depth_loss_ssi(z, -2 * prior, "disparity", all_valid(z)).item() == pytest.approx(
        depth_loss_ssi(z, prior, "disparity", all_valid(z)).item(), rel=1e-3)
    assert depth_loss_minmax(z, -2 * prior, "disparity", all_valid(z)) > \
        depth_loss_minmax(z, prior, "disparity", all_valid(z)) + 0.1


def test_the_render_is_converted_to_the_prior_convention():
    # EgoMask compared normalized z with a disparity map; for a correct scene that is far from 0.
    z = scene_depth()
    disparity = 1 / z
    assert depth_loss_minmax(z, disparity, "disparity", all_valid(z)).item() < 1e-5
    assert depth_loss_minmax(z, disparity, "depth", all_valid(z)).item() > 0.1
    assert torch.allclose(to_prior_convention(z, "disparity"), 1 / z)
    with pytest.raises(ValueError, match="inverse"):
        to_prior_convention(z, "inverse")


def ssi_by_lstsq(rendered: torch.Tensor, prior: torch.Tensor) -> float:
    """Independent SSI value: normalize the prior, solve the 2-parameter least squares with lstsq."""
    p = prior.double().flatten()
    p = (p - p.mean()) / (p - p.mean()).abs().mean()
    r = rendered.double().flatten()
    A = torch.stack([r, torch.ones_like(r)], dim=1)
    st = torch.linalg.lstsq(A, p.unsqueeze(1)).solution
    return (A @ st - p.unsqueeze(1)).abs().mean().item()


def test_ssi_value_matches_an_explicit_least_squares_fit():
    z = scene_depth()
    prior = torch.rand_like(z)
    expected = ssi_by_lstsq(1 / z, prior)
    assert depth_loss_ssi(z, prior, "disparity", all_valid(z)).item() == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("loss_fn", DEPTH_LOSSES)
def test_only_valid_pixels_count(loss_fn):
    z = scene_depth()
    prior = 1 / z + 0.1 * torch.rand_like(z)
    valid = torch.zeros_like(z, dtype=torch.bool)
    valid[:, 2:10, 3:12] = True
    base = loss_fn(z, prior, "disparity", valid).item()
    # Anything outside the valid region (background at z = 0, huge or NaN prior values) is ignored.
    z2, prior2 = z.clone(), prior.clone()
    z2[~valid] = 0.0
    prior2[:, 0, 0] = float("nan")
    prior2[:, 11, 15] = 1e6
    z2.requires_grad_()
    loss = loss_fn(z2, prior2, "disparity", valid)
    assert loss.item() == pytest.approx(base, rel=1e-6)
    loss.backward()
    assert torch.isfinite(z2.grad).all()
    assert (z2.grad[~valid] == 0).all() and (z2.grad[valid] != 0).any()


def test_non_finite_prior_pixels_are_dropped_even_if_marked_valid():
    z = scene_depth()
    prior = 1 / z
    prior[:, 0, :] = float("inf")
    assert depth_loss_minmax(z, prior, "disparity", all_valid(z)).item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("loss_fn", DEPTH_LOSSES)
def test_degenerate_inputs_stay_finite(loss_fn):
    z = torch.full((1, 6, 6), 2.0, requires_grad=True)  # constant render
    for prior in (torch.full((1, 6, 6), 3.0), torch.rand(1, 6, 6)):
        loss = loss_fn(z, prior, "disparity", all_valid(z))
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
    nothing = loss_fn(z, torch.rand(1, 6, 6), "depth", torch.zeros(1, 6, 6, dtype=torch.bool))
    assert nothing.item() == 0.0
    nothing.backward()  # still part of the graph


@pytest.mark.parametrize("loss_fn", DEPTH_LOSSES)
def test_gradient_descent_on_the_render_reduces_the_loss(loss_fn):
    target_z = scene_depth()
    z = (target_z + 0.3 * torch.rand_like(target_z)).requires_grad_()
    prior = 1 / target_z
    optimizer = torch.optim.Adam([z], lr=0.01)
    first = None
    for _ in range(40):
        loss = loss_fn(z, prior, "disparity", all_valid(z))
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first


def test_depth_loss_shape_errors_name_the_tensor():
    z = scene_depth()
    with pytest.raises(ValueError, match="prior has shape"):
        depth_loss_minmax(z, torch.rand(1, 6, 8), "disparity", all_valid(z))
    with pytest.raises(ValueError, match="bool"):
        depth_loss_ssi(z, torch.rand_like(z), "disparity", torch.ones_like(z))


def test_depth_valid_mask_uses_alpha_and_finite_prior():
    alpha = torch.tensor([[[0.9, 0.2, 0.7]]])
    prior = torch.tensor([[[1.0, 1.0, float("nan")]]])
    assert depth_valid_mask(alpha, prior).tolist() == [[[True, False, False]]]


# ---- hand mask -------------------------------------------------------------------------------
def test_mask_loss_compares_every_channel_with_the_mask():
    mask = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    hands = torch.stack([mask[0], 1 - mask[0], torch.full((2, 2), 0.5)])
    assert mask_loss(hands, mask).item() == pytest.approx((0 + 1 + 0.5) / 3)
    assert mask_loss(mask.expand(3, 2, 2), mask).item() == 0.0


def test_mask_loss_shape_errors():
    with pytest.raises(ValueError, match="K >= 1"):
        mask_loss(torch.zeros(0, 4, 4), torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match=r"\[1, 4, 4\]"):
        mask_loss(torch.zeros(3, 4, 4), torch.zeros(3, 4, 4))


def test_masked_depth_losses_equal_the_losses_of_the_valid_pixels_alone():
    """The losses mask instead of indexing (no host sync); the values are those of the valid
    pixels taken out and scored on their own, written here the plain way."""
    g = torch.Generator().manual_seed(3)
    z = 1.0 + 4.0 * torch.rand(1, 12, 16, generator=g)
    prior = 1.0 / z + 0.05 * torch.rand(1, 12, 16, generator=g)
    valid = torch.rand(1, 12, 16, generator=g) > 0.4
    r, p = 1.0 / z[valid], prior[valid]
    normalize = lambda x: (x - x.min()) / (x.max() - x.min())
    assert depth_loss_minmax(z, prior, "disparity", valid).item() == pytest.approx(
        (normalize(r) - normalize(p)).abs().mean().item(), rel=1e-5)
    p_hat = (p - p.mean()) / (p - p.mean()).abs().mean()
    centred = r - r.mean()
    scale = (centred * p_hat).mean() / (centred * centred).mean()
    assert depth_loss_ssi(z, prior, "disparity", valid).item() == pytest.approx(
        (scale * centred - p_hat).abs().mean().item(), rel=1e-5)


@pytest.mark.parametrize("lambda_dssim", [0.2, 0.0, 1.0])
def test_photometric_loss_backward_by_hand_equals_autograd(lambda_dssim):
    """Training's photometric loss is one node with a hand-written backward: its value and its
    gradient are those of (1 − λ) L1 + λ (1 − SSIM) differentiated by autograd (float64), and
    gradcheck passes on a small image (borders, where the window is cut, included)."""
    g = torch.Generator().manual_seed(4)
    gt = torch.rand(3, 20, 24, generator=g, dtype=torch.float64)
    image = (gt + 0.2 * torch.randn(3, 20, 24, generator=g, dtype=torch.float64)).requires_grad_()
    by_hand = photometric_loss(image, gt, lambda_dssim)
    assert by_hand.grad_fn is not None and "Photometric" in type(by_hand.grad_fn).__name__
    (grad_by_hand,) = torch.autograd.grad(by_hand, image)
    reference = (1.0 - lambda_dssim) * l1_loss(image, gt) + lambda_dssim * (1.0 - ssim(image, gt))
    (grad_reference,) = torch.autograd.grad(reference, image)
    assert by_hand.item() == pytest.approx(reference.item(), rel=1e-12)
    assert torch.allclose(grad_by_hand, grad_reference, rtol=1e-9, atol=1e-14)
    small = image.detach()[:, :12, :13].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: photometric_loss(x, gt[:, :12, :13], lambda_dssim), (small,))
