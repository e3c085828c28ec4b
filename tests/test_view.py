"""The web viewer: camera conversion, the frame of each layer, the command line, and the page in a
real headless browser (Chromium; skipped with a message where none is installed)."""
import os
import sys
import time
from argparse import Namespace

import numpy as np
import pytest
import torch

import train
import view
from gaussian_renderer import render

MODEL_FLAGS = ["--iterations", "300", "--warm_up", "30", "--mask_start", "200", "--mask_stop", "300",
               "--stop_MLP", "300", "--densify_until_iter", "150", "--deform_depth", "2", "--deform_width", "32",
               "--rasterizer", "torch", "--data_device", "cpu", "--quiet", "--test_iterations", "300",
               "--sh_degree", "1", "--eval", "--llffhold", "3"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from scene.synthetic import generate
    root = tmp_path_factory.mktemp("viewer")
    generate(str(root / "scene"), frames=6, width=64, height=48, seed=3)
    train.main(["-s", str(root / "scene"), "-m", str(root / "model"), *MODEL_FLAGS])
    return str(root / "model")


@pytest.fixture(scope="module")
def loaded(trained):
    from render import resolve_args
    parser, model_params, pipeline_params = view.build_parser()
    args = resolve_args(["-m", trained], parser)
    return view.load_live_model(args, model_params, pipeline_params, torch.device("cpu"))


# ---- cameras ---------------------------------------------------------------------------------
def test_quaternion_round_trip_over_many_rotations():
    rng = np.random.default_rng(0)
    for q in list(rng.normal(size=(200, 4))) + [np.array([0.0, 1, 0, 0]), np.array([0.0, 0, 0, 1])]:
        q = q / np.linalg.norm(q) * np.sign(q[0] or 1.0)
        r = view.wxyz_to_rotation(q)
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(r), 1.0)
        assert np.allclose(view.rotation_to_wxyz(r), q, atol=1e-9)


def test_a_viewer_camera_built_from_a_scene_cameras_pose_has_its_matrices(loaded):
    _, scene, _ = loaded
    for camera in scene.getTrainCameras()[:3]:
        c2w, fov_y = view.camera_pose(camera)
        built = view.ViewerCamera.from_pose(c2w, fov_y, camera.image_width, camera.image_height)
        assert abs(built.FoVx - camera.FoVx) < 1e-6
        assert torch.allclose(built.world_view_transform, camera.world_view_transform, atol=1e-5)
        assert torch.allclose(built.full_proj_transform, camera.full_proj_transform, atol=1e-4)
        assert torch.allclose(built.camera_center, camera.camera_center, atol=1e-5)


def test_render_size_follows_the_canvas_aspect():
    assert view.render_size(16 / 9, 960) == (960, 540)
    assert view.render_size(0.5, 100) == (100, 200)


# ---- frames ----------------------------------------------------------------------------------
def frame_at(live, camera, t, layer="full", **settings):
    c2w, fov_y = view.camera_pose(camera)
    built = view.ViewerCamera.from_pose(c2w, fov_y, camera.image_width, camera.image_height)
    return live.frame(built, t, view.LayerSettings(layer, **settings)).astype(np.float64)


def test_the_full_layer_is_render_py_s_image_of_that_camera_at_its_time(loaded):
    live, scene, _ = loaded
    camera = scene.getTestCameras()[0]
    with torch.no_grad():
        offsets = live.deform.offsets(live.gaussians.get_xyz, camera.fid, gate=live.gate())
        expected = render(camera, live.gaussians, live.pipe, live.background, *offsets)["render"]
    expected = (expected.clamp(0, 1) * 255).permute(1, 2, 0).numpy()
    assert np.abs(frame_at(live, camera, float(camera.fid)) - expected).max() <= 1.0


def test_layers_split_the_scene_and_the_rule_is_applied_live(loaded):
    live, scene, _ = loaded
    camera = scene.getTrainCameras()[1]
    t = float(camera.fid)
    full, static, hands = (frame_at(live, camera, t, layer) for layer in ("full", "static", "hands"))
    assert np.abs(static - hands).mean() > 5.0
    # Threshold above every hand score: no hands, so the static layer is the full render.
    everything_static = frame_at(live, camera, t, "static", hand_threshold=2.0)
    assert np.abs(everything_static - full).max() <= 1.0
    assert frame_at(live, camera, t, "hands", hand_threshold=2.0).max() == 0.0   # black background
    depth, hand_map = frame_at(live, camera, t, "depth"), frame_at(live, camera, t, "hand map")
    assert np.allclose(depth[..., 0], depth[..., 1]) and np.allclose(hand_map[..., 0], hand_map[..., 2])
    assert depth.std() > 5.0 and np.abs(depth - hand_map).mean() > 5.0
    with pytest.raises(ValueError, match="layer"):
        frame_at(live, camera, t, "normals")


def test_the_gate_rule_weighs_every_opacity_by_the_motion_gate(loaded):
    live, scene, _ = loaded
    camera = scene.getTestCameras()[0]
    gate = live.gate()
    with torch.no_grad():
        offsets = live.deform.offsets(live.gaussians.get_xyz, camera.fid, gate=gate)
        for layer, weight in (("static", 1.0 - gate), ("hands", gate)):
            expected = render(camera, live.gaussians, live.pipe, live.background, *offsets, opacity_weight=weight)
            expected = (expected["render"].clamp(0, 1) * 255).permute(1, 2, 0).numpy()
            got = frame_at(live, camera, float(camera.fid), layer, hand_rule="gate")
            assert np.abs(got - expected).max() <= 1.0, layer
    # It is not the threshold rule's split: some Gaussians share their opacity between the layers.
    assert ((gate > 0) & (gate < 1)).any()
    assert np.abs(frame_at(live, camera, float(camera.fid), "static", hand_rule="gate")
                  - frame_at(live, camera, float(camera.fid), "static")).max() > 1.0


def test_time_moves_the_hands_and_not_the_static_scene(loaded):
    live, scene, _ = loaded
    camera = scene.getTrainCameras()[1]
    early, late = frame_at(live, camera, 0.0, "full"), frame_at(live, camera, 1.0, "full")
    assert np.abs(early - late).mean() > 0.2
    # Gaussians whose hand score is at most --gate_low (0.25) never move (the motion gate).
    assert np.array_equal(frame_at(live, camera, 0.0, "static", hand_threshold=0.25),
                          frame_at(live, camera, 1.0, "static", hand_threshold=0.25))


# ---- command line ----------------------------------------------------------------------------
def test_without_viser_the_viewer_says_what_to_install(monkeypatch, capsys, trained):
    monkeypatch.setitem(sys.modules, "viser", None)   # import viser now raises ImportError
    assert view.main(["-m", trained]) == view.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install viser" in err


def test_a_missing_model_folder_is_one_line(tmp_path, capsys):
    pytest.importorskip("viser")
    assert view.main(["-m", str(tmp_path / "nothing")]) == view.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing" in err


# ---- the page in a real browser ----------------------------------------------------------------
def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def settled_screenshot(browser, page, timeout=30.0):
    """A screenshot once the page has drawn what it was asked to: the render loop idle, then two
    screenshots a second apart that agree (the browser has painted the last frame it got; on a
    loaded machine a fixed pause was sometimes too short). A page that never settles returns its
    last screenshot, for the caller's assertions to judge."""
    assert wait_for(lambda: all(not s.dirty for s in page.clients.values()))
    shot = browser.screenshot().astype(np.float64)
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(1.0)
        previous, shot = shot, browser.screenshot().astype(np.float64)
        if np.abs(shot - previous)[200:, :600].mean() < 0.5:
            break
    return shot


def test_the_page_shows_the_scene_in_a_browser_and_the_time_slider_changes_it(loaded):
    pytest.importorskip("viser")
    from headless_browser import HeadlessBrowser, find_browser
    if find_browser() is None:
        pytest.skip("no Chromium: .ci/run installs it (apt-get install chromium)")
    live, scene, _ = loaded
    port = free_port()
    page = view.ViewerPage(live, view.named_cameras(scene), "127.0.0.1", port, max_width=240)
    browser = HeadlessBrowser(width=1000, height=700)
    try:
        browser.open(f"http://127.0.0.1:{port}")
        assert wait_for(lambda: any(s.frames_drawn > 0 for s in page.clients.values())), "no frame drawn"
        first = settled_screenshot(browser, page)
        canvas = first[200:, :600]   # left of the control panel, below the notices
        # Not a blank canvas: the scene's colours (the synthetic bench is brown, its hands skin).
        assert canvas.std() > 20.0 and canvas.mean() < 235.0
        assert "Gaussians" in page.stats.content and "ms per frame" in page.stats.content
        again = settled_screenshot(browser, page)
        assert np.abs(again - first)[200:, :600].mean() < 0.5     # nothing asked: nothing changes
        drawn = sum(s.frames_drawn for s in page.clients.values())
        page.time.value = 1.0                                      # the slider, as the page sees it
        assert wait_for(lambda: sum(s.frames_drawn for s in page.clients.values()) > drawn)
        moved = settled_screenshot(browser, page)
        assert np.abs(moved - first)[200:, :600].mean() > 0.5
        page.layer.value = "depth"
        depth = settled_screenshot(browser, page)
        assert np.abs(depth - moved)[200:, :600].mean() > 5.0
        # Snapping: the browser's camera jumps to the scene camera, and the time follows it.
        name, target = next((n, c) for n, c in page.cameras.items() if n.startswith("test"))
        page.snap.value = name
        settled_screenshot(browser, page)
        client = next(iter(page.clients.values())).client
        c2w, _ = view.camera_pose(target)
        assert wait_for(lambda: np.allclose(client.camera.position, c2w[:3, 3], atol=1e-4), timeout=10)
        assert abs(page.time.value - float(target.fid)) < 1e-3
    finally:
        browser.close()
        page.close()


def test_a_page_without_browsers_draws_nothing_when_ticked(loaded):
    pytest.importorskip("viser")
    live, scene, _ = loaded

    class Untouchable(view.LiveModel):
        def frame(self, *args, **kwargs):
            raise AssertionError("no browser is connected: nothing should be drawn")
    quiet = Untouchable(live.gaussians, live.deform, live.pipe, live.background, live.is_6dof, live.deform_on, live.gate)
    page = view.ViewerPage(quiet, view.named_cameras(scene), "127.0.0.1", free_port(), max_width=64, own_thread=False)
    try:
        assert page.thread is None and not page.watched
        page.refresh()
        assert not any(page.tick() for _ in range(100))   # what train.py --viewer does after each step
    finally:
        page.close()


@pytest.mark.parametrize("flags, expected", [
    (["--port", "0"], "--port must be in 1..65535"),
    (["--max_width", "3"], "--max_width must be at least 16"),
    (["--frame_rate", "0"], "--frame_rate must be positive"),
])
def test_bad_viewer_flags_are_one_line(trained, capsys, flags, expected):
    pytest.importorskip("viser")
    assert view.main(["-m", trained, *flags]) == view.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err


def test_a_file_given_as_the_model_folder_is_named_as_such(tmp_path, capsys):
    pytest.importorskip("viser")
    path = tmp_path / "model.ply"
    path.write_text("not a folder")
    assert view.main(["-m", str(path)]) == view.EXIT_BAD_INPUT
    assert "is a file, not a folder" in capsys.readouterr().err


def test_slow_frames_are_drawn_smaller_while_the_view_changes_and_in_full_once_it_is_still(loaded, monkeypatch):
    pytest.importorskip("viser")
    from types import SimpleNamespace
    live, scene, _ = loaded
    widths = []

    class SlowModel(view.LiveModel):   # the reference rasterizer on a big model: time ~ pixels
        def frame(self, camera, time_value, settings):
            widths.append(camera.image_width)
            time.sleep(camera.image_width * camera.image_height * 1e-6)
            return np.zeros((camera.image_height, camera.image_width, 3), np.uint8)
    slow = SlowModel(live.gaussians, live.deform, live.pipe, live.background, live.is_6dof, live.deform_on, live.gate)
    page = view.ViewerPage(slow, view.named_cameras(scene), "127.0.0.1", free_port(), max_width=640, own_thread=False)
    c2w, fov = view.camera_pose(next(iter(page.cameras.values())))
    fake = SimpleNamespace(camera=SimpleNamespace(wxyz=view.rotation_to_wxyz(c2w[:3, :3]), position=c2w[:3, 3],
                                                  fov=fov, aspect=16 / 9),
                           scene=SimpleNamespace(set_background_image=lambda *a, **k: None))
    state = view.ClientState(fake)
    page.clients[0] = state
    try:
        for _ in range(6):                 # the user drags: every frame is a new view
            state.moved()
            page.tick()
        # 640x360 took ~0.23 s: the width shrinks until a frame takes about TARGET_FRAME_SECONDS
        last = widths[-1] * round(widths[-1] * 9 / 16) * 1e-6
        assert widths[0] == 640 and widths[-1] < 480 and last < 1.3 * view.TARGET_FRAME_SECONDS
        assert state.scale >= view.MIN_RENDER_SCALE
        moving = len(widths)
        time.sleep(view.REFINE_AFTER_SECONDS + 0.05)          # the view is still
        page.tick()
        assert len(widths) == moving + 1 and widths[-1] == 640 and state.refined
        page.tick()
        assert len(widths) == moving + 1                       # and only once
    finally:
        page.close()
