"""convert.py: synthetic egocentric frames without poses -> a trainable scene through pycolmap.

The scene test distorts the synthetic (pinhole) frames and masks with a known lens distortion,
so undistortion must really happen: the outputs are checked against the ground truth resampled
through the recovered pinhole camera, which does not use convert.py's own warping code.
"""
import os
import shutil
import sys

import cv2
import numpy as np
import pytest

pycolmap = pytest.importorskip("pycolmap")

import convert  # noqa: E402
from utils.video_to_scene import sfm  # noqa: E402
from scene.readers.colmap import qvec2rotmat, read_model  # noqa: E402
from utils.video_to_scene.frames import extract_video_frames, list_frames  # noqa: E402
from utils.video_to_scene.sfm import (apply_similarity, estimate_focal, feature_mask, focal_disagreement,  # noqa: E402
                       keyframe_pairs, self_calibration_cost, umeyama_alignment)  # noqa: E402

FRAMES, WIDTH, HEIGHT = 20, 320, 240
DISTORTION = np.array([-0.12, 0.02, 0.0, 0.0])  # OpenCV k1, k2, p1, p2: clear barrel distortion
THREADS = "2"


# ----------------------------------------------------------------------------- helpers

def run_convert(*argv):
    return convert.main(list(argv) + ["--num_threads", THREADS])


def pinhole_matrix(truth_dir):
    cameras, _, _ = read_model(os.path.join(truth_dir, "sparse", "0"))
    (camera,) = cameras.values()
    assert camera.model == "PINHOLE"
    fx, fy, cx, cy = camera.params
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])


def distort(image, K, nearest):
    """The pinhole ``image`` as seen through a lens with DISTORTION (same K); pixel centres at +0.5."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    pixels = np.stack([xs + 0.5, ys + 0.5], axis=-1).reshape(-1, 1, 2)
    rays = cv2.undistortPoints(pixels, K, DISTORTION).reshape(h, w, 2)  # where each distorted pixel looks
    map_x = (K[0, 0] * rays[..., 0] + K[0, 2] - 0.5).astype(np.float32)
    map_y = (K[1, 1] * rays[..., 1] + K[1, 2] - 0.5).astype(np.float32)
    return cv2.remap(image, map_x, map_y, cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def through_recovered_camera(truth_image, K, undistorted_camera, nearest):
    """Ground truth resampled into the recovered PINHOLE camera's pixels (its own intrinsics)."""
    fx, fy, cx, cy = undistorted_camera.params
    ys, xs = np.mgrid[0:undistorted_camera.height, 0:undistorted_camera.width].astype(np.float64)
    map_x = (K[0, 0] * (xs + 0.5 - cx) / fx + K[0, 2] - 0.5).astype(np.float32)
    map_y = (K[1, 1] * (ys + 0.5 - cy) / fy + K[1, 2] - 0.5).astype(np.float32)
    return cv2.remap(truth_image, map_x, map_y, cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def camera_centres(model_dir):
    """{frame stem: camera centre [3]} of a COLMAP model."""
    _, images, _ = read_model(model_dir)
    return {os.path.splitext(img.name)[0]: -qvec2rotmat(img.qvec).T @ img.tvec for img in images.values()}


def trajectory_error(truth_dir, scene):
    """(registered fraction, mean centre error / trajectory length) after a Umeyama similarity."""
    truth = camera_centres(os.path.join(truth_dir, "sparse", "0"))
    found = camera_centres(os.path.join(scene, "sparse", "0"))
    stems = sorted(found)
    target = np.array([truth[s] for s in stems])
    scale, R, t = umeyama_alignment(np.array([found[s] for s in stems]), target)
    aligned = apply_similarity(np.array([found[s] for s in stems]), scale, R, t)
    ordered = np.array([truth[s] for s in sorted(truth)])
    length = np.linalg.norm(np.diff(ordered, axis=0), axis=1).sum()
    return len(found) / len(truth), float(np.linalg.norm(aligned - target, axis=1).mean() / length)


def overlap(a, b):
    """(intersection, union) pixel counts of two boolean masks."""
    return np.array([np.logical_and(a, b).sum(), np.logical_or(a, b).sum()], dtype=np.float64)


# ----------------------------------------------------------------------------- the synthetic scene

@pytest.fixture(scope="module")
def truth_dir(tmp_path_factory):
    from scene.synthetic import generate
    out = str(tmp_path_factory.mktemp("truth") / "scene")
    generate(out, frames=FRAMES, width=WIDTH, height=HEIGHT, seed=0, supersample=1)
    return out


def make_scene(truth_dir, scene):
    """Frames, masks and depth priors of the synthetic scene through a distorting lens; no poses."""
    K = pinhole_matrix(truth_dir)
    folders = (("images", "input", False), ("masks", "input_masks", True), ("depth_gt", "input_depth", False))
    for src, dst, nearest in folders:
        os.makedirs(os.path.join(scene, dst))
        for name in sorted(os.listdir(os.path.join(truth_dir, src))):
            image = cv2.imread(os.path.join(truth_dir, src, name), cv2.IMREAD_UNCHANGED)
            cv2.imwrite(os.path.join(scene, dst, name), distort(image, K, nearest))
    return scene


@pytest.fixture(scope="module")
def converted(truth_dir, tmp_path_factory):
    scene = make_scene(truth_dir, str(tmp_path_factory.mktemp("convert") / "scene"))
    assert run_convert("-s", scene, "--resize") == 0
    return scene


def test_poses_recovered_up_to_similarity(truth_dir, converted):
    registered, error = trajectory_error(truth_dir, converted)
    print(f"registered {registered:.0%}, centre error {error:.3%} of the trajectory length")
    assert registered >= 0.9
    assert error < 0.02


def test_layout_is_what_the_readers_take(converted):
    cameras, images, points3D = read_model(os.path.join(converted, "sparse", "0"))
    assert {c.model for c in cameras.values()} == {"PINHOLE"}
    assert len(points3D) > 100
    for img in images.values():
        stem = os.path.splitext(img.name)[0]
        assert os.path.isfile(os.path.join(converted, "images", img.name))
        assert os.path.isfile(os.path.join(converted, "masks", stem + ".png"))
        assert os.path.isfile(os.path.join(converted, "depth_gt", stem + ".png"))
        for factor in (2, 4, 8):
            small = cv2.imread(os.path.join(converted, f"masks_{factor}", stem + ".png"), cv2.IMREAD_UNCHANGED)
            full = cv2.imread(os.path.join(converted, "masks", stem + ".png"), cv2.IMREAD_UNCHANGED)
            assert small.shape[1] == round(full.shape[1] / factor)
            assert set(np.unique(small)) <= set(np.unique(full))  # nearest neighbour: no blended labels
    depth = cv2.imread(os.path.join(converted, "depth_gt", list_frames(os.path.join(converted, "images"))[0]),
                       cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16  # 16-bit priors keep their precision


def test_scene_reader_takes_the_output(converted):
    from argparse import ArgumentParser
    from arguments import ModelParams
    from scene.readers import read_scene
    parser = ArgumentParser()
    params = ModelParams(parser)
    args = params.extract(parser.parse_args(["-s", converted]))
    info = read_scene(args)
    assert len(info.train_cameras) == len(os.listdir(os.path.join(converted, "images")))
    assert info.has_masks and info.has_depth
    camera = info.train_cameras[0]
    assert camera.mask.shape == camera.image.shape[:2]


def test_frames_and_masks_undistorted_alike(truth_dir, converted):
    """Outputs match the ground truth resampled through the recovered pinhole camera; the
    still-distorted input does not (so the check can tell an undistorted mask from a copied one)."""
    K = pinhole_matrix(truth_dir)
    undistorted = pycolmap.Reconstruction(os.path.join(converted, "sparse", "0"))
    (camera,) = undistorted.cameras.values()
    ours, copied = np.zeros(2), np.zeros(2)  # (intersection, union) summed over frames
    for image in undistorted.images.values():
        stem = os.path.splitext(image.name)[0]
        mask = cv2.imread(os.path.join(converted, "masks", stem + ".png"), cv2.IMREAD_GRAYSCALE) > 127
        truth_mask = cv2.imread(os.path.join(truth_dir, "masks", stem + ".png"), cv2.IMREAD_GRAYSCALE)
        expected = through_recovered_camera(truth_mask, K, camera, nearest=True) > 127
        raw = cv2.resize(cv2.imread(os.path.join(converted, "input_masks", stem + ".png"), cv2.IMREAD_GRAYSCALE),
                         (camera.width, camera.height), interpolation=cv2.INTER_NEAREST) > 127
        ours += overlap(mask, expected)
        copied += overlap(raw, expected)
    ours_iou, copied_iou = ours[0] / ours[1], copied[0] / copied[1]
    print(f"mask IoU with the truth: {ours_iou:.3f} undistorted, {copied_iou:.3f} if copied")
    assert ours_iou > 0.93
    assert 1 - ours_iou < 0.6 * (1 - copied_iou)  # a copied (still distorted) mask would fail

    for image in list(undistorted.images.values())[::5]:
        stem = os.path.splitext(image.name)[0]
        frame = cv2.imread(os.path.join(converted, "images", image.name)).astype(np.float32)
        truth_frame = cv2.imread(os.path.join(truth_dir, "images", stem + ".png")).astype(np.float32)
        expected_frame = through_recovered_camera(truth_frame, K, camera, nearest=False)
        border = 8  # resampling at the image edge differs; the interior must agree
        inner = (slice(border, -border), slice(border, -border))
        assert np.abs(frame - expected_frame)[inner].mean() < 12.0


def test_rerun_skips_finished_stages(converted, capfd):
    before = os.path.getmtime(os.path.join(converted, "sparse", "0", "images.bin"))
    assert run_convert("-s", converted, "--resize") == 0
    out = capfd.readouterr().out
    assert out.count("done already") == 6  # features, matching, mapping, undistort, priors, resize
    assert os.path.getmtime(os.path.join(converted, "sparse", "0", "images.bin")) == before


FAKE_COLMAP = """#!{python}
# Stand-in for a COLMAP binary: logs its command line; image_undistorter runs through pycolmap.
import sys
args = sys.argv[1:]
with open({log!r}, "a") as f:
    f.write(" ".join(args) + "\\n")
if args[0] != "image_undistorter":
    print("unsupported command " + args[0]); sys.exit(3)
import pycolmap
opts = dict(zip(args[1::2], args[2::2]))
pycolmap.undistort_images(opts["--output_path"], opts["--input_path"], opts["--image_path"],
                          output_type=opts["--output_type"])
"""


def fake_colmap(tmp_path):
    log = str(tmp_path / "colmap_calls.txt")
    path = tmp_path / "colmap"
    path.write_text(FAKE_COLMAP.format(python=sys.executable, log=log))
    path.chmod(0o755)
    return str(path), log


def test_colmap_executable_undistorts_an_existing_model(converted, tmp_path):
    """--skip_matching --colmap_executable: only the undistorter runs, through the binary."""
    scene = str(tmp_path / "scene")
    shutil.copytree(os.path.join(converted, "input"), os.path.join(scene, "input"))
    shutil.copytree(os.path.join(converted, "distorted", "sparse", "0"), os.path.join(scene, "distorted", "sparse", "0"))
    executable, log = fake_colmap(tmp_path)
    assert run_convert("-s", scene, "--skip_matching", "--colmap_executable", executable) == 0
    calls = open(log).read().splitlines()
    assert len(calls) == 1 and calls[0].startswith("image_undistorter ")
    assert "--output_type COLMAP" in calls[0]
    cameras, images, _ = read_model(os.path.join(scene, "sparse", "0"))
    assert {c.model for c in cameras.values()} == {"PINHOLE"}
    assert sorted(os.listdir(os.path.join(scene, "images"))) == sorted(img.name for img in images.values())


def test_colmap_executable_failure_is_one_clear_error(tmp_path, capfd):
    write_noise_frames(str(tmp_path / "input"), 3)
    executable, _ = fake_colmap(tmp_path)
    assert_fails(capfd, ["-s", str(tmp_path), "--colmap_executable", executable],
                 "feature_extractor", "failed with status 3", "unsupported command")


def test_colmap_executable_not_found(tmp_path, capfd):
    write_noise_frames(str(tmp_path / "input"), 3)
    assert_fails(capfd, ["-s", str(tmp_path), "--colmap_executable", str(tmp_path / "no-colmap")],
                 "not found", "--colmap_executable")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_registration_does_not_depend_on_luck(truth_dir, tmp_path, seed):
    scene = make_scene(truth_dir, str(tmp_path / "scene"))
    assert run_convert("-s", scene, "--seed", str(seed)) == 0
    registered, error = trajectory_error(truth_dir, scene)
    assert registered >= 0.9
    assert error < 0.02


@pytest.mark.slow
def test_unmatchable_frames_are_left_out_and_named(truth_dir, tmp_path, capfd):
    scene = make_scene(truth_dir, str(tmp_path / "scene"))
    rng = np.random.default_rng(5)
    for i in (FRAMES, FRAMES + 1):  # two frames of noise at the end of the clip
        cv2.imwrite(os.path.join(scene, "input", f"{i:05d}.png"), rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8))
        cv2.imwrite(os.path.join(scene, "input_masks", f"{i:05d}.png"), np.zeros((HEIGHT, WIDTH), np.uint8))
        cv2.imwrite(os.path.join(scene, "input_depth", f"{i:05d}.png"), np.zeros((HEIGHT, WIDTH), np.uint16))
    assert run_convert("-s", scene) == 0
    out = capfd.readouterr().out
    assert f"registered {FRAMES} of {FRAMES + 2} frames" in out
    assert f"{FRAMES:05d}.png, {FRAMES + 1:05d}.png" in out
    assert sorted(os.listdir(os.path.join(scene, "masks"))) == [f"{i:05d}.png" for i in range(FRAMES)]


# ----------------------------------------------------------------------------- bad input

def write_noise_frames(folder, count, size=(96, 72), seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        cv2.imwrite(os.path.join(folder, f"{i:05d}.png"), rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def assert_fails(capfd, argv, *phrases):
    assert run_convert(*argv) == 2
    err = capfd.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("Error: ")
    for phrase in phrases:
        assert phrase in err


def test_no_frames(tmp_path, capfd):
    os.makedirs(tmp_path / "input")
    assert_fails(capfd, ["-s", str(tmp_path)], "No frames in", "--video")


def test_missing_scene_folder(tmp_path, capfd):
    assert_fails(capfd, ["-s", str(tmp_path / "nowhere")], "does not exist", "input/")


def test_frames_not_zero_padded(tmp_path, capfd):
    write_noise_frames(str(tmp_path / "input"), 3)
    for i in (1, 2, 10):
        cv2.imwrite(str(tmp_path / "input" / f"frame_{i}.png"), np.zeros((8, 8, 3), np.uint8))
    for name in ("00000.png", "00001.png", "00002.png"):
        os.remove(tmp_path / "input" / name)
    assert_fails(capfd, ["-s", str(tmp_path)], "not zero-padded", "frame_10.png")


def test_frames_of_different_sizes(tmp_path, capfd):
    write_noise_frames(str(tmp_path / "input"), 3)
    cv2.imwrite(str(tmp_path / "input" / "00003.png"), np.zeros((10, 10, 3), np.uint8))
    assert_fails(capfd, ["-s", str(tmp_path)], "00003.png", "same size")


def test_unreadable_video(tmp_path, capfd):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"this is not a video" * 100)
    assert_fails(capfd, ["-s", str(tmp_path / "scene"), "--video", str(video)], "Cannot read video", "clip.mp4")


def test_bad_fps(tmp_path, capfd):
    video = write_video(str(tmp_path / "clip.avi"))
    assert_fails(capfd, ["-s", str(tmp_path / "scene"), "--video", video, "--fps", "-2"], "--fps -2", "positive")


def test_missing_video(tmp_path, capfd):
    assert_fails(capfd, ["-s", str(tmp_path), "--video", str(tmp_path / "absent.mp4")], "does not exist")


def test_unknown_camera_model(tmp_path, capfd):
    write_noise_frames(str(tmp_path / "input"), 3)
    assert_fails(capfd, ["-s", str(tmp_path), "--camera", "FISHEYE42"], "Unknown camera model", "OPENCV")


def test_fps_without_video(tmp_path, capfd):
    write_noise_frames(str(tmp_path / "input"), 3)
    assert_fails(capfd, ["-s", str(tmp_path), "--fps", "5"], "--fps")


def test_skip_matching_without_a_model(tmp_path, capfd):
    write_noise_frames(str(tmp_path / "input"), 3)
    assert_fails(capfd, ["-s", str(tmp_path), "--skip_matching"], "--skip_matching", "sparse")


def test_hand_mask_missing_or_of_the_wrong_size(tmp_path, capfd):
    write_noise_frames(str(tmp_path / "input"), 3)
    os.makedirs(tmp_path / "input_masks")
    cv2.imwrite(str(tmp_path / "input_masks" / "00000.png"), np.zeros((72, 96), np.uint8))
    assert_fails(capfd, ["-s", str(tmp_path)], "00001", "input_masks")
    cv2.imwrite(str(tmp_path / "input_masks" / "00000.png"), np.zeros((10, 10), np.uint8))
    assert_fails(capfd, ["-s", str(tmp_path)], "00000.png", "10x10", "96x72")


@pytest.mark.parametrize("fallback_works", [True, False])
def test_a_mapper_that_registers_too_few_frames_falls_back_to_the_other(truth_dir, tmp_path, capfd, monkeypatch,
                                                                      fallback_works):
    """The global mapper registers nothing here (as it did on a real clip); the incremental one is
    tried and its model kept. When it does no better, the first model stays and the error says so."""
    real_map = sfm.PycolmapBackend.map
    tried = []

    def map_sometimes(self, database, image_dir, out_dir, mapper):
        tried.append(mapper)
        if mapper == "global" or not fallback_works:
            return None                       # COLMAP made no model
        return real_map(self, database, image_dir, out_dir, mapper)

    monkeypatch.setattr(sfm.PycolmapBackend, "map", map_sometimes)
    scene = make_scene(truth_dir, str(tmp_path / "scene"))
    if fallback_works:
        assert run_convert("-s", scene) == 0
        out = capfd.readouterr().out
        assert f"the global mapper registered 0 of {FRAMES} frames, the incremental mapper {FRAMES}: keeping " \
               "the incremental model" in out
        assert len(os.listdir(os.path.join(scene, "images"))) == FRAMES
    else:
        assert_fails(capfd, ["-s", scene], f"registered 0 of {FRAMES} frames")
    assert tried == ["global", "incremental"]


def test_too_few_registered_frames(tmp_path, capfd):
    """Unrelated noise frames share no geometry: the mapper cannot start, and says what to try."""
    write_noise_frames(str(tmp_path / "input"), 6, seed=3)
    assert_fails(capfd, ["-s", str(tmp_path)], "registered 0 of 6 frames", "No good initial image pair",
                 "--matcher exhaustive")
    assert not os.path.isdir(tmp_path / "sparse")


# ----------------------------------------------------------------------------- helpers in isolation

def write_video(path, count=20, fps=10.0):
    """An MJPG clip whose frame brightness encodes the frame number (10 per frame)."""
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG video")
    for i in range(count):
        writer.write(np.full((48, 64, 3), 10 * i, np.uint8))
    writer.release()
    return path


def test_video_frames_extracted_in_time_order(tmp_path):
    video = write_video(str(tmp_path / "clip.avi"))
    out = str(tmp_path / "input")
    assert extract_video_frames(video, out, fps=5.0) == 10  # every second frame of a 10 fps video
    names = list_frames(out)
    assert names[0] == "00000.png" and len(names) == 10
    brightness = [cv2.imread(os.path.join(out, n)).mean() for n in names]
    assert np.allclose(brightness, [20 * k for k in range(10)], atol=4)


def test_frames_only_cuts_the_video_and_stops(tmp_path, capfd):
    video = write_video(str(tmp_path / "clip.avi"))
    scene = str(tmp_path / "scene")
    assert run_convert("-s", scene, "--video", video, "--frames_only") == 0
    assert len(list_frames(os.path.join(scene, "input"))) == 20
    assert not os.path.exists(os.path.join(scene, "distorted", "database.db"))
    capfd.readouterr()
    assert run_convert("-s", scene, "--video", video, "--frames_only") == 0
    assert "frames: done already" in capfd.readouterr().out
    assert run_convert("-s", scene, "--video", video, "--fps", "5", "--frames_only", "--force") == 0
    assert len(list_frames(os.path.join(scene, "input"))) == 10  # its own earlier frames are replaced


def test_video_refuses_to_overwrite_the_users_frames(tmp_path, capfd):
    video = write_video(str(tmp_path / "clip.avi"))
    write_noise_frames(str(tmp_path / "input"), 3)
    assert_fails(capfd, ["-s", str(tmp_path), "--video", video], "did not extract", "drop --video")
    assert len(os.listdir(tmp_path / "input")) == 3


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(30, 3))
    R, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    R *= np.sign(np.linalg.det(R))
    target = 2.5 * points @ R.T + np.array([1.0, -2.0, 0.5])
    scale, R_found, t = umeyama_alignment(points, target)
    assert scale == pytest.approx(2.5)
    assert np.allclose(R_found, R) and np.allclose(t, [1.0, -2.0, 0.5])


def test_keyframe_pairs_span_the_clip():
    names = [f"{i:05d}.png" for i in range(100)]
    pairs = keyframe_pairs(names, keyframes=5)
    assert len(pairs) == 10
    assert ("00000.png", "00099.png") in pairs


def skew(v):
    return np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])


def test_focal_estimated_from_fundamental_matrices():
    """F = K^-T [t]x R K^-1 of random small head motions; the search must find K's focal."""
    rng = np.random.default_rng(1)
    focal, width, height = 250.0, 320, 240
    K_inv = np.linalg.inv(np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]]))
    fundamentals = []
    for pair in range(30):
        R = cv2.Rodrigues(rng.normal(scale=0.05, size=3))[0]
        t = rng.normal(size=3)
        F = K_inv.T @ skew(t / np.linalg.norm(t)) @ R @ K_inv
        noisy = pair < 5  # a few poorly estimated pairs: the median must not mind them
        fundamentals.append(F / np.linalg.norm(F) + (rng.normal(scale=1e-3, size=(3, 3)) if noisy else 0))
    assert estimate_focal(np.array(fundamentals), width, height) == pytest.approx(focal, rel=0.02)
    assert self_calibration_cost(np.array(fundamentals), focal, width / 2, height / 2) < \
        self_calibration_cost(np.array(fundamentals), 1.2 * width, width / 2, height / 2)


def test_focal_disagreement_flags_unequal_focal_lengths():
    square = pycolmap.Camera.create_from_model_name(1, "PINHOLE", 300.0, 320, 240)
    skewed = pycolmap.Camera.create_from_model_name(2, "PINHOLE", 300.0, 320, 240)
    skewed.params = [300.0, 900.0, 160.0, 120.0]
    assert focal_disagreement(square) == pytest.approx(1.0)
    assert focal_disagreement(skewed) == pytest.approx(3.0)


def test_feature_mask_blocks_hands_with_a_margin():
    hand = np.zeros((20, 20), np.uint8)
    hand[5:10, 5:10] = 255
    mask = feature_mask(hand, margin=2)
    assert mask[7, 7] == 0 and mask[3, 7] == 0 and mask[2, 7] == 255 and mask[15, 15] == 255
