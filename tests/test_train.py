"""End-to-end training on a tiny synthetic egocentric scene (CPU, reference rasterizer)."""
import os

import pytest
import torch

import train
from utils.checkpoint import load_checkpoint

TINY = ["--iterations", "12", "--warm_up", "4", "--mask_start", "8", "--mask_stop", "12", "--stop_MLP", "10",
        "--densify_from_iter", "2", "--densification_interval", "3", "--densify_until_iter", "10",
        "--opacity_reset_interval", "9", "--position_lr_max_steps", "12", "--deform_lr_max_steps", "12",
        "--deform_depth", "2", "--deform_width", "16", "--rasterizer", "torch", "--data_device", "cpu",
        "--quiet", "--test_iterations", "12", "--save_iterations", "12", "--sh_degree", "1"]


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory):
    from scene.synthetic import generate

    out = tmp_path_factory.mktemp("synthetic")
    generate(str(out), frames=6, width=32, height=24, seed=3)
    return str(out)


def run(scene, model, *extra):
    return train.main(["-s", scene, "-m", model, "--eval", "--llffhold", "3", *TINY, *extra])


def final_state(model, iteration=12):
    return load_checkpoint(os.path.join(model, f"chkpnt{iteration}.pth"))


def assert_same_tensors(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{path} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{path} keys differ"
        for key in a:
            assert_same_tensors(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path} lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{path}[{i}]")


def test_output_layout(tiny_scene, tmp_path):
    model = str(tmp_path / "model")
    run(tiny_scene, model)
    for rel in ("cfg_args.json", "cameras.json", "input.ply", "point_cloud/iteration_12/point_cloud.ply",
                "deform/iteration_12/deform.pth"):
        assert os.path.isfile(os.path.join(model, rel)), rel


def test_resume_is_exact(tiny_scene, tmp_path):
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    run(tiny_scene, full, "--checkpoint_iterations", "12")
    run(tiny_scene, part, "--checkpoint_iterations", "6")
    run(tiny_scene, part, "--checkpoint_iterations", "12", "--start_checkpoint", os.path.join(part, "chkpnt6.pth"))
    a, b = final_state(full), final_state(part)
    assert a["iteration"] == b["iteration"] == 12
    assert_same_tensors(a["gaussians"], b["gaussians"], "gaussians")
    assert_same_tensors(a["deform"], b["deform"], "deform")
    assert_same_tensors(a["densification"], b["densification"], "densification")


def test_non_finite_loss_stops_with_checkpoint(tiny_scene, tmp_path, monkeypatch, capsys):
    real = train.compute_losses
    calls = []  # one call per iteration: its length is the iteration number

    def poisoned(render_pkg, camera, phase, opt, kind):
        calls.append(phase)
        terms = real(render_pkg, camera, phase, opt, kind)
        if phase.depth_weight > 0:  # the first depth-phase iteration
            terms["depth"] = terms["depth"] * float("nan")
            terms["total"] = terms["total"] + terms["depth"]
        return terms

    monkeypatch.setattr(train, "compute_losses", poisoned)
    model = str(tmp_path / "nan")
    with pytest.raises(SystemExit) as exit_info:
        run(tiny_scene, model)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    bad = len(calls)
    assert bad > 1 and f"depth loss" in err and f"iteration {bad}" in err and f"chkpnt{bad - 1}.pth" in err
    saved = load_checkpoint(os.path.join(model, f"chkpnt{bad - 1}.pth"))
    # exactly what a normal run saves after iteration bad - 1, so resuming from it loses nothing
    monkeypatch.setattr(train, "compute_losses", real)
    clean = str(tmp_path / "clean")
    run(tiny_scene, clean, "--checkpoint_iterations", str(bad - 1))
    expected = load_checkpoint(os.path.join(clean, f"chkpnt{bad - 1}.pth"))
    assert saved["iteration"] == expected["iteration"] == bad - 1
    assert saved["run_state"]["camera_stack"] == expected["run_state"]["camera_stack"]
    assert saved["camera_rng"] == expected["camera_rng"]
    assert_same_tensors(saved["rng"]["torch"], expected["rng"]["torch"], "torch rng")
    for part in ("gaussians", "deform", "densification"):
        assert_same_tensors(saved[part], expected[part], part)


def test_bad_source_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["-s", str(tmp_path / "missing"), "-m", str(tmp_path / "m"), *TINY])
    assert exit_info.value.code == 2
    assert "missing" in capsys.readouterr().err


def test_training_improves_the_render_and_the_hand_feature_learns_only_in_its_phase(tiny_scene, tmp_path):
    model = str(tmp_path / "learn")
    schedule = ["--iterations", "40", "--warm_up", "25", "--mask_start", "30", "--mask_stop", "40",
                "--stop_MLP", "40", "--densify_until_iter", "0", "--mask_lr", "0.05",
                "--test_iterations", "1", "24", "--checkpoint_iterations", "29", "40"]
    summary = train.main(["-s", tiny_scene, "-m", model, "--eval", "--llffhold", "3", *TINY, *schedule])
    assert summary["test_psnr"][24] > summary["test_psnr"][1] + 1.0  # the warm-up fits the views
    assert summary["iterations_per_second"] > 0  # reported, from the timed training steps
    before = final_state(model, 29)["gaussians"]["tensors"]["mask"]
    after = final_state(model, 40)["gaussians"]["tensors"]["mask"]
    assert torch.count_nonzero(before) == 0  # frozen before the mask phase
    assert after.abs().max() > 0.1           # and learning inside it
