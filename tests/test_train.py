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
                "--test_iterations", "1", "24", "--checkpoint_iterations", "29", "40",
                "--early_mask_weight", "0"]  # the paper's timing of the hand feature
    summary = train.main(["-s", tiny_scene, "-m", model, "--eval", "--llffhold", "3", *TINY, *schedule])
    assert summary["test_psnr"][24] > summary["test_psnr"][1] + 1.0  # the warm-up fits the views
    assert summary["iterations_per_second"] > 0  # reported, from the timed training steps
    before = final_state(model, 29)["gaussians"]["tensors"]["mask"]
    after = final_state(model, 40)["gaussians"]["tensors"]["mask"]
    assert torch.count_nonzero(before) == 0  # frozen before the mask phase
    assert after.abs().max() > 0.1           # and learning inside it


# ---------------------------------------------------------------- recipes and the decomposition losses

def resolved(argv):
    from arguments import apply_recipe, explicit_arguments
    parser, _ = train.build_parser()
    args = parser.parse_args(argv)
    apply_recipe(args, explicit_arguments(parser, argv))
    return args


def test_recipe_paper_sets_the_papers_values_and_explicit_flags_win():
    ours = resolved(["-s", "scene"])
    assert (ours.deform_gate, ours.deform_init) == ("hand", "zero")
    assert ours.early_mask_weight > 0 and ours.hands_layer_weight > 0 and ours.static_layer_weight > 0
    paper = resolved(["-s", "scene", "--recipe", "paper"])
    assert (paper.deform_gate, paper.deform_init, paper.early_mask_weight) == ("none", "pytorch", 0.0)
    assert paper.hands_layer_weight == 0.0 and paper.static_layer_weight == 0.0
    mixed = resolved(["-s", "scene", "--recipe", "paper", "--deform_init", "zero", "--early_mask_weight", "0.3"])
    assert (mixed.deform_gate, mixed.deform_init, mixed.early_mask_weight) == ("none", "zero", 0.3)


def test_the_resolved_recipe_is_saved_with_the_model(tiny_scene, tmp_path):
    import json
    model = str(tmp_path / "paper")
    run(tiny_scene, model, "--recipe", "paper")
    saved = json.loads(open(os.path.join(model, "cfg_args.json")).read())
    assert (saved["recipe"], saved["deform_gate"], saved["early_mask_weight"]) == ("paper", "none", 0.0)


def layered_setup(tiny_scene, tmp_path):
    """A scene's first camera and its Gaussians, the left half (by x) labelled hand."""
    from argparse import ArgumentParser

    from arguments import ModelParams, OptimizationParams, PipelineParams
    from scene import Scene
    from scene.gaussian_model import GaussianModel
    parser = ArgumentParser()
    lp, op, pp = ModelParams(parser), OptimizationParams(parser), PipelineParams(parser)
    args = parser.parse_args(["-s", tiny_scene, "-m", str(tmp_path / "m"), "--sh_degree", "1",
                              "--data_device", "cpu", "--rasterizer", "torch"])
    gaussians = GaussianModel(1, 3, device="cpu")
    scene = Scene(lp.extract(args), gaussians)
    with torch.no_grad():
        gaussians.tensors["opacity"].fill_(2.0)
        hands = gaussians.get_xyz[:, 0] < gaussians.get_xyz[:, 0].median()
        gaussians.tensors["mask"][hands] = 1.0
    camera = scene.getTrainCameras()[0]
    camera.mask = torch.zeros_like(camera.mask)
    camera.mask[..., :, : camera.mask.shape[-1] // 2] = 1.0   # any target: the test is where gradients go
    return gaussians, camera, op.extract(args), pp.extract(args), hands


def test_layer_losses_reach_only_the_gaussians_of_their_layer(tiny_scene, tmp_path):
    from scene.decomposition import motion_gate
    gaussians, camera, opt, pipe, hands = layered_setup(tiny_scene, tmp_path)
    gate = motion_gate(gaussians.get_mask, opt.gate_low, opt.gate_high)
    assert torch.equal(gate > 0, hands)
    opacity = gaussians.tensors["opacity"]
    opacity.requires_grad_(True)
    terms = train.layer_losses(camera, gaussians, pipe, (0.0, 0.0, 0.0), gate, opt, is_6dof=False)
    assert set(terms) == {"hands_alpha", "hands_color", "static_color"}
    (terms["hands_alpha"] + terms["hands_color"]).backward()
    hand_grad = opacity.grad.clone()
    assert hand_grad[~hands].abs().max() == 0 and hand_grad[hands].abs().max() > 0
    opacity.grad = None
    terms = train.layer_losses(camera, gaussians, pipe, (0.0, 0.0, 0.0), gate, opt, is_6dof=False)
    terms["static_color"].backward()
    assert opacity.grad[hands].abs().max() == 0 and opacity.grad[~hands].abs().max() > 0
    assert gaussians.tensors["mask"].grad is None      # the gate is detached: only the mask loss labels


def test_default_recipe_learns_the_hand_feature_before_the_mask_phase(tiny_scene, tmp_path):
    model = str(tmp_path / "early")
    run(tiny_scene, model, "--checkpoint_iterations", "7", "--mask_lr", "0.05")
    assert final_state(model, 7)["gaussians"]["tensors"]["mask"].abs().max() > 0.01   # before mask_start (8)
