"""benchmarks/held_out_motion.py: the progress statistics on known motions, and a trained model end to end."""
import json

import pytest
import torch

import train
from benchmarks.held_out_motion import main, motion_progress, size_changes


def test_a_steady_motion_is_on_pace_and_on_the_path():
    x_a = torch.rand(50, 3)
    x_b = x_a + torch.tensor([1.0, 0.5, 0.0])
    stats = motion_progress(x_a, 0.7 * x_a + 0.3 * x_b, x_b, 0.3)
    assert stats["progress_median"] == pytest.approx(0.3, abs=1e-4)
    assert stats["held"] == stats["ahead"] == 0.0 and stats["sideways_median"] == pytest.approx(0.0, abs=1e-4)


def test_two_copies_show_as_held_and_ahead_and_a_detour_as_sideways():
    x_a = torch.rand(40, 3)
    step = torch.tensor([0.0, 2.0, 0.0])
    x_b = x_a + step
    x_t = x_a.clone()
    x_t[20:] += step                                   # half still at a, half already at b
    stats = motion_progress(x_a, x_t, x_b, 0.5)
    assert stats["held"] == stats["ahead"] == 0.5 and stats["gaussians"] == 40
    detour = x_a + 0.5 * step + torch.tensor([0.6, 0.0, 0.0])   # on pace, 0.3 step-lengths off the path
    assert motion_progress(x_a, detour, x_b, 0.5)["sideways_median"] == pytest.approx(0.3, abs=1e-4)
    still = motion_progress(x_a, x_a, x_a, 0.5)       # nothing moves: nothing to say
    assert still["gaussians"] == 0 and "progress_median" not in still


def test_size_changes_count_the_gaussians_that_grow_or_shrink_past_each_ratio():
    # four Gaussians over three times: steady, 2.5x, 5x (through a sign flip), 20x
    sizes = torch.tensor([[1.0, 1.0, 1.0, 0.1],
                          [1.0, 2.5, -0.5, 1.0],
                          [1.0, 1.0, 2.5, 2.0]])
    stats = size_changes(sizes, torch.tensor([0.1, 0.1, 0.4, 0.4]))
    assert stats["gaussians"] == 4
    assert (stats["over_2x"], stats["over_3x"], stats["over_10x"]) == (0.75, 0.5, 0.25)
    assert (stats["over_2x_by_opacity"], stats["over_3x_by_opacity"], stats["over_10x_by_opacity"]) == (0.9, 0.8, 0.4)


def test_a_trained_model_gives_one_row_per_inner_test_view(tmp_path):
    from scene.synthetic import generate
    scene = tmp_path / "scene"
    generate(str(scene), frames=9, width=32, height=24, seed=5)
    model = tmp_path / "model"
    train.main(["-s", str(scene), "-m", str(model), "--eval", "--llffhold", "4", "--iterations", "10",
                "--warm_up", "3", "--mask_start", "6", "--mask_stop", "10", "--stop_MLP", "10",
                "--densify_until_iter", "0", "--deform_depth", "2", "--deform_width", "16", "--deform_gate", "none",
                "--rasterizer", "torch", "--quiet", "--test_iterations", "10", "--save_iterations", "10"])
    out = tmp_path / "motion.json"
    rows = main(["-m", str(model), "--out", str(out), "--hand_rule", "percentile"])   # the top 15 % are hands
    # 9 frames, every 4th held out: frames 0, 4, 8; only frame 4 has training frames on both sides
    assert [row["time"] for row in rows] == [0.5] and rows[0]["between"] == [0.375, 0.625]
    assert rows[0]["fraction"] == 0.5 and rows[0]["gaussians"] > 0 and 0.0 <= rows[0]["resized_2x_by_opacity"] <= 1.0
    saved = json.loads(out.read_text())
    assert saved["views"] == rows
    assert saved["sizes"]["gaussians"] > 0 and 0.0 <= saved["sizes"]["over_2x"] <= 1.0


def test_a_folder_that_is_not_a_model_is_one_line_and_status_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["-m", str(tmp_path / "missing")])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing" in err
