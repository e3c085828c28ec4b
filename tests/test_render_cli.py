"""render.py end to end on a tiny model saved in the Inria layout, and its bad-input errors."""
import json
import os
import shutil

import numpy as np
import pytest
import torch

render_cli = pytest.importorskip("render")
from arguments import ModelParams, OptimizationParams, PipelineParams, save_config  # noqa: E402
from utils.image_io import read_image, read_rgb  # noqa: E402

ITERATION = 7
FRAMES = 4
FOLDERS = ("renders", "gt", "depth", "hands_mask", "hands_mask_binary", "static", "hands", "hands_alpha",
           "hands_segment", "fix", "fix_mask", "strip", "gt_masks")


def model_args(scene_dir, model_dir, warm_up, mask_dimension=3, time_frequencies=-1):
    from argparse import ArgumentParser
    parser = ArgumentParser()
    ModelParams(parser), OptimizationParams(parser), PipelineParams(parser)
    return parser.parse_args(["-s", str(scene_dir), "-m", str(model_dir), "--eval", "--llffhold", "3",
                              "--sh_degree", "1", "--deform_depth", "2", "--deform_width", "16",
                              "--data_device", "cpu", "--rasterizer", "torch", "--warm_up", str(warm_up),
                              "--mask_dimension", str(mask_dimension), "--time_frequencies", str(time_frequencies)])


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory):
    from scene.synthetic import generate
    root = tmp_path_factory.mktemp("tiny_scene")
    generate(str(root), frames=FRAMES, width=32, height=24, supersample=1, num_points=300)
    return root


def build_model(scene_dir, model_dir, warm_up=0, mask_dimension=3, time_frequencies=-1):
    """A few hundred Gaussians from the scene's points, those on one side (x below the median) marked
    as hands, and a tiny deformation network, saved at ITERATION as train.py would."""
    from scene import Scene
    from scene.deform_model import DeformModel
    from scene.gaussian_model import GaussianModel

    args = model_args(scene_dir, model_dir, warm_up, mask_dimension, time_frequencies)
    save_config(args, str(model_dir))
    gaussians = GaussianModel(1, mask_dimension, device="cpu")
    dataset = type("Dataset", (), {})()
    for key, value in vars(args).items():
        setattr(dataset, key, value)
    scene = Scene(dataset, gaussians)
    n = gaussians.get_xyz.shape[0]
    with torch.no_grad():
        gaussians.tensors["opacity"].fill_(2.0)   # opaque enough to see something at 32x24
        hands = gaussians.get_xyz[:, 0] < gaussians.get_xyz[:, 0].median()
        if mask_dimension:
            gaussians.tensors["mask"][hands] = 1.0
    scene.save(ITERATION)
    # random heads, so the deformation visibly moves things (a zero init would be the identity)
    DeformModel(is_blender=False, is_6dof=False, depth=2, width=16, device="cpu", init="pytorch",
                time_frequencies=time_frequencies).save_weights(str(model_dir), ITERATION)
    return scene, int(hands.sum())


@pytest.fixture(scope="module")
def rendered(tiny_scene, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("model")
    scene, num_hands = build_model(tiny_scene, model_dir, warm_up=100)   # saved before warm-up: undeformed
    assert render_cli.main(["-m", str(model_dir), "--quiet"]) == 0
    return model_dir, scene, num_hands


def names_in(folder):
    return sorted(os.path.splitext(f)[0] for f in os.listdir(folder) if f.endswith(".png"))


def test_every_folder_holds_one_image_per_camera(rendered):
    model_dir, scene, _ = rendered
    for split, cameras in (("train", scene.getTrainCameras()), ("test", scene.getTestCameras())):
        out = model_dir / split / f"ours_{ITERATION}"
        expected = sorted(c.image_name for c in cameras)
        assert expected, split
        for folder in FOLDERS:
            assert names_in(out / folder) == expected, (split, folder)
        assert any((out / f"renders{ext}").is_file() for ext in (".mp4", ".gif"))


def test_ground_truth_matches_source_images(rendered, tiny_scene):
    model_dir, scene, _ = rendered
    for camera in scene.getTestCameras():
        written = read_rgb(str(model_dir / "test" / f"ours_{ITERATION}" / "gt" / f"{camera.image_name}.png"))
        source = read_rgb(str(tiny_scene / "images" / f"{camera.image_name}.png"))
        assert np.abs(written - source).max() <= 1 / 255 + 1e-6


def test_decomposition_outputs_are_consistent(rendered):
    model_dir, scene, num_hands = rendered
    out = model_dir / "train" / f"ours_{ITERATION}"
    assert 0 < num_hands
    segment_pixels = 0
    for name in names_in(out / "renders"):
        image = read_rgb(str(out / "renders" / f"{name}.png"))
        hands_alpha = read_image(str(out / "hands_alpha" / f"{name}.png"))[..., 0]
        segment = read_rgb(str(out / "hands_segment" / f"{name}.png"))
        static = read_rgb(str(out / "static" / f"{name}.png"))
        hands = read_rgb(str(out / "hands" / f"{name}.png"))
        inside = segment.sum(axis=2) > 0
        # the segment is the render where kept, black background elsewhere
        assert np.allclose(segment[inside], image[inside], atol=1 / 255 + 1e-6)
        assert not inside[hands_alpha < 0.1].any()   # the hand pixels are the hands layer's; cleaning only fills small holes
        segment_pixels += inside.sum()
        assert not np.allclose(static, image) and hands.max() > 0
    assert segment_pixels > 0


def test_strip_is_gt_render_static_hands_side_by_side(rendered):
    model_dir, scene, _ = rendered
    out = model_dir / "test" / f"ours_{ITERATION}"
    assert (out / "strip.mp4").is_file() or (out / "strip.gif").is_file()
    gap = render_cli.STRIP_GAP
    for name in names_in(out / "renders"):
        strip = read_rgb(str(out / "strip" / f"{name}.png"))
        panels = [read_rgb(str(out / folder / f"{name}.png")) for folder in ("gt", "renders", "static", "hands")]
        w = panels[0].shape[1]
        assert strip.shape == (panels[0].shape[0], 4 * w + 3 * gap, 3)
        for index, panel in enumerate(panels):
            left = index * (w + gap)
            assert np.array_equal(strip[:, left:left + w], panel), (name, index)
            if index:
                assert (strip[:, left - gap:left] == 1.0).all()    # white gap before each panel


def test_hands_alpha_is_the_opacity_of_the_hands_layer(rendered):
    model_dir, _, _ = rendered
    out = model_dir / "train" / f"ours_{ITERATION}"
    for name in names_in(out / "renders"):
        alpha = read_image(str(out / "hands_alpha" / f"{name}.png"))[..., 0]
        hands = read_rgb(str(out / "hands" / f"{name}.png"))
        assert alpha.max() > 0.5
        assert hands[alpha == 0].max() == 0.0      # nothing of the hands layer where it has no opacity
        binary = read_image(str(out / "hands_mask_binary" / f"{name}.png"))[..., 0]
        assert set(np.unique(binary)) <= {0.0, 1.0}


def test_hand_pixels_follow_the_hands_layer_by_default_and_the_hand_map_under_the_paper_rule(rendered, tmp_path):
    """hands_mask_binary/ is the cleaned hands-layer alpha by default (--hand_pixels layer) and the
    cleaned hand map with --hand_pixels map; a model whose config asks for map gets map."""
    from scene.decomposition import segment_hand_map

    def binaries_against(model, source_folder):
        out = model / "train" / f"ours_{ITERATION}"
        for name in names_in(out / "renders"):
            source = torch.from_numpy(read_image(str(out / source_folder / f"{name}.png"))[..., 0])[None]
            binary = read_image(str(out / "hands_mask_binary" / f"{name}.png"))[..., 0] > 0.5
            assert np.array_equal(binary, segment_hand_map(source, 5)[0].numpy()), (source_folder, name)

    model_dir, _, _ = rendered
    binaries_against(model_dir, "hands_alpha")
    paper = tmp_path / "paper"
    shutil.copytree(model_dir, paper)
    config = json.loads((paper / "cfg_args.json").read_text())
    (paper / "cfg_args.json").write_text(json.dumps({**config, "hand_pixels": "map"}))
    assert render_cli.main(["-m", str(paper), "--skip_test", "--quiet", "--no_video"]) == 0
    binaries_against(paper, "hands_mask")
    assert render_cli.main(["-m", str(paper), "--skip_test", "--quiet", "--no_video", "--hand_pixels", "layer"]) == 0
    binaries_against(paper, "hands_alpha")


def test_static_gaussians_never_move_with_the_hand_gate(rendered, tiny_scene, tmp_path):
    """The same Gaussians rendered deformed (warm-up passed, random network) and undeformed: with
    --deform_gate hand (the default) the static layer is identical, the hands layer moves. (The
    layers as drawn: --static_fill would paint the static layer where the hands are.)"""
    raw = ["--skip_test", "--quiet", "--no_video", "--static_fill", "off"]
    shutil.copytree(rendered[0], tmp_path / "still")
    assert render_cli.main(["-m", str(tmp_path / "still"), *raw]) == 0
    undeformed = tmp_path / "still" / "train" / f"ours_{ITERATION}"
    build_model(tiny_scene, tmp_path / "m", warm_up=0)
    assert render_cli.main(["-m", str(tmp_path / "m"), *raw]) == 0
    deformed = tmp_path / "m" / "train" / f"ours_{ITERATION}"
    hands_moved = False
    for name in names_in(deformed / "renders"):
        assert np.array_equal(read_rgb(str(deformed / "static" / f"{name}.png")),
                              read_rgb(str(undeformed / "static" / f"{name}.png"))), name
        hands_moved |= not np.array_equal(read_rgb(str(deformed / "hands" / f"{name}.png")),
                                          read_rgb(str(undeformed / "hands" / f"{name}.png")))
    assert hands_moved


def test_fixed_view_undeformed_is_the_middle_training_render(rendered):
    model_dir, scene, _ = rendered
    middle = scene.getTrainCameras()[len(scene.getTrainCameras()) // 2].image_name
    middle_render = read_rgb(str(model_dir / "train" / f"ours_{ITERATION}" / "renders" / f"{middle}.png"))
    for split in ("train", "test"):
        out = model_dir / split / f"ours_{ITERATION}"
        for name in names_in(out / "fix"):
            assert np.array_equal(read_rgb(str(out / "fix" / f"{name}.png")), middle_render)


def test_speed_record(rendered):
    model_dir, scene, num_hands = rendered
    speed = json.loads((model_dir / "test" / f"ours_{ITERATION}" / "fps.json").read_text())
    assert speed["fps"] > 0 and speed["frames_timed"] == 100 and speed["warmup_frames"] == 3
    assert speed["views"] == len(scene.getTestCameras())   # fewer views than renders: repeated
    assert speed["num_gaussians"] == scene.gaussians.get_xyz.shape[0]
    assert speed["num_hand_gaussians"] == num_hands and speed["includes_deformation"] is False


def test_deformed_model_without_hand_features(tiny_scene, tmp_path, capsys):
    """warm-up passed: the fixed view moves over time; mask_dimension 0: everything is static."""
    build_model(tiny_scene, tmp_path / "m", warm_up=0, mask_dimension=0)
    assert render_cli.main(["-m", str(tmp_path / "m"), "--skip_test", "--quiet", "--no_video", "--fix_view", "0"]) == 0
    assert "mask_dimension 0" in capsys.readouterr().out
    out = tmp_path / "m" / "train" / f"ours_{ITERATION}"
    frames = [read_rgb(str(out / "fix" / f"{n}.png")) for n in names_in(out / "fix")]
    assert not all(np.array_equal(frames[0], f) for f in frames[1:])   # the (random) deformation moves things
    assert not (tmp_path / "m" / "test").exists()
    assert json.loads((out / "fps.json").read_text())["includes_deformation"] is True
    for name in names_in(out / "renders"):
        assert np.array_equal(read_rgb(str(out / "static" / f"{name}.png")), read_rgb(str(out / "renders" / f"{name}.png")))
        assert read_rgb(str(out / "hands" / f"{name}.png")).max() == 0.0        # black background only
        assert read_image(str(out / "hands_mask" / f"{name}.png")).max() == 0.0


@pytest.fixture
def two_core_machine(monkeypatch):
    """os.cpu_count() == 2 and no OMP_NUM_THREADS; torch's thread count restored afterwards."""
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_on_a_small_cpu_machine_render_uses_one_thread(tiny_scene, tmp_path, two_core_machine):
    """As train.py: two OpenMP threads on a shared 2-core machine made rendering ~50x slower
    (0.6 vs 27 FPS on the demo model while a training ran beside it)."""
    build_model(tiny_scene, tmp_path / "m")
    assert render_cli.main(["-m", str(tmp_path / "m"), "--skip_train", "--quiet", "--no_video"]) == 0
    assert torch.get_num_threads() == 1


def test_times_outside_the_training_frames_follow_the_time_policy(tiny_scene, tmp_path):
    """4 frames, llffhold 3: training frames 1 and 2 (t = 1/3, 2/3), test frames 0 and 3 (t = 0, 1).
    fix/ renders one training camera at each frame time of its split: with the clamp the test
    split's t = 0 and t = 1 look like the training split's t = 1/3 and t = 2/3; extrapolate and the
    default (linear) render them otherwise, and the same inside the range."""
    build_model(tiny_scene, tmp_path / "m", warm_up=0, mask_dimension=0)   # random deformation, all move

    def fix_frames(policy):
        argv = ["-m", str(tmp_path / "m"), "--quiet", "--no_video", "--fix_view", "0"]
        assert render_cli.main(argv + ([] if policy is None else ["--time_outside", policy])) == 0
        frames = {}
        for split in ("train", "test"):
            out = tmp_path / "m" / split / f"ours_{ITERATION}" / "fix"
            frames[split] = [read_rgb(str(out / f"{n}.png")) for n in names_in(out)]
        return frames

    held = fix_frames("clamp")
    assert len(held["train"]) == len(held["test"]) == 2
    assert not np.array_equal(held["train"][0], held["train"][1])          # the deformation moves things
    assert np.array_equal(held["test"][0], held["train"][0]) and np.array_equal(held["test"][1], held["train"][1])
    free = fix_frames("extrapolate")
    assert np.array_equal(free["train"][0], held["train"][0])              # inside the range: unchanged
    assert not np.array_equal(free["test"][0], held["test"][0])            # t = 0 itself
    linear = fix_frames(None)               # the default: t = 0 is one spacing before 1/3, d(1/3) + (d(1/3) - d(2/3))
    assert np.array_equal(linear["train"][1], held["train"][1])            # inside the range: unchanged
    assert not np.array_equal(linear["test"][0], held["test"][0])
    assert not np.array_equal(linear["test"][0], free["test"][0])


def test_a_model_with_its_own_time_encoding_renders_from_its_saved_config(tiny_scene, tmp_path):
    build_model(tiny_scene, tmp_path / "tf", warm_up=0, time_frequencies=3)   # weights fit 3 frequencies only
    assert render_cli.main(["-m", str(tmp_path / "tf"), "--skip_test", "--quiet", "--no_video"]) == 0
    assert names_in(tmp_path / "tf" / "train" / f"ours_{ITERATION}" / "renders")


def test_fixed_sizes_come_from_the_saved_config_and_an_older_folder_renders_with_sizes_that_move(tiny_scene, tmp_path):
    """A run's --deform_scale is saved in cfg_args.json and render.py follows it; a folder written
    before the flag existed (no such key) was trained with sizes that move, and renders so."""
    build_model(tiny_scene, tmp_path / "m", warm_up=0, mask_dimension=0)   # random heads, every Gaussian moves
    config_path = tmp_path / "m" / "cfg_args.json"
    config = json.loads(config_path.read_text())

    def renders(deform_scale):
        saved = {k: v for k, v in config.items() if k != "deform_scale"}
        if deform_scale is not None:
            saved["deform_scale"] = deform_scale
        config_path.write_text(json.dumps(saved))
        assert render_cli.main(["-m", str(tmp_path / "m"), "--skip_test", "--quiet", "--no_video"]) == 0
        out = tmp_path / "m" / "train" / f"ours_{ITERATION}" / "renders"
        return [read_rgb(str(out / f"{n}.png")) for n in names_in(out)]

    moving, fixed, older = renders("on"), renders("off"), renders(None)
    assert any(not np.array_equal(a, b) for a, b in zip(moving, fixed))
    assert all(np.array_equal(a, b) for a, b in zip(moving, older))


# ---------------------------------------------------------------- bad inputs

def one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("Error:")
    return err


def test_model_folder_without_checkpoint(tmp_path, tiny_scene, capsys):
    model_dir = tmp_path / "untrained"
    save_config(model_args(tiny_scene, model_dir, 0), str(model_dir))
    assert render_cli.main(["-m", str(model_dir)]) == 2
    assert str(model_dir / "point_cloud") in one_line_error(capsys)
    assert render_cli.main(["-m", str(tmp_path / "missing")]) == 2
    assert "missing" in one_line_error(capsys)


@pytest.mark.parametrize("flag, value", [("--fps_renders", "0"), ("--fps_warmup", "-1"), ("--video_fps", "0")])
def test_speed_and_video_flags_out_of_range_are_refused(rendered, capsys, flag, value):
    """--fps_renders 0 used to report an FPS over zero renders, --video_fps 0 a ZeroDivisionError."""
    with pytest.raises(SystemExit) as exit_info:
        render_cli.main(["-m", str(rendered[0]), "--quiet", flag, value])
    assert exit_info.value.code == 2 and f"argument {flag}: must be" in capsys.readouterr().err


def test_edited_config_is_a_one_line_error(rendered, tmp_path, capsys):
    model_dir = tmp_path / "edited"
    shutil.copytree(rendered[0], model_dir, ignore=shutil.ignore_patterns("train", "test"))
    config = json.loads((model_dir / "cfg_args.json").read_text())
    (model_dir / "cfg_args.json").write_text(json.dumps({**config, "time_outside": "hold"}))
    assert render_cli.main(["-m", str(model_dir), "--quiet"]) == 2
    err = one_line_error(capsys)
    assert "cfg_args.json" in err and "time_outside" in err and "'hold'" in err
    (model_dir / "cfg_args.json").write_text("{not json")
    assert render_cli.main(["-m", str(model_dir), "--quiet"]) == 2
    assert "cfg_args.json" in one_line_error(capsys)


def test_mismatched_iteration(rendered, tmp_path, capsys):
    model_dir = tmp_path / "copy"
    shutil.copytree(rendered[0], model_dir, ignore=shutil.ignore_patterns("train", "test"))
    assert render_cli.main(["-m", str(model_dir), "--iteration", "99"]) == 2
    err = one_line_error(capsys)
    assert "99" in err and str(ITERATION) in err
    # Gaussians of an iteration whose deformation weights are missing
    shutil.copytree(model_dir / "point_cloud" / f"iteration_{ITERATION}", model_dir / "point_cloud" / "iteration_9")
    assert render_cli.main(["-m", str(model_dir)]) == 2
    assert "iteration_9" in one_line_error(capsys)


def test_fix_view_out_of_range(rendered, tmp_path, capsys):
    model_dir = tmp_path / "copy"
    shutil.copytree(rendered[0], model_dir, ignore=shutil.ignore_patterns("train", "test"))
    count = len(rendered[1].getTrainCameras())
    assert render_cli.main(["-m", str(model_dir), "--fix_view", str(count)]) == 2
    err = one_line_error(capsys)
    assert f"--fix_view {count}" in err and f"0..{count - 1}" in err
    assert not (model_dir / "train").exists()


def test_metrics_on_the_rendered_model_include_decomposition_scores(rendered, tmp_path, monkeypatch):
    import metrics
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))   # no backbone weights: LPIPS null, offline
    model_dir = rendered[0]
    assert metrics.main(["-m", str(model_dir)]) == 0
    scores = json.loads((model_dir / "results.json").read_text())[f"ours_{ITERATION}"]
    assert scores["LPIPS"] is None and 0.0 < scores["SSIM"] < 1.0 and scores["PSNR"] > 0
    assert 0.0 <= scores["mask_IoU"] <= 1.0 and scores["static_PSNR"] > 0
    per_view = json.loads((model_dir / "per_view.json").read_text())[f"ours_{ITERATION}"]
    assert sorted(per_view["PSNR"]) == sorted(c.image_name + ".png" for c in rendered[1].getTestCameras())


def test_nothing_to_render_is_an_error(rendered, capsys):
    model_dir = rendered[0]
    assert render_cli.main(["-m", str(model_dir), "--skip_train", "--skip_test", "--quiet"]) == 2
    assert "Nothing to render" in one_line_error(capsys)


def test_a_full_disk_is_one_line_for_render_and_metrics(rendered, tmp_path, capsys, monkeypatch):
    import errno

    import metrics

    def full_disk(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    model_dir = rendered[0]
    monkeypatch.setattr(render_cli, "write_image", full_disk)
    assert render_cli.main(["-m", str(model_dir), "--skip_train", "--quiet", "--no_video"]) == 2
    assert "No space left on device" in one_line_error(capsys)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(metrics, "write_json", full_disk)
    assert metrics.main(["-m", str(model_dir)]) == 2
    assert "No space left on device" in capsys.readouterr().err.strip().splitlines()[-1]


def test_the_gate_rule_draws_the_layers_by_opacity_share(rendered, tmp_path, capsys):
    """Under --hand_rule gate each layer weighs every opacity by the gate (hands) or 1 - gate
    (static). This model's hand features are 0 or 1, so its gates are too: the layers are then
    exactly the threshold rule's Gaussian sets, and the images must agree."""
    model_dir, _, _ = rendered
    gated = tmp_path / "gated"
    shutil.copytree(model_dir, gated)
    assert render_cli.main(["-m", str(gated), "--skip_test", "--quiet", "--no_video", "--hand_rule", "gate"]) == 0
    assert "needs a model trained with --deform_gate hand" not in capsys.readouterr().out   # the gate rule ran
    ours, theirs = gated / "train" / f"ours_{ITERATION}", model_dir / "train" / f"ours_{ITERATION}"
    for name in names_in(ours / "renders"):
        for folder in ("static", "hands", "hands_alpha"):
            a, b = read_image(str(ours / folder / f"{name}.png")), read_image(str(theirs / folder / f"{name}.png"))
            assert np.abs(a - b).max() <= 1 / 255, (folder, name)


def test_static_fill_off_writes_the_raw_static_layer_and_on_fills_it(rendered, tmp_path, capsys):
    """--static_fill on (the default, as `rendered` ran) gives never-shown static Gaussians their
    neighbours' colour and paints the holes the hands left; off writes the layer as drawn, whose
    holes are the background (black here)."""
    model_dir, scene, num_hands = rendered
    raw = tmp_path / "raw"
    shutil.copytree(model_dir, raw)
    config = json.loads((raw / "cfg_args.json").read_text())
    (raw / "cfg_args.json").write_text(json.dumps({**config, "static_fill": "off"}))   # as --recipe paper saves
    assert render_cli.main(["-m", str(raw), "--skip_train", "--quiet", "--no_video"]) == 0
    assert "Static layer:" not in capsys.readouterr().out
    filled = tmp_path / "filled"
    shutil.copytree(raw, filled, ignore=shutil.ignore_patterns("test", "train"))
    assert render_cli.main(["-m", str(filled), "--skip_train", "--quiet", "--no_video", "--static_fill", "on"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("Static layer:"))
    static_count = int(line.split(" of ")[1].split()[0])
    assert static_count == scene.gaussians.get_xyz.shape[0] - num_hands
    ours, theirs = filled / "test" / f"ours_{ITERATION}", raw / "test" / f"ours_{ITERATION}"
    changed = 0
    for name in names_in(ours / "static"):
        on, off = read_rgb(str(ours / "static" / f"{name}.png")), read_rgb(str(theirs / "static" / f"{name}.png"))
        hands_alpha = read_image(str(theirs / "hands_alpha" / f"{name}.png"))[..., 0]
        hole = (hands_alpha > 0.5) & (off.sum(axis=2) < 0.05)   # the hands covered it, the raw layer is empty
        changed += hole.sum()
        assert (on[hole].sum(axis=1) > 0.05).all()   # every hole is painted
    assert changed > 0
