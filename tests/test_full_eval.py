"""full_eval.py: schedule scaling, the table, and failing steps."""
import json

import pytest

import full_eval
from utils.schedule import scaled_schedule


def train_parser():
    train = pytest.importorskip("train")
    parser, _ = train.build_parser()
    return parser


def test_scaled_schedule_keeps_paper_values_at_full_length_and_is_understood_by_train():
    parser = train_parser()
    full = parser.parse_args(["-s", "scene"] + scaled_schedule(40_000))
    paper = {"warm_up": 3_000, "mask_start": 30_000, "mask_stop": 40_000, "stop_MLP": 40_000,
             "densify_from_iter": 500, "densify_until_iter": 15_000, "opacity_reset_interval": 3_000,
             "position_lr_max_steps": 30_000, "deform_lr_max_steps": 40_000, "time_noise_steps": 20_000}
    for name, value in paper.items():   # EgoMask's values: train.py's defaults, given back at 40k
        assert getattr(full, name) == value
    assert full.densification_interval == 100 and full.mask_lr == pytest.approx(0.0025)
    short = parser.parse_args(["-s", "scene"] + scaled_schedule(2_000))
    assert short.iterations == 2_000 and short.warm_up == 150
    assert (short.mask_start, short.mask_stop, short.stop_MLP) == (1_500, 2_000, 2_000)
    assert short.densify_until_iter == 750 and short.save_iterations == [2_000]
    assert short.warm_up < short.mask_start < short.mask_stop <= short.iterations
    # the mask feature can still travel from 0 to 1 within the shorter mask phase
    assert short.mask_lr * (short.mask_stop - short.mask_start) >= 1.0
    # floors where plain scaling collapses training: late enough warm-up, no opacity reset
    demo = parser.parse_args(["-s", "scene"] + scaled_schedule(300))
    assert demo.warm_up == 100 and demo.opacity_reset_interval > demo.iterations
    assert demo.densification_interval >= 50


def test_table_has_one_row_per_scene_and_decomposition_columns_only_when_known():
    rows = [{"scene": "a", "PSNR": 30.123, "SSIM": 0.91234, "LPIPS": None, "FPS": 12.34,
             "train_minutes": 1.5, "Gaussians": 1234},
            {"scene": "bb", "PSNR": None}]
    table = full_eval.format_table(rows).splitlines()
    assert table[0].split() == ["scene", "PSNR", "SSIM", "LPIPS", "FPS", "train", "(min)", "Gaussians"]
    assert table[2].split() == ["a", "30.12", "0.9123", "-", "12.3", "1.5", "1234"]
    assert table[3].split() == ["bb"] + ["-"] * 6
    rows[0]["mask_IoU"] = 0.5
    assert "mask_IoU" in full_eval.format_table(rows) and "static_PSNR" not in full_eval.format_table(rows)


def test_scene_row_reads_the_model_folder(tmp_path):
    model = tmp_path / "m"
    (model / "test" / "ours_300").mkdir(parents=True)
    (model / "results.json").write_text(json.dumps({"ours_100": {"PSNR": 1.0}, "ours_300": {
        "PSNR": 25.0, "SSIM": 0.8, "LPIPS": None, "mask_IoU": 0.7}}))
    (model / "test" / "ours_300" / "fps.json").write_text(json.dumps({"fps": 4.0, "num_gaussians": 77}))
    (model / "full_eval_timing.json").write_text(json.dumps({"train_seconds": 90.0}))
    row = full_eval.scene_row("s", str(model))
    assert row["method"] == "ours_300" and row["PSNR"] == 25.0 and row["mask_IoU"] == 0.7
    assert row["FPS"] == 4.0 and row["Gaussians"] == 77 and row["train_minutes"] == pytest.approx(1.5)


def test_missing_scene_folder_is_a_clear_error(tmp_path, capsys):
    assert full_eval.main(["-s", str(tmp_path / "nope"), "-o", str(tmp_path / "out")]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--iterations", "0"), ("--frames", "-3"), ("--width", "wide")])
def test_sizes_must_be_positive_integers_before_anything_is_made(tmp_path, capsys, flag, value):
    """--iterations 0 used to fall back to the demo's 300 without a word."""
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as exit_info:
        full_eval.main(["--synthetic", str(out), flag, value])
    assert exit_info.value.code == 2
    assert f"argument {flag}: must be a positive integer, got '{value}'" in capsys.readouterr().err
    assert not out.exists()


def test_failing_step_is_reported_and_the_table_still_printed(tmp_path, capsys):
    empty_scene = tmp_path / "empty_scene"
    empty_scene.mkdir()
    out = tmp_path / "out"
    code = full_eval.main(["-s", str(empty_scene), "-o", str(out), "--iterations", "10"])
    assert code != 0
    captured = capsys.readouterr()
    assert "train failed" in captured.err and "empty_scene" in captured.err
    assert "scene" in captured.out.splitlines()[-3]   # the table header
    rows = json.loads((out / "full_eval.json").read_text())
    assert rows[0]["scene"] == "empty_scene" and rows[0].get("PSNR") is None


@pytest.mark.slow
def test_synthetic_demo_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))   # offline: LPIPS null
    out = tmp_path / "demo"
    code = full_eval.main(["--synthetic", str(out), "--frames", "4", "--width", "32", "--height", "24",
                           "--points", "200", "--iterations", "20", "--llffhold", "2"])
    assert code == 0
    row = json.loads((out / "full_eval.json").read_text())[0]
    assert row["scene"] == "synthetic" and row["method"] == "ours_20"
    assert row["PSNR"] > 5 and 0 < row["SSIM"] <= 1 and row["FPS"] > 0 and row["Gaussians"] > 0
    assert row["train_minutes"] > 0 and "mask_IoU" in row and "static_PSNR" in row
    assert (out / "model" / "test" / "ours_20" / "fix").is_dir()
    assert "synthetic" in capsys.readouterr().out.splitlines()[-1]
