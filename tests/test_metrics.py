"""metrics.py and the evaluation image maths on image pairs with known answers."""
import json
import math
import os

import lpips
import pytest
import torch
import torchvision

import metrics
from utils.image_io import write_image
from utils.image_utils import clean_mask, depth_for_viewing, mask_iou, masked_psnr, psnr
from utils.loss_utils import ssim

C1 = 0.01 ** 2  # SSIM stabilizer for a dynamic range of 1


def textured(h=32, w=32):
    return 0.25 + 0.5 * torch.rand(3, h, w)


# ---------------------------------------------------------------- PSNR / SSIM / LPIPS

def test_psnr_known_values():
    img = textured()
    assert math.isinf(float(psnr(img, img)))
    assert float(psnr(img, img + 0.1)) == pytest.approx(20.0, abs=1e-4)         # MSE 0.01
    noisy = img + 0.05 * torch.randn(img.shape)                                   # σ = 0.05 -> 26.02 dB
    assert float(psnr(img, noisy)) == pytest.approx(20 * math.log10(1 / 0.05), abs=0.1)
    # a one-pixel shift of a 1-px checkerboard inverts it: MSE 1, 0 dB
    board = ((torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2).float().expand(3, 16, 16)
    assert float(psnr(board, torch.roll(board, 1, dims=2))) == pytest.approx(0.0, abs=1e-6)
    batch = psnr(torch.stack([img, img]), torch.stack([img + 0.1, img + 0.01]))
    assert batch.shape == (2,) and batch[1].item() == pytest.approx(40.0, abs=1e-3)


def test_ssim_known_values():
    img = textured()
    assert float(ssim(img[None], img[None])) == pytest.approx(1.0, abs=1e-5)
    # constant images: only the luminance term, (2ab + C1) / (a² + b² + C1), away from the
    # zero-padded border (3DGS pads the window with zeros): a large image keeps the border small
    a, b = 0.5, 0.6
    flat_a, flat_b = torch.full((1, 1, 400, 400), a), torch.full((1, 1, 400, 400), b)
    luminance = (2 * a * b + C1) / (a * a + b * b + C1)   # 0.98361
    assert float(ssim(flat_a, flat_b)) == pytest.approx(luminance, abs=1e-3)
    # stronger noise -> lower SSIM; a spatial shift of texture decorrelates it
    weak = float(ssim(img[None], (img + 0.02 * torch.randn(img.shape))[None]))
    strong = float(ssim(img[None], (img + 0.2 * torch.randn(img.shape))[None]))
    shifted = float(ssim(img[None], torch.roll(img, 3, dims=2)[None]))
    assert 1.0 > weak > strong and shifted < 0.5


@pytest.fixture(scope="module")
def random_lpips():
    # random backbone (offline) with the package's calibrated, non-negative linear heads
    return lpips.LPIPS(pretrained=True, pnet_rand=True, net="alex", verbose=False).eval()


def test_lpips_distance_scales_inputs_and_is_a_distance(random_lpips):
    img, other = textured(64, 64), textured(64, 64)
    assert metrics.lpips_distance(random_lpips, img, img) == pytest.approx(0.0, abs=1e-7)
    d = metrics.lpips_distance(random_lpips, img, other)
    assert d > 0
    assert metrics.lpips_distance(random_lpips, other, img) == pytest.approx(d, rel=1e-5)
    with torch.no_grad():  # the package's own [0, 1] -> [-1, 1] scaling gives the same number
        assert float(random_lpips(img[None], other[None], normalize=True)) == pytest.approx(d, rel=1e-5)


def test_load_lpips_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(metrics.LpipsUnavailable, match="vgg16-397923af.pth"):
        metrics.load_lpips("vgg", torch.device("cpu"))


def test_load_lpips_reads_backbone_from_file(tmp_path):
    trunk = torchvision.models.alexnet().features
    path = tmp_path / "alex_features.pth"
    torch.save({f"features.{k}": v for k, v in trunk.state_dict().items()}, path)
    model = metrics.load_lpips("alex", torch.device("cpu"), str(path))
    assert torch.equal(model.net.slice1[0].weight, trunk[0].weight)
    assert torch.equal(getattr(model.net.slice5, "10").weight, trunk[10].weight)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(metrics.LpipsUnavailable, match="bad.pth"):
        metrics.load_lpips("alex", torch.device("cpu"), str(bad))


# ---------------------------------------------------------------- image helpers

def test_mask_iou_and_morphology():
    pred = torch.zeros(1, 8, 16, dtype=torch.bool)
    true = torch.zeros(1, 8, 16, dtype=torch.bool)
    pred[..., 0:8], true[..., 4:12] = True, True
    assert mask_iou(pred, true) == pytest.approx(1 / 3)
    assert mask_iou(~(pred | true) & pred, torch.zeros_like(pred)) == 1.0
    blob = torch.zeros(1, 20, 20)
    blob[:, 5:15, 0:12] = 1.0          # a hand entering from the left border
    blob[:, 9, 6] = 0.0                # a one-pixel hole
    noisy = blob.clone()
    noisy[:, 1, 17] = 1.0              # a one-pixel speck
    cleaned = clean_mask(noisy, kernel_size=3)
    expected = blob.bool()
    expected[:, 9, 6] = True
    assert torch.equal(cleaned, expected)


def test_depth_for_viewing_orders_near_to_far():
    depth = torch.tensor([[[1.0, 2.0, 3.0, 0.0]]])
    alpha = torch.tensor([[[1.0, 0.5, 1.0, 0.0]]])  # pixel 1 half-covered: expected depth 4
    view = depth_for_viewing(depth, alpha)
    assert view[0, 0, 0] == pytest.approx(1.0) and view[0, 0, 3] == 0.0
    assert view[0, 0, 0] > view[0, 0, 2] > view[0, 0, 1] > 0.0


# ---------------------------------------------------------------- metrics.py on a model folder

def make_rendered_model(root, with_truth=True, size=1):
    """A model folder with test/ours_7 holding two views with known errors and decomposition truth."""
    model = root / "model"
    method = model / "test" / "ours_7"
    h, w = 8 * size, 16 * size
    gt = torch.full((3, h, w), 0.2)
    write_image(str(method / "gt" / "frame_a.png"), gt)
    write_image(str(method / "renders" / "frame_a.png"), gt + 0.2)     # 0.2 off: 13.98 dB
    write_image(str(method / "gt" / "frame_b.png"), gt)
    write_image(str(method / "renders" / "frame_b.png"), gt + 0.4)     # 0.4 off: 7.96 dB
    hand_map = torch.zeros(1, h, w)
    hand_map[..., 0:w // 2] = 0.8
    source = root / "scene"
    for name in ("frame_a", "frame_b"):
        write_image(str(method / "hands_mask" / f"{name}.png"), hand_map)
        write_image(str(method / "static" / f"{name}.png"), gt)
        true_mask = torch.zeros(1, 2 * h, 2 * w)                         # full resolution (-r 2 render)
        true_mask[..., w // 2:3 * w // 2] = 1.0
        write_image(str(source / "masks" / f"{name}.png"), true_mask)
        write_image(str(source / "gt_static" / f"{name}.png"), torch.full((3, 2 * h, 2 * w), 0.4))
    if not with_truth:
        os.rename(source / "gt_static", source / "gt_static_hidden")
    (model / "cfg_args.json").write_text(json.dumps({"source_path": str(source)}))
    return model


def test_metrics_main_writes_inria_layout(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # no backbone: LPIPS null
    model = make_rendered_model(tmp_path)
    assert metrics.main(["-m", str(model)]) == 0
    assert "LPIPS unavailable" in capsys.readouterr().err
    results = json.loads((model / "results.json").read_text())
    per_view = json.loads((model / "per_view.json").read_text())
    assert list(results) == ["ours_7"]
    scores = results["ours_7"]
    assert scores["LPIPS"] is None
    psnr_a, psnr_b = 20 * math.log10(1 / 0.2), 20 * math.log10(1 / 0.4)
    assert per_view["ours_7"]["PSNR"]["frame_a.png"] == pytest.approx(psnr_a, abs=0.05)
    assert per_view["ours_7"]["PSNR"]["frame_b.png"] == pytest.approx(psnr_b, abs=0.05)
    assert scores["PSNR"] == pytest.approx((psnr_a + psnr_b) / 2, abs=0.05)
    assert set(per_view["ours_7"]["SSIM"]) == {"frame_a.png", "frame_b.png"}
    assert scores["SSIM"] < 1.0
    assert scores["mask_IoU"] == pytest.approx(1 / 3)
    assert scores["static_PSNR"] == pytest.approx(20 * math.log10(1 / 0.2), abs=0.05)


def test_metrics_with_lpips_model_and_partial_truth(tmp_path, random_lpips):
    model = make_rendered_model(tmp_path, with_truth=False, size=8)
    results = metrics.evaluate_model(str(model), "test", random_lpips, torch.device("cpu"))
    assert "static_PSNR" not in results["ours_7"]      # gt_static missing: no hand-free truth
    assert results["ours_7"]["mask_IoU"] == pytest.approx(1 / 3)  # the masks are still scored
    per_view = json.loads((model / "per_view.json").read_text())["ours_7"]
    assert all(v > 0 for v in per_view["LPIPS"].values())
    assert results["ours_7"]["LPIPS"] == pytest.approx(sum(per_view["LPIPS"].values()) / 2)


def test_lpips_is_null_for_images_too_small_for_the_backbone(tmp_path, random_lpips, capsys):
    model = make_rendered_model(tmp_path, size=1)
    results = metrics.evaluate_model(str(model), "test", random_lpips, torch.device("cpu"))
    assert results["ours_7"]["LPIPS"] is None and "too small for LPIPS" in capsys.readouterr().out


def test_metrics_bad_inputs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    missing = tmp_path / "nowhere"
    assert metrics.main(["-m", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and err.count("\n") == 1 and "LPIPS" not in err  # one error line, nothing else
    model = make_rendered_model(tmp_path)
    assert metrics.main(["-m", str(model), "--split", "train"]) == 2
    assert "train" in capsys.readouterr().err
    os.remove(model / "test" / "ours_7" / "gt" / "frame_b.png")
    assert metrics.main(["-m", str(model)]) == 2
    assert "frame_b" in capsys.readouterr().err
    assert metrics.main(["-m", str(model), "--require_lpips"]) == 1
    capsys.readouterr()
    # a backbone file named on the command line that is missing or unreadable: an error, nothing scored
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    for weights in (tmp_path / "absent.pth", tmp_path / "garbage.pth"):
        if (model / "results.json").exists():
            os.remove(model / "results.json")
        assert metrics.main(["-m", str(model), "--lpips_weights", str(weights)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("Error:") and err.count("\n") == 1 and str(weights) in err and "--lpips_weights" in err
        assert not (model / "results.json").exists()



# ---------------------------------------------------------------- decomposition scores, by hand

def test_masked_psnr_known_values():
    gt = torch.full((3, 4, 4), 0.5)
    image = gt.clone()
    image[:, :, :2] += 0.1
    image[:, :, 2:] += 0.3
    left = torch.zeros(1, 4, 4, dtype=torch.bool)
    left[..., :2] = True
    assert masked_psnr(image, gt, left) == pytest.approx(20.0, abs=1e-4)            # only the 0.1 errors
    assert masked_psnr(image, gt, ~left) == pytest.approx(-20 * math.log10(0.3), abs=1e-4)
    assert math.isnan(masked_psnr(image, gt, torch.zeros_like(left)))              # no pixel to score


def decomposition_views(tmp_path):
    """One 16x16 view whose scores are worked out in test_decomposition_scores_by_hand."""
    method = tmp_path / "model" / "test" / "ours_1"
    gt = torch.full((3, 16, 16), 0.2)          # multiples of 0.2 are exact in 8 bits (51/255)
    render = gt.clone()
    render[:, :, 0:4] += 0.2                   # off by 0.2 left of the hand
    render[:, :, 4:8] += 0.6                   # off by 0.6 on the hand (masked_PSNR ignores it)
    true_mask = torch.zeros(1, 16, 16)
    true_mask[..., 4:8] = 1.0                  # the hand: columns 4-7, 64 px
    binary = torch.zeros(1, 16, 16)
    binary[..., 4:12] = 1.0                    # predicted hand pixels: columns 4-11
    alpha = torch.zeros(1, 16, 16)
    alpha[:, 0:8, 4:8] = 1.0                   # covers the upper half of the hand (32)
    alpha[:, :, 9] = 0.6                       # 2 px beyond the hand: inside the 3-px tolerance (9.6)
    alpha[:, 0:4, 14] = 1.0                    # far from the hand (4)
    for folder, image in (("gt", gt), ("renders", render), ("gt_masks", true_mask), ("hands_mask", binary),
                          ("hands_mask_binary", binary), ("hands_alpha", alpha), ("static", gt)):
        write_image(str(method / folder / "v.png"), image)
    return method


def test_decomposition_scores_by_hand(tmp_path):
    method = decomposition_views(tmp_path)
    scores = metrics.evaluate_method(str(method), None, None, torch.device("cpu"))
    view = {metric: values["v.png"] for metric, values in scores.items()}
    assert view["mask_IoU"] == pytest.approx(64 / 128)
    assert view["hands_precision"] == pytest.approx(41.6 / 45.6, abs=2e-3)
    assert view["hands_recall"] == pytest.approx(32 / 64)
    # outside the hand: 64 px off by 0.2, 128 px exact -> MSE 0.04 / 3
    assert view["masked_PSNR"] == pytest.approx(10 * math.log10(75), abs=1e-3)
    assert "static_PSNR" not in view            # no hand-free truth for this scene


def test_hands_layer_scores_edge_cases():
    empty = torch.zeros(1, 8, 8, dtype=torch.bool)
    hand = empty.clone()
    hand[..., 2:4, 2:4] = True
    nothing = torch.zeros(1, 8, 8)
    assert metrics.hands_layer_scores(nothing, hand) == {"hands_precision": 1.0, "hands_recall": 0.0}
    assert metrics.hands_layer_scores(nothing, empty) == {"hands_precision": 1.0, "hands_recall": 1.0}
    assert metrics.hands_layer_scores(torch.ones(1, 8, 8), empty)["hands_precision"] == 0.0


def test_static_psnr_inside_the_hand_region(tmp_path):
    model = make_rendered_model(tmp_path)      # true hand: the middle half of the columns
    method = model / "test" / "ours_7"
    source = tmp_path / "scene"
    for name in ("frame_a", "frame_b"):
        hand_free = torch.full((3, 8, 16), 0.4)
        static = hand_free.clone()
        static[:, :, 4:12] -= 0.2              # remnants exactly on the hand: 0.2 off there
        write_image(str(method / "static" / f"{name}.png"), static)
        write_image(str(source / "gt_static" / f"{name}.png"), hand_free)
    scores = metrics.evaluate_model(str(model), "test", None, torch.device("cpu"))["ours_7"]
    assert scores["static_PSNR_hand_region"] == pytest.approx(20 * math.log10(1 / 0.2), abs=0.05)
    assert scores["static_PSNR"] == pytest.approx(10 * math.log10(1 / (0.04 / 2)), abs=0.05)


def test_on_a_small_cpu_machine_metrics_uses_one_thread(tmp_path, monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    torch.set_num_threads(2)
    try:
        metrics.main(["-m", str(tmp_path / "no_model")])   # the thread choice comes before the inputs are read
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
