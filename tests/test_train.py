"""End-to-end training on a tiny synthetic egocentric scene (CPU, reference rasterizer)."""
import json
import os
from types import SimpleNamespace

import pytest
import torch

import train
from gaussian_renderer import deform_gaussians
from utils.checkpoint import load_checkpoint

TINY = ["--iterations", "12", "--warm_up", "4", "--mask_start", "8", "--mask_stop", "12", "--stop_MLP", "10",
        "--densify_from_iter", "2", "--densification_interval", "3", "--densify_until_iter", "10",
        "--opacity_reset_interval", "9", "--position_lr_max_steps", "12", "--deform_lr_max_steps", "12",
        "--deform_depth", "2", "--deform_width", "16", "--rasterizer", "torch", "--data_device", "cpu",
        "--quiet", "--test_iterations", "12", "--save_iterations", "12", "--sh_degree", "1",
        # 4 views of 32x24 leave the default budget room for 153 Gaussians, fewer than the 3000 initial
        # points: unlimited here, so that these runs densify (test_the_densification_budget_... below)
        "--densify_budget", "0"]


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory):
    from scene.synthetic import generate

    out = tmp_path_factory.mktemp("synthetic")
    generate(str(out), frames=6, width=32, height=24, seed=3)
    return str(out)


# On a GPU, training runs there and bit-exact reruns need --deterministic (README).
EXACT = ["--deterministic"] if torch.cuda.is_available() else []


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


@pytest.mark.parametrize("deferred", [False, True], ids=["check_every_step", "deferred_check"])
def test_resume_is_exact(tiny_scene, tmp_path, monkeypatch, deferred):
    """Also with fused Adam and the deferred loss check (as on a GPU), read every 5 steps: the
    checkpoint at 6 falls between two reads, and the running loss resumes where it was."""
    flags = []
    if deferred:
        monkeypatch.setattr(train, "fused_adam", lambda device, pipe: not pipe.speed_baseline)
        flags = ["--log_interval", "5"]
    flags += EXACT
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    run(tiny_scene, full, "--checkpoint_iterations", "12", *flags)
    run(tiny_scene, part, "--checkpoint_iterations", "6", *flags)
    run(tiny_scene, part, "--checkpoint_iterations", "12", "--start_checkpoint", os.path.join(part, "chkpnt6.pth"),
        *flags)
    a, b = final_state(full), final_state(part)
    assert a["iteration"] == b["iteration"] == 12
    assert_same_tensors(a["gaussians"], b["gaussians"], "gaussians")
    assert_same_tensors(a["deform"], b["deform"], "deform")
    assert_same_tensors(a["densification"], b["densification"], "densification")
    assert a["run_state"]["ema_loss"] == b["run_state"]["ema_loss"]


@pytest.mark.parametrize("flags, deferred", [([], False), (["--detect_anomaly"], False), ([], True)],
                         ids=["check_after_queueing_backward", "anomaly_mode", "deferred_check"])
def test_non_finite_loss_stops_with_checkpoint(tiny_scene, tmp_path, monkeypatch, capsys, flags, deferred):
    """The finite check runs after backward is queued (before it under --detect_anomaly, whose
    backward would raise first), or deferred (fused Adam, as on a GPU: read every --log_interval
    steps, the bad step's update and every later one skipped on the device): either way no update
    is applied and the last good state is saved."""
    if deferred:   # fused Adam, and so the deferred check, as train.py takes them on CUDA
        monkeypatch.setattr(train, "fused_adam", lambda device, pipe: not pipe.speed_baseline)
        flags = flags + ["--log_interval", "5"]
    real = train.compute_losses
    calls = []  # one call per iteration: its length is the iteration number

    poisoned_at = []

    def poisoned(render_pkg, camera, phase, opt, kind):
        calls.append(phase)
        terms = real(render_pkg, camera, phase, opt, kind)
        if phase.depth_weight > 0:  # from the first depth-phase iteration on
            poisoned_at.append(len(calls))
            terms["depth"] = terms["depth"] * float("nan")
            terms["total"] = terms["total"] + terms["depth"]
        return terms

    monkeypatch.setattr(train, "compute_losses", poisoned)
    flags = flags + EXACT + ["--cuda_graphs", "off"]   # a replayed graph would not call compute_losses
    if not deferred and not flags[:1] == ["--detect_anomaly"]:
        flags += ["--adam", "plain"]   # on a GPU fused Adam is the default, and with it the deferred check
    model = str(tmp_path / "nan")
    with pytest.raises(SystemExit) as exit_info:
        run(tiny_scene, model, *flags)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    bad = poisoned_at[0]
    assert len(calls) == (5 if deferred else bad)   # deferred: read at the next log (--log_interval 5)
    assert bad > 1 and f"depth loss" in err and f"iteration {bad}" in err and f"chkpnt{bad - 1}.pth" in err
    saved = load_checkpoint(os.path.join(model, f"chkpnt{bad - 1}.pth"))
    # exactly what a normal run saves after iteration bad - 1, so resuming from it loses nothing
    monkeypatch.setattr(train, "compute_losses", real)
    clean = str(tmp_path / "clean")
    same_adam = ["--adam", "plain"] if "--adam" in flags else []
    run(tiny_scene, clean, "--checkpoint_iterations", str(bad - 1), *EXACT, "--cuda_graphs", "off", *same_adam)
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
    assert (ours.deform_gate, ours.deform_init, ours.time_outside) == ("hand", "zero", "linear")
    assert ours.hand_pixels == "layer" and ours.static_fill == "on"
    assert (ours.time_frequencies, ours.time_network, ours.time_noise) == (4, "on", "off")
    assert ours.recipe_set == ["time_frequencies", "time_network", "time_noise"]
    assert ours.early_mask_weight > 0 and ours.hands_layer_weight > 0 and ours.static_layer_weight > 0
    assert ours.deform_precision == "auto"   # TF32 where the network trains as recorded graphs
    paper = resolved(["-s", "scene", "--recipe", "paper"])
    assert (paper.deform_gate, paper.deform_init, paper.early_mask_weight) == ("none", "pytorch", 0.0)
    assert paper.hands_layer_weight == 0.0 and paper.static_layer_weight == 0.0
    assert paper.time_outside == "extrapolate" and paper.time_frequencies == -1   # upstream's encoding,
    assert (paper.time_network, paper.time_noise) == ("auto", "auto")               # time network and noise
    assert paper.hand_pixels == "map"   # hand pixels from the rendered hand feature, as the paper
    assert paper.static_fill == "off"   # the static layer as drawn: a dark hole where the hands were
    assert paper.deform_precision == "fp32"   # upstream's numerics
    assert ours.densify_budget == 0.05 and paper.densify_budget == 0.0   # upstream densifies without limit
    assert resolved(["-s", "scene", "--time_frequencies", "6"]).time_frequencies == 6
    mixed = resolved(["-s", "scene", "--recipe", "paper", "--deform_init", "zero", "--early_mask_weight", "0.3"])
    assert (mixed.deform_gate, mixed.deform_init, mixed.early_mask_weight) == ("none", "zero", 0.3)


def test_the_densification_budget_caps_the_gaussian_count(tiny_scene, tmp_path):
    from plyfile import PlyData

    unlimited = run(tiny_scene, str(tmp_path / "unlimited"))
    capped = run(tiny_scene, str(tmp_path / "capped"), "--densify_budget", "0.1")
    initial = len(PlyData.read(str(tmp_path / "capped" / "input.ply"))["vertex"])
    assert initial > 307                             # the budget: 0.1 x 4 views x 32 x 24 pixels
    assert capped["num_gaussians"] <= initial        # no room: nothing added, pruning only
    assert unlimited["num_gaussians"] > initial      # the same run without the budget densifies


def test_a_checkpoint_saved_before_the_budget_resumes_without_it(tiny_scene, tmp_path, capsys):
    """... and one saved before --time_network / --time_noise with upstream's time handling (the
    network it saved has no time network: the recipe's "on" would not fit its weights)."""
    model = str(tmp_path / "older")
    run(tiny_scene, model, "--checkpoint_iterations", "6", "--densify_budget", "0.1",
        "--time_network", "auto", "--time_noise", "auto")
    path = os.path.join(model, "chkpnt6.pth")
    checkpoint = load_checkpoint(path)
    for key in ("densify_budget", "time_network", "time_noise"):
        del checkpoint["config"][key]                # as written before the flags existed
    torch.save(checkpoint, path)
    parser, _ = train.build_parser()
    args = parser.parse_args(["--start_checkpoint", path])
    train.resume_configuration(args, {"start_checkpoint": path})
    assert args.densify_budget == 0.0
    assert (args.time_network, args.time_noise) == ("auto", "auto")
    args = parser.parse_args(["--start_checkpoint", path, "--densify_budget", "0.2"])
    train.resume_configuration(args, {"start_checkpoint": path, "densify_budget": 0.2})
    assert args.densify_budget == 0.2                # a flag given now still wins


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
    phase = SimpleNamespace(uses_mask=True)
    layers = train.decomposition_layers(gate, phase, camera, opt)
    black = torch.zeros(3)

    def layer_terms():
        _, packages = train.draw_step(camera, deform_gaussians(gaussians, 0.0, 0.0, 0.0), pipe, black, layers)
        return train.layer_losses(camera, packages)

    terms = layer_terms()
    assert set(terms) == {"hands_alpha", "hands_color", "static_color"}
    (terms["hands_alpha"] + terms["hands_color"]).backward()
    hand_grad = opacity.grad.clone()
    assert hand_grad[~hands].abs().max() == 0 and hand_grad[hands].abs().max() > 0
    opacity.grad = None
    terms = layer_terms()
    terms["static_color"].backward()
    assert opacity.grad[hands].abs().max() == 0 and opacity.grad[~hands].abs().max() > 0
    assert gaussians.tensors["mask"].grad is None      # the gate is detached: only the mask loss labels


def test_one_deformation_shared_by_the_steps_renders_gives_the_gradients_of_separate_renders(tiny_scene, tmp_path):
    from gaussian_renderer import render
    from scene.decomposition import motion_gate
    gaussians, camera, opt, pipe, hands = layered_setup(tiny_scene, tmp_path)
    gate = motion_gate(gaussians.get_mask, opt.gate_low, opt.gate_high).detach()
    torch.manual_seed(0)
    n = gaussians.get_xyz.shape[0]
    offsets = (0.01 * torch.randn(n, 3), 0.01 * torch.randn(n, 4), 0.001 * torch.randn(n, 3))
    black = torch.zeros(3)

    def gradients(total):
        for t in gaussians.tensors.values():
            t.grad = None
        total.backward()
        return {name: t.grad.clone() for name, t in gaussians.tensors.items() if t.grad is not None}

    shared = deform_gaussians(gaussians, *offsets)
    layers = train.decomposition_layers(gate, SimpleNamespace(uses_mask=True), camera, opt)
    image, packages = train.draw_step(camera, shared, pipe, black, layers)
    a = gradients(image["render"].sum() + sum(train.layer_losses(camera, packages).values()))
    separate_image = render(camera, gaussians, pipe, black, *offsets)["render"]
    hands_render = render(camera, gaussians, pipe, black, *offsets, gaussian_subset=gate > 0, opacity_weight=gate)
    static_render = render(camera, gaussians, pipe, black, *offsets, opacity_weight=1.0 - gate)
    mask, gt = camera.mask, camera.original_image
    b = gradients(separate_image.sum() + (hands_render["alpha"] - mask).abs().mean()
                  + (mask * (hands_render["render"] - gt).abs()).mean()
                  + ((1.0 - mask) * (static_render["render"] - gt).abs()).mean())
    assert a.keys() == b.keys() and {"xyz", "opacity", "scaling", "rotation"} <= a.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=1e-4, atol=1e-7), name


def test_default_recipe_learns_the_hand_feature_before_the_mask_phase(tiny_scene, tmp_path):
    model = str(tmp_path / "early")
    run(tiny_scene, model, "--checkpoint_iterations", "7", "--mask_lr", "0.05")
    assert final_state(model, 7)["gaussians"]["tensors"]["mask"].abs().max() > 0.01   # before mask_start (8)


# ---------------------------------------------------------------- the model folder is never damaged

def folder_snapshot(folder):
    """{relative path: file bytes} of every file under folder."""
    snapshot = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                snapshot[os.path.relpath(path, folder)] = f.read()
    return snapshot


def exit_code_and_error(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv)
    err = capsys.readouterr().err.strip()
    return exit_info.value.code, err


@pytest.fixture(scope="module")
def trained_model(tiny_scene, tmp_path_factory):
    model = str(tmp_path_factory.mktemp("trained") / "model")
    run(tiny_scene, model, "--checkpoint_iterations", "12", *EXACT)
    return model


@pytest.mark.parametrize("bad, expected", [
    (["-s", "{missing}"], "missing"),
    (["--iterations", "-5"], "--iterations must be at least 1"),
    (["--rasterizer", "cuda"], "--rasterizer cuda needs a CUDA GPU"),
    (["--start_checkpoint", "{nowhere}"], "does not exist"),
    (["-r", "3"], "-r/--resolution 3 would train at 3 px wide"),
])
def test_a_failing_run_leaves_an_existing_model_as_it_was(tiny_scene, trained_model, tmp_path, capsys, bad, expected):
    if bad == ["--rasterizer", "cuda"] and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    before = folder_snapshot(trained_model)
    bad = [b.format(missing=str(tmp_path / "missing"), nowhere=str(tmp_path / "nowhere.pth")) for b in bad]
    argv = ["-s", tiny_scene, "-m", trained_model, "--eval", "--llffhold", "3", *TINY, "--overwrite", *bad]
    code, err = exit_code_and_error(capsys, argv)
    assert code == 2 and expected in err and "\n" not in err and err.startswith("Error:")
    assert folder_snapshot(trained_model) == before


def test_training_into_a_folder_with_results_needs_overwrite_or_resume(tiny_scene, trained_model, tmp_path, capsys):
    copy = str(tmp_path / "copy")
    import shutil
    shutil.copytree(trained_model, copy)
    before = folder_snapshot(copy)
    code, err = exit_code_and_error(capsys, ["-s", tiny_scene, "-m", copy, *TINY])
    assert code == 2 and "already holds a trained model" in err and "--overwrite" in err
    assert f"--start_checkpoint {os.path.join(copy, 'chkpnt12.pth')}" in err
    assert folder_snapshot(copy) == before
    run(tiny_scene, copy, "--overwrite", "--iterations", "6", "--save_iterations", "6", "--test_iterations", "6")
    assert not os.path.exists(os.path.join(copy, "chkpnt12.pth"))            # the old run's results are gone
    assert sorted(os.listdir(os.path.join(copy, "point_cloud"))) == ["iteration_6"]


def test_interrupt_saves_a_checkpoint_and_the_checkpoint_alone_resumes_the_run(tiny_scene, trained_model, tmp_path,
                                                                              monkeypatch, capsys):
    import signal
    real_pick, calls = train.pick_camera, []

    def pick_then_interrupt(*args):
        calls.append(1)
        if len(calls) == 6:
            signal.raise_signal(signal.SIGINT)      # Ctrl-C during iteration 6
        return real_pick(*args)

    monkeypatch.setattr(train, "pick_camera", pick_then_interrupt)
    model = str(tmp_path / "stopped")
    with pytest.raises(SystemExit) as exit_info:
        run(tiny_scene, model, "--checkpoint_iterations", "12", *EXACT)
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    checkpoint = os.path.join(model, "chkpnt6.pth")
    assert "Traceback" not in err and f"python train.py --start_checkpoint {checkpoint}" in err
    with open(os.path.join(model, "train_summary.json")) as f:   # the speed so far, for benchmarks
        partial = json.load(f)
    assert partial["last_iteration"] == 6 and sum(p["steps"] for p in partial["phases"].values()) == 6
    monkeypatch.setattr(train, "pick_camera", real_pick)
    train.main(["--start_checkpoint", checkpoint])          # nothing else: the checkpoint knows the run
    assert "Resuming with the configuration saved in" in capsys.readouterr().out
    a, b = final_state(trained_model), final_state(model)
    assert a["iteration"] == b["iteration"] == 12
    for part in ("gaussians", "deform", "densification"):
        assert_same_tensors(a[part], b[part], part)


def test_flags_given_with_a_checkpoint_win_and_are_named(tiny_scene, trained_model, tmp_path, capsys):
    import shutil
    copy = str(tmp_path / "copy")
    shutil.copytree(trained_model, copy)
    summary = train.main(["--start_checkpoint", os.path.join(copy, "chkpnt12.pth"), "--iterations", "14",
                          "--save_iterations", "14", "--test_iterations", "14"])
    assert summary["iterations"] == 14
    assert "flags given now win: --iterations, --save_iterations, --test_iterations." in capsys.readouterr().out


def test_evaluation_comes_before_the_opacity_reset_of_its_iteration(tiny_scene, tmp_path, monkeypatch):
    real_evaluate, seen = train.evaluate, {}

    def recording(scene, gaussians, *args):
        seen[args[-1]] = float(gaussians.get_opacity.detach().max())
        return real_evaluate(scene, gaussians, *args)

    monkeypatch.setattr(train, "evaluate", recording)
    run(tiny_scene, str(tmp_path / "m"), "--test_iterations", "9", "12")   # TINY resets opacity at 9
    from scene.densify import OPACITY_RESET_CEILING
    assert seen[9] > 2 * OPACITY_RESET_CEILING      # scored as trained, not right after the reset


def test_a_full_disk_is_one_line_and_the_model_stays(tiny_scene, trained_model, tmp_path, capsys, monkeypatch):
    import errno
    import shutil
    copy = str(tmp_path / "copy")
    shutil.copytree(trained_model, copy)
    before = folder_snapshot(copy)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", os.path.join(copy, "cfg_args.json"))

    monkeypatch.setattr(train, "save_config", full_disk)
    code, err = exit_code_and_error(capsys, ["-s", tiny_scene, "-m", copy, *TINY, "--overwrite"])
    assert code == 2 and "No space left on device" in err and "\n" not in err
    assert folder_snapshot(copy) == before   # nothing was removed before the first write failed


def test_an_unreadable_checkpoint_is_found_before_the_scene_loads(tmp_path, capsys):
    garbage = tmp_path / "chkpnt5.pth"
    garbage.write_bytes(b"not a checkpoint")
    code, err = exit_code_and_error(capsys, ["-s", str(tmp_path / "no_scene_here"), "-m", str(tmp_path / "m"),
                                             "--start_checkpoint", str(garbage)])
    assert code == 2 and "chkpnt5.pth" in err and "cannot be read" in err
    assert not (tmp_path / "m").exists()


def test_without_masks_every_gaussian_deforms_and_the_config_says_so(tiny_scene, tmp_path, capsys):
    import json
    model = str(tmp_path / "no_masks")
    run(tiny_scene, model, "--no_masks")
    out = capsys.readouterr().out
    assert "every Gaussian deforms (--deform_gate none for this run)" in out
    assert ("the time handling is upstream's (--time_frequencies -1 --time_network auto --time_noise auto "
            "for this run)") in out
    saved = json.loads(open(os.path.join(model, "cfg_args.json")).read())
    assert saved["deform_gate"] == "none"     # render.py deforms every Gaussian too
    assert saved["time_frequencies"] == -1    # ... with the network's own time encoding
    assert (saved["time_network"], saved["time_noise"]) == ("auto", "auto")
    assert "timenet.0.weight" not in saved_deformation(model)   # upstream builds none outside Blender scenes
    deform = saved_deformation(model)
    # the zero-initialised motion head learned: the network ran on the Gaussians (a closed gate never runs it)
    assert any(p.abs().sum() > 0 for name, p in deform.items() if name.startswith("gaussian_warp"))


def test_an_explicit_time_encoding_stays_without_masks_and_the_recipe_value_applies_with_them(tiny_scene, tmp_path, capsys):
    import json
    explicit, masked = str(tmp_path / "explicit"), str(tmp_path / "masked")
    run(tiny_scene, explicit, "--no_masks", "--time_frequencies", "3")
    run(tiny_scene, masked)
    out = capsys.readouterr().out
    assert "(--time_network auto --time_noise auto for this run)" in out and "--time_frequencies -1" not in out
    assert json.loads(open(os.path.join(explicit, "cfg_args.json")).read())["time_frequencies"] == 3
    saved = json.loads(open(os.path.join(masked, "cfg_args.json")).read())
    assert (saved["time_frequencies"], saved["time_network"], saved["time_noise"]) == (4, "on", "off")
    assert "timenet.0.weight" in saved_deformation(masked)   # the recipe's time network, trained and saved


def saved_deformation(model):
    return torch.load(os.path.join(model, "deform", "iteration_12", "deform.pth"), weights_only=True)


def test_speed_baseline_trains_the_same_model_and_the_summary_counts_every_step(tiny_scene, tmp_path, monkeypatch):
    import json
    # On the CPU: on a GPU the two take different Adam kernels, whose last-bit differences Adam
    # (eps 1e-15) blows up to a learning rate's step where a gradient is ~0.
    monkeypatch.setattr(train, "training_device", lambda: torch.device("cpu"))
    fast, baseline = str(tmp_path / "fast"), str(tmp_path / "baseline")
    run(tiny_scene, fast, "--checkpoint_iterations", "12")
    run(tiny_scene, baseline, "--checkpoint_iterations", "12", "--speed_baseline")
    a, b = final_state(fast)["gaussians"]["tensors"], final_state(baseline)["gaussians"]["tensors"]
    # The network on every row (static rows scaled by 0) gives the gated offsets up to rounding.
    assert a.keys() == b.keys() and a["xyz"].shape == b["xyz"].shape
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-4), name
    with open(os.path.join(fast, "train_summary.json")) as f:
        summary = json.load(f)
    phases = summary["phases"]
    assert set(phases) >= {"warm-up", "mask"} and sum(p["steps"] for p in phases.values()) == 12
    assert all(p["seconds"] > 0 and p["it_per_s"] > 0 for p in phases.values())
    assert summary["speed_baseline"] is False
    assert summary["cuda_graph_recordings"] == {"losses": 0, "network": 0}   # nothing is recorded on the CPU
    with open(os.path.join(baseline, "train_summary.json")) as f:
        base_phases = json.load(f)["phases"]
    # The network's cost: no rows before warm-up; the gated default runs it on fewer rows than the baseline.
    assert phases["warm-up"]["deformed_rows_per_step"] == 0 == base_phases["warm-up"]["deformed_rows_per_step"]
    assert 0 < base_phases["mask"]["deformed_rows_per_step"]
    assert phases["mask"]["deformed_rows_per_step"] < base_phases["mask"]["deformed_rows_per_step"]


def test_tensorboard_is_written_every_log_interval_steps(tiny_scene, tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(train, "log_scalars", lambda writer, terms, g, d, iteration, ms: logged.append(iteration))
    run(tiny_scene, str(tmp_path / "every4"), "--log_interval", "4")
    assert logged == [4, 8, 12]
    logged.clear()
    run(tiny_scene, str(tmp_path / "baseline"), "--log_interval", "4", "--speed_baseline")
    assert logged == list(range(1, 13))


def test_viewer_page_is_drawn_between_steps_and_closed(tiny_scene, tmp_path, monkeypatch, capsys):
    import view
    calls = []

    class RecordingPage:
        def __init__(self, live, cameras, host, port, max_width, **kwargs):
            calls.append(("open", port, kwargs["own_thread"], sorted(cameras)[0]))
            self.live, self.port = live, port

        def refresh(self):
            calls.append(("refresh",))

        def tick(self):
            calls.append(("tick", self.live.deform_on()))   # what a frame drawn now would use

        def close(self):
            calls.append(("close",))
    monkeypatch.setattr(view, "require_viser", lambda: None)
    monkeypatch.setattr(view, "ViewerPage", RecordingPage)
    run(tiny_scene, str(tmp_path / "watched"), "--viewer", "--viewer_port", "8123")
    assert calls[0] == ("open", 8123, False, "test 00000")   # no thread of its own: frames come from tick()
    ticks = [c for c in calls if c[0] == "tick"]
    assert len(ticks) == 12 and [c[1] for c in ticks] == [i >= 4 for i in range(1, 13)]  # warm-up 4
    assert calls.count(("refresh",)) == 1 and calls[-1] == ("close",)
    assert "localhost:8123" in capsys.readouterr().out


def test_viewer_without_viser_is_a_notice_and_training_goes_on(tiny_scene, tmp_path, monkeypatch, capsys):
    import sys
    monkeypatch.setitem(sys.modules, "viser", None)
    summary = run(tiny_scene, str(tmp_path / "unwatched"), "--viewer")
    out = capsys.readouterr().out
    assert summary["iterations"] == 12 and "pip install viser" in out and "training goes on" in out


@pytest.mark.parametrize("flags, expected", [
    (["--log_interval", "0"], "--log_interval must be at least 1"),
    (["--time_frequencies", "-3"], "--time_frequencies must be -1"),
    (["--viewer", "--viewer_port", "70000"], "--viewer_port must be in 1..65535"),
    (["--gate_low", "0.8", "--gate_high", "0.2"], "--gate_low (0.8) must be below --gate_high (0.2)"),
    (["--static_layer_weight", "-0.5"], "--static_layer_weight must be >= 0"),
    (["--densification_interval", "0"], "--densification_interval must be at least 1"),
    (["--sh_degree", "4"], "sh_degree (4) must be in 0..3"),
    (["--mask_dimension", "33"], "mask_dimension (33) in 0..32"),
])
def test_new_flags_are_checked_before_anything_is_written(tiny_scene, tmp_path, capsys, flags, expected):
    model = tmp_path / "never"
    with pytest.raises(SystemExit) as exit_info:
        run(tiny_scene, str(model), *flags)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and expected in err and err.count("\n") == 1
    assert not model.exists()


def test_profile_training_labels_each_stage_per_phase_and_leaves_train_as_it_was(tiny_scene, tmp_path):
    from benchmarks import profile_training
    out = tmp_path / "profile.txt"
    before = (train.render_deformed, train.GaussianModel, torch.Tensor.backward)
    argv = ["--out", str(out), "--steps", "1", "--offset", "1", "--",
            "-s", tiny_scene, "-m", str(tmp_path / "m"), "--eval", "--llffhold", "3", *TINY]
    assert profile_training.main(argv) == 0
    text = out.read_text()
    assert "===== phase warm-up" in text and "===== phase mask" in text
    assert "##render_deformed" in text and "##render_layers" in text and "##backward" in text
    assert (train.render_deformed, train.GaussianModel, torch.Tensor.backward) == before


@pytest.mark.parametrize("device, adam, baseline, expected", [
    ("cuda", "fused", False, True), ("cuda", "plain", False, False), ("cuda", "fused", True, False),
    ("cpu", "fused", False, False)])
def test_fused_adam_only_on_cuda_and_never_for_the_speed_baseline(device, adam, baseline, expected):
    from types import SimpleNamespace
    pipe = SimpleNamespace(adam=adam, speed_baseline=baseline)
    assert train.fused_adam(torch.device(device), pipe) is expected


@pytest.mark.parametrize("device, graphs, baseline, anomaly, expected", [
    ("cuda", "on", False, False, True), ("cuda", "off", False, False, False), ("cuda", "on", True, False, False),
    ("cuda", "on", False, True, False), ("cpu", "on", False, False, False)])
def test_cuda_graphs_only_on_cuda_and_never_for_the_speed_baseline_or_anomaly_checks(device, graphs, baseline,
                                                                                     anomaly, expected):
    pipe = SimpleNamespace(cuda_graphs=graphs, speed_baseline=baseline)
    assert train.cuda_graphs(torch.device(device), pipe, SimpleNamespace(detect_anomaly=anomaly)) is expected


@pytest.mark.cuda
def test_default_network_precision_is_tf32_in_its_recordings_and_fp32_op_by_op(tiny_scene, tmp_path, monkeypatch):
    from scene.deform_model import DeformModel
    made = []

    class Tracked(DeformModel):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)
    monkeypatch.setattr(train, "DeformModel", Tracked)
    run(tiny_scene, str(tmp_path / "graphed"), "--deform_gate", "none")
    run(tiny_scene, str(tmp_path / "plain"), "--deform_gate", "none", "--cuda_graphs", "off")
    assert [model.precision for model in made] == ["tf32", "fp32"]
    assert made[0].graphs.recordings_made > 0 and made[0].graphs.failure is None


def loss_case(device, seed):
    """Render outputs (with gradients), two layers and a camera with mask and depth prior, random."""
    g = torch.Generator(device=device).manual_seed(seed)
    h, w = 20, 28

    def rand(*shape, grad=True):
        return torch.rand(*shape, generator=g, device=device).requires_grad_(grad)
    render_pkg = {"render": rand(3, h, w), "alpha": rand(1, h, w), "depth": rand(1, h, w) + 0.5,
                  "hand_map": rand(3, h, w)}
    layers = {"hands": {"render": rand(3, h, w), "alpha": rand(1, h, w)}, "static": {"render": rand(3, h, w),
                                                                                     "alpha": rand(1, h, w)}}
    camera = SimpleNamespace(original_image=rand(3, h, w, grad=False), mask=(rand(1, h, w, grad=False) > 0.6).float(),
                             depth_prior=rand(1, h, w, grad=False) + 0.1, depth_kind="disparity")
    return render_pkg, layers, camera


@pytest.mark.cuda
def test_step_losses_replayed_as_cuda_graphs_equal_the_losses_run_op_by_op():
    from utils.cuda_graphs import GraphedCalls
    from utils.schedule import Phase
    phase = Phase(name="mask", deform=True, color_weight=1.0, depth_weight=0.05, mask_weight=0.4,
                  train_mask_feature=True, train_deform=True, time_noise=True)
    opt = SimpleNamespace(lambda_dssim=0.2, depth_loss="minmax", hands_layer_weight=0.5, static_layer_weight=0.5)
    graphs = GraphedCalls("losses")
    for seed in range(3):   # new inputs each time: the replay must not answer with the first step's values
        results = []
        for use in (graphs, None):
            render_pkg, layers, camera = loss_case("cuda", seed)
            terms = train.step_losses(render_pkg, layers, camera, phase, opt, "disparity", use)
            terms["total"].backward()
            inputs = [render_pkg["render"], render_pkg["alpha"], render_pkg["depth"], render_pkg["hand_map"],
                      layers["hands"]["render"], layers["hands"]["alpha"], layers["static"]["render"]]
            results.append(({k: v.detach().clone() for k, v in terms.items()},
                            [None if x.grad is None else x.grad.clone() for x in inputs]))
        (graphed_terms, graphed_grads), (eager_terms, eager_grads) = results
        assert set(graphed_terms) == set(eager_terms) >= {"color", "depth", "mask", "hands_alpha", "hands_color",
                                                          "static_color", "total"}
        for name in eager_terms:
            torch.testing.assert_close(graphed_terms[name], eager_terms[name], rtol=1e-6, atol=1e-7)
        for a, b in zip(graphed_grads, eager_grads):
            assert (a is None) == (b is None) or float(b.abs().max()) == 0.0
            if b is not None and a is not None:
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9)
    assert graphs.recordings_made == 1 and graphs.failure is None


@pytest.mark.cuda
def test_training_with_cuda_graphs_gives_the_model_trained_op_by_op(tiny_scene, tmp_path, monkeypatch):
    from utils import cuda_graphs
    made = []

    class Recorder(cuda_graphs.GraphedCalls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)
    monkeypatch.setattr(train, "GraphedCalls", Recorder)
    monkeypatch.setattr("scene.deform_model.GraphedCalls", Recorder)
    graphed, plain = [], []
    runs = [graphed]
    monkeypatch.setattr(train, "log_scalars", lambda writer, values, g, d, iteration, ms:
                        runs[-1].append(values["total"]))
    # Every Gaussian deforms (no gate), so the network learns from the first deformed step on.
    # fp32 in both: the default (auto) would put TF32 in the recordings and not in the op-by-op run.
    flags = ["--deform_gate", "none", "--log_interval", "1", "--deform_precision", "fp32", *EXACT]
    run(tiny_scene, str(tmp_path / "graphed"), *flags)
    assert {c.name for c in made} == {"losses", "deformation network"}
    assert all(c.recordings_made > 0 and c.failure is None for c in made)
    with open(os.path.join(str(tmp_path / "graphed"), "train_summary.json")) as f:
        counted = json.load(f)["cuda_graph_recordings"]
    by_name = {c.name: c.recordings_made for c in made}
    assert counted == {"losses": by_name["losses"], "network": by_name["deformation network"]}
    runs.append(plain)
    run(tiny_scene, str(tmp_path / "plain"), *flags, "--cuda_graphs", "off")
    assert len(graphed) == len(plain) == 12
    # Step for step the same losses: only rounding (padded network rows) tells them apart.
    for a, b in zip(graphed, plain):
        assert abs(a - b) <= 1e-3 * abs(b), (graphed, plain)
