"""The built-in synthetic scene: geometry, determinism, conventions shared with the trainer, files."""
import argparse
import filecmp
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from scene.synthetic import generator as syn
from scene.synthetic import geometry as geo
from scene.cameras import Camera
from scene.readers.colmap import qvec2rotmat, read_model
from utils.graphics_utils import focal2fov, geom_transform_points, ndc_to_pixel

FRAMES, WIDTH, HEIGHT = 6, 48, 36


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("synthetic") / "scene")
    syn.generate(out, frames=FRAMES, width=WIDTH, height=HEIGHT, seed=3, num_points=300, hand_points=0.0)
    return out


def read_png(path) -> np.ndarray:
    return np.array(Image.open(path))


def written_cameras(scene_dir):
    """Per frame: (R_w2c [3, 3], t_w2c [3]) and the PINHOLE parameters, read back from sparse/0."""
    cameras, images, points3D = read_model(os.path.join(scene_dir, "sparse", "0"))
    fx, fy, cx, cy = cameras[1].params
    poses = [(qvec2rotmat(img.qvec), np.asarray(img.tvec)) for img in sorted(images.values(), key=lambda i: i.name)]
    return poses, (fx, fy, cx, cy), images, points3D


def ray_through(pose, intrinsics, u, v):
    """World ray (origin [1, 3], direction [1, 3] with camera z = 1) through continuous pixel coordinate (u, v)."""
    R, t = pose
    fx, fy, cx, cy = intrinsics
    centre = -R.T @ t
    d_cam = np.array([(u - cx) / fx, (v - cy) / fy, 1.0])
    return centre[None], (R.T @ d_cam)[None]


def our_camera(pose, intrinsics, fid) -> Camera:
    """scene.cameras.Camera from a COLMAP pose, exactly as the readers build it."""
    R, t = pose
    fx, fy, _, _ = intrinsics
    return Camera(0, R.T, t, focal2fov(fx, WIDTH), focal2fov(fy, HEIGHT), torch.zeros(3, HEIGHT, WIDTH), "x", fid)


# ----------------------------------------------------------------------------- ray-primitive geometry

def _inside_checks():
    rot = geo.rotation_about([0.3, -0.5, 0.8], 0.7)
    centre = np.array([0.1, -0.2, 0.3])
    half, radii = np.array([0.3, 0.2, 0.1]), np.array([0.35, 0.15, 0.25])
    a, b = np.array([-0.2, 0.1, 0.2]), np.array([0.3, -0.1, 0.5])
    local = lambda p: (p - centre) @ rot

    def segment_distance(p):
        s = np.clip((p - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1)
        return np.linalg.norm(p - (a + s[..., None] * (b - a)), axis=-1)

    return [
        ("box", lambda o, d: geo.intersect_box(o, d, centre, half, rot),
         lambda p: (np.abs(local(p)) <= half).all(axis=-1)),
        ("ellipsoid", lambda o, d: geo.intersect_ellipsoid(o, d, centre, radii, rot),
         lambda p: ((local(p) / radii) ** 2).sum(axis=-1) <= 1),
        ("cylinder", lambda o, d: geo.intersect_cylinder(o, d, centre, 0.2, 0.25, rot),
         lambda p: (np.hypot(local(p)[..., 0], local(p)[..., 1]) <= 0.2) & (np.abs(local(p)[..., 2]) <= 0.25)),
        ("capsule", lambda o, d: geo.intersect_capsule(o, d, a, b, 0.12), lambda p: segment_distance(p) <= 0.12),
    ]


@pytest.mark.parametrize("name,intersect,inside", _inside_checks(), ids=[c[0] for c in _inside_checks()])
def test_first_hit_is_the_entry_into_the_solid(name, intersect, inside):
    """Against brute-force marching: rays start outside; a hit is on the surface with nothing
    inside before it; a miss has no inside point anywhere along the ray."""
    rng = np.random.default_rng(1)
    origins = rng.normal(size=(400, 3))
    origins = 1.5 * origins / np.linalg.norm(origins, axis=1, keepdims=True) + [0.1, -0.2, 0.3]
    targets = rng.normal(scale=0.3, size=(400, 3)) + [0.1, -0.2, 0.3]
    dirs = (targets - origins) * rng.uniform(0.3, 3.0, size=(400, 1))  # any length
    t, normal = intersect(origins, dirs)
    hit = np.isfinite(t)
    assert 0.1 < hit.mean() < 0.95, "the random rays should both hit and miss"

    steps = np.linspace(0, 1, 400)[None, :, None]
    t_end = np.where(hit, t, 3.0 / np.linalg.norm(dirs, axis=1))
    march = origins[:, None] + steps * t_end[:, None, None] * dirs[:, None]  # [N, S, 3]
    inside_before = inside(march[:, :-2]).any(axis=1)
    assert not inside_before.any()
    p_hit = origins[hit] + t[hit, None] * dirs[hit]
    assert inside(p_hit + 1e-6 * normal[hit]).sum() == 0            # just outside along the normal
    assert inside(p_hit - 1e-3 * normal[hit]).all()                 # just inside against it
    assert np.allclose(np.linalg.norm(normal[hit], axis=1), 1.0)
    assert (np.einsum("ij,ij->i", normal[hit], dirs[hit]) < 0).all()  # entry: facing the ray


def test_look_at_is_a_camera_rotation_looking_forward():
    c2w = geo.look_at_c2w([0.0, 1.0, -1.0])
    assert np.allclose(c2w.T @ c2w, np.eye(3)) and np.isclose(np.linalg.det(c2w), 1.0)
    assert np.allclose(c2w[:, 2], np.array([0, 1, -1]) / np.sqrt(2))  # camera z = forward
    assert c2w[2, 1] < 0  # camera y (down in the image) points down in the world (z up)


# ----------------------------------------------------------------------------- determinism

def test_same_seed_same_bytes_other_seed_other_frames(tmp_path):
    kwargs = dict(frames=2, width=20, height=16, num_points=50)
    first, again, other = (str(tmp_path / n) for n in ("a", "b", "c"))
    syn.generate(first, seed=5, **kwargs)
    syn.generate(again, seed=5, **kwargs)
    syn.generate(other, seed=6, **kwargs)
    files = sorted(os.path.relpath(os.path.join(root, f), first) for root, _, names in os.walk(first) for f in names)
    assert len(files) == 2 * 5 + 3 + 1  # 5 per-frame folders, the COLMAP model, scene_meta.json
    match, mismatch, errors = filecmp.cmpfiles(first, again, files, shallow=False)
    assert mismatch == [] and errors == []
    assert not np.array_equal(read_png(os.path.join(first, "images", "00000.png")),
                              read_png(os.path.join(other, "images", "00000.png")))


# ----------------------------------------------------------------------------- conventions

def test_known_static_point_projects_to_the_pixel_whose_ray_hits_it(scene_dir):
    """The ball's top point goes through OUR Camera matrices to pixel (px, py); the ray caster's
    ray through that pixel position (COLMAP u = px + 0.5) from the written pose hits that point."""
    poses, intrinsics, _, _ = written_cameras(scene_dir)
    scene = syn.SyntheticScene(seed=3)
    top = np.array(syn.BALL["centre"]) + [0, 0, syn.BALL["radius"]]
    ball_id = [p.name for p in scene.static].index("ball")
    for i, pose in enumerate(poses):
        fid = i / (FRAMES - 1)
        cam = our_camera(pose, intrinsics, fid)
        ndc = geom_transform_points(torch.tensor(top[None], dtype=torch.float32), cam.full_proj_transform)[0]
        px, py = float(ndc_to_pixel(ndc[0], WIDTH)), float(ndc_to_pixel(ndc[1], HEIGHT))
        assert 0 <= px < WIDTH and 0 <= py < HEIGHT
        o, d = ray_through(pose, intrinsics, px + 0.5, py + 0.5)
        hits = scene.cast(o, d, fid, hands=False)
        assert hits.hit_id[0] == ball_id
        assert np.allclose(o[0] + hits.depth[0] * d[0], top, atol=2e-5)  # float32 matrices: ~1e-5 m


def test_pixel_centre_rays_hit_the_bench_where_depth_metric_says(scene_dir):
    """depth_metric is view-space z at pixel centres: the written pose, the ray caster and the
    workbench plane z = 0 agree, and pixels showing the bench are its points' projections."""
    poses, intrinsics, _, _ = written_cameras(scene_dir)
    scene = syn.SyntheticScene(seed=3)
    i, fid = 2, 2 / (FRAMES - 1)
    depth = np.load(os.path.join(scene_dir, "depth_metric", "00002.npy"))
    assert depth.dtype == np.float32 and depth.shape == (HEIGHT, WIDTH)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    o, d = ray_through(poses[i], intrinsics, 0, 0)
    R, _ = poses[i]
    fx, fy, cx, cy = intrinsics
    d_cam = np.stack([(xs.ravel() + 0.5 - cx) / fx, (ys.ravel() + 0.5 - cy) / fy, np.ones(xs.size)], 1)
    hits = scene.cast(np.repeat(o, xs.size, 0), d_cam @ R, fid)
    assert np.allclose(hits.depth.reshape(HEIGHT, WIDTH), depth, rtol=1e-6)
    bench = hits.hit_id == [p.name for p in scene.static].index("workbench")
    assert bench.mean() > 0.3
    points = o + hits.depth[bench, None] * (d_cam[bench] @ R)
    assert np.abs(points[:, 2]).max() < 1e-6  # on the top face z = 0
    cam = our_camera(poses[i], intrinsics, fid)
    ndc = geom_transform_points(torch.tensor(points, dtype=torch.float64), cam.full_proj_transform.double())
    assert np.allclose(ndc_to_pixel(ndc[:, 0], WIDTH).numpy(), xs.ravel()[bench], atol=1e-3)
    assert np.allclose(ndc_to_pixel(ndc[:, 1], HEIGHT).numpy(), ys.ravel()[bench], atol=1e-3)


def test_colmap_model_is_one_pinhole_camera_with_exact_poses(scene_dir):
    cameras, images, _ = read_model(os.path.join(scene_dir, "sparse", "0"), ".txt")
    assert list(cameras) == [1] and cameras[1].model == "PINHOLE"
    fx, fy, cx, cy = cameras[1].params
    assert fx == fy and (cx, cy) == (WIDTH / 2, HEIGHT / 2)
    assert sorted(img.name for img in images.values()) == [f"{i:05d}.png" for i in range(FRAMES)]
    scene = syn.SyntheticScene(seed=3)
    for img in images.values():
        fid = int(img.name[:5]) / (FRAMES - 1)
        c2w, centre = scene.camera(fid)
        R = qvec2rotmat(img.qvec)
        assert np.allclose(R, c2w.T, atol=1e-12) and np.allclose(-R.T @ img.tvec, centre, atol=1e-12)


# ----------------------------------------------------------------------------- the written frames

def test_masks_show_moving_skin_coloured_hands(scene_dir):
    meta = json.load(open(os.path.join(scene_dir, "scene_meta.json")))
    masks = np.stack([read_png(os.path.join(scene_dir, "masks", f"{i:05d}.png")) for i in range(FRAMES)])
    images = np.stack([read_png(os.path.join(scene_dir, "images", f"{i:05d}.png")) for i in range(FRAMES)])
    assert masks.dtype == np.uint8 and set(np.unique(masks)) <= {0, 255}
    hand = masks == 255
    assert (hand.mean(axis=(1, 2)) > 0.01).sum() >= FRAMES - 1      # hands on (nearly) every frame
    assert all((hand[i] != hand[i + 1]).mean() > 0.005 for i in range(FRAMES - 1))  # and they move
    assert np.allclose(meta["hand_pixel_fraction"], hand.mean(axis=(1, 2)), atol=1e-6)
    skin = images[hand].astype(float).mean(axis=0)
    assert skin[0] > skin[1] > skin[2]  # warm skin tone: R > G > B
    assert np.abs(images[hand].astype(float) - skin).mean() < np.abs(images[~hand].astype(float) - skin).mean()


def test_gt_static_equals_images_away_from_hands_and_differs_on_them(scene_dir):
    scene = syn.SyntheticScene(seed=3)
    for i in (1, 4):
        render = scene.render(i / (FRAMES - 1), WIDTH, HEIGHT)
        image = read_png(os.path.join(scene_dir, "images", f"{i:05d}.png")).astype(int)
        static = read_png(os.path.join(scene_dir, "gt_static", f"{i:05d}.png")).astype(int)
        mask = read_png(os.path.join(scene_dir, "masks", f"{i:05d}.png")) == 255
        untouched = render.hand_fraction == 0  # no subsample of these pixels saw a hand
        assert untouched.mean() > 0.6 and not (untouched & mask).any()
        assert np.array_equal(image[untouched], static[untouched])
        assert np.abs(image[mask] - static[mask]).sum(axis=-1).mean() > 30


def test_depth_prior_is_normalized_inverse_depth(tmp_path):
    out = str(tmp_path / "sharp")
    syn.generate(out, frames=2, width=32, height=24, num_points=20, depth_blur=0.0)
    for i in range(2):
        prior = read_png(os.path.join(out, "depth_gt", f"{i:05d}.png"))
        depth = np.load(os.path.join(out, "depth_metric", f"{i:05d}.npy"))
        assert prior.dtype == np.uint16 and prior.min() == 0 and prior.max() == 65535
        order = np.argsort(depth, axis=None, kind="stable")  # near to far
        disparity = prior.ravel()[order].astype(int)
        assert (np.diff(disparity) <= 1).all()  # never brighter further away (1 = rounding)
        finite = np.isfinite(depth)
        expected = 1 / depth[finite]
        expected = (expected - expected.min()) / (expected.max() - expected.min())
        assert np.abs(prior[finite] / 65535 - expected).max() < 1e-4


def test_default_depth_prior_is_blurred_but_ordered(scene_dir):
    prior = read_png(os.path.join(scene_dir, "depth_gt", "00003.png")).astype(float)
    depth = np.load(os.path.join(scene_dir, "depth_metric", "00003.npy"))
    rank = lambda a: np.argsort(np.argsort(a, axis=None), axis=None)
    spearman = np.corrcoef(rank(prior), rank(-depth))[0, 1]
    assert spearman > 0.95
    sharp = 1 / depth
    sharp = (sharp - sharp.min()) / (sharp.max() - sharp.min()) * 65535
    assert np.abs(prior - sharp).max() > 100  # the mild blur changed something


def test_points3D_lie_on_static_surfaces(tmp_path):
    out = str(tmp_path / "exact")
    syn.generate(out, frames=3, width=40, height=30, num_points=200, point_noise=0.0, seed=2, hand_points=0.0)
    poses, intrinsics, images, points3D = written_cameras(out)
    assert 150 <= len(points3D) <= 200
    scene = syn.SyntheticScene(seed=2)
    xyz = np.array([p.xyz for p in points3D.values()])
    first_image = np.array([p.image_ids[0] for p in points3D.values()])
    for image_id in np.unique(first_image):
        pts = xyz[first_image == image_id]
        R, t = poses[image_id - 1]
        centre = -R.T @ t
        hits = scene.cast(np.repeat(centre[None], len(pts), 0), pts - centre, (image_id - 1) / 2, hands=False)
        assert np.allclose(hits.depth, 1.0, atol=1e-6)      # the first surface along the ray is the point
        assert not scene.is_hand(hits.hit_id).any() and (hits.hit_id >= 0).all()
    meta = json.load(open(os.path.join(out, "scene_meta.json")))
    lo, hi = (np.array(v) for v in meta["bounds"]["objects"])
    on_objects = (xyz[:, 2] > 1e-6) & (xyz[:, 1] < syn.WALL_Y - 1e-6)  # neither bench, floor nor wall
    assert on_objects.any() and ((xyz[on_objects] >= lo - 1e-9) & (xyz[on_objects] <= hi + 1e-9)).all()
    for point in points3D.values():  # tracks and keypoints agree both ways
        for image_id, k in zip(point.image_ids, point.point2D_idxs):
            assert images[image_id].point3D_ids[k] == point.id
            R, t = poses[image_id - 1]
            fx, fy, cx, cy = intrinsics
            cam = R @ point.xyz + t
            assert np.allclose(images[image_id].xys[k], [fx * cam[0] / cam[2] + cx, fy * cam[1] / cam[2] + cy])
            assert point.error < 1e-6


def test_noisy_points_stay_near_surfaces(scene_dir):
    _, _, _, points3D = written_cameras(scene_dir)
    xyz = np.array([p.xyz for p in points3D.values()])
    on_bench = np.abs(xyz[:, 2]) < 0.01
    assert on_bench.mean() > 0.3  # the bench dominates the view
    assert np.abs(xyz[on_bench, 2]).std() == pytest.approx(0.002, rel=0.35)  # the default 2 mm noise


def test_generated_scene_loads_through_read_scene(scene_dir):
    from arguments import ModelParams
    from scene.readers import read_scene
    parser = argparse.ArgumentParser()
    params = ModelParams(parser)
    info = read_scene(params.extract(parser.parse_args(["-s", scene_dir])))
    cams = info.train_cameras + info.test_cameras
    assert len(cams) == FRAMES and info.has_masks and info.has_depth
    for cam in cams:
        assert cam.mask.shape == (HEIGHT, WIDTH) and cam.depth.shape == (HEIGHT, WIDTH)
        assert cam.depth_kind == "disparity" and cam.image.shape == (HEIGHT, WIDTH, 3)
    assert [c.fid for c in sorted(cams, key=lambda c: c.image_name)] == pytest.approx(np.linspace(0, 1, FRAMES))
    assert len(info.point_cloud.points) > 100


# ----------------------------------------------------------------------------- bad input, command line

@pytest.mark.parametrize("kwargs,flag", [(dict(width=0), "--width"), (dict(frames=0), "--frames"),
                                         (dict(depth_noise=-1.0), "--depth_noise"), (dict(seed=-3), "--seed")])
def test_bad_arguments_name_the_flag(tmp_path, kwargs, flag):
    with pytest.raises(ValueError, match=flag):
        syn.generate(str(tmp_path / "x"), **kwargs)
    assert not os.path.exists(tmp_path / "x")


def test_command_line_refuses_a_used_folder_unless_overwrite(tmp_path, capsys):
    out = str(tmp_path / "cli")
    assert syn.main([out, "--frames", "3", "--width", "16", "--height", "12", "--points", "30"]) == 0
    assert syn.main([out, "--frames", "2", "--width", "16", "--height", "12"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and out in err and "--overwrite" in err
    assert syn.main([out, "--frames", "2", "--width", "16", "--height", "12", "--overwrite"]) == 0
    assert sorted(os.listdir(os.path.join(out, "images"))) == ["00000.png", "00001.png"]  # no stale frame
    assert syn.main([out, "--width", "4", "--overwrite"]) == 2
    assert "--width" in capsys.readouterr().err


# ----------------------------------------------------------------------------- hands

def test_hands_move_smoothly_flex_and_occlude_objects():
    scene = syn.SyntheticScene(seed=0)
    times = np.linspace(0, 1, 40)
    for hand in scene.hands:
        wrists = np.array([hand.pose(t)[0] for t in times])
        steps = np.linalg.norm(np.diff(wrists, axis=0), axis=1)
        assert steps.max() < 0.04 and np.linalg.norm(wrists.max(0) - wrists.min(0)) > 0.15  # smooth, travels
        parts = {p.name: p for p in hand.primitives(0.0)}
        assert set(parts) == {f"{hand.name}_{part}" for part in syn.HAND_PARTS}
        spans = []  # fingertip height below the back of the hand, in the hand frame: grows as it curls
        for t in times:
            wrist, rot, _ = hand.pose(t)
            tip = hand.primitives(t)[list(syn.HAND_PARTS).index("index_2")]
            bound_centre = tip.bound[0]
            spans.append(-((bound_centre - wrist) @ rot)[2])
        assert max(spans) - min(spans) > 0.02  # the index finger flexes by centimetres

    # Somewhere in the clip a hand covers the box, the book or the ball: hands occlude objects.
    occluded = set()
    for t in times[::4]:
        c2w, centre = scene.camera(t)
        o, d = syn.pixel_rays(c2w, centre, 64, 48)
        with_hands, static = scene.cast(o, d, t), scene.cast(o, d, t, hands=False)
        behind_hand = static.hit_id[scene.is_hand(with_hands.hit_id)]
        occluded |= {scene.names[i] for i in np.unique(behind_hand)}
    assert {"box", "ball", "book"} & occluded


def test_culling_spheres_enclose_every_hand_part():
    """Parts are only tested against rays that meet their group's sphere: a part poking out of it
    would silently lose pixels, so every part's bound must lie inside its group's at any pose."""
    scene = syn.SyntheticScene(seed=1)
    for t in np.linspace(0, 1, 25):
        for part in scene.hand_primitives(t):
            if part.group is not None:
                (centre, radius), (group_centre, group_radius) = part.bound, part.group
                assert np.linalg.norm(centre - group_centre) + radius <= group_radius


def test_casting_in_chunks_changes_nothing(monkeypatch):
    scene = syn.SyntheticScene(seed=0)
    c2w, centre = scene.camera(0.4)
    o, d = syn.pixel_rays(c2w, centre, 40, 30, [(0.25, 0.25), (0.75, 0.75)])
    whole = scene.cast(o, d, 0.4)
    monkeypatch.setattr(syn, "RAY_CHUNK", 777)
    chunked = scene.cast(o, d, 0.4)
    assert all(np.array_equal(a, b) for a, b in zip(whole, chunked))
    assert scene.is_hand(whole.hit_id).any() and (whole.hit_id >= 0).all()


def test_a_fraction_of_points_lies_on_the_hands_in_their_frame(tmp_path):
    out = str(tmp_path / "hands")
    syn.generate(out, frames=3, width=40, height=30, num_points=200, point_noise=0.0, seed=2, hand_points=0.25)
    _, _, images, points3D = written_cameras(out)
    scene = syn.SyntheticScene(2)
    on_hand = 0
    for point in points3D.values():
        fid = (point.image_ids[0] - 1) / 2.0
        c2w, centre = scene.camera(fid)
        hit = scene.cast(centre[None], (point.xyz - centre)[None], fid)
        assert abs(hit.depth[0] - 1.0) < 1e-6  # the point is the first thing its ray meets
        on_hand += bool(scene.is_hand(hit.hit_id)[0])
    assert 0.15 * len(points3D) <= on_hand <= 0.35 * len(points3D)
    with pytest.raises(ValueError, match="hand_points"):
        syn.generate(str(tmp_path / "bad"), frames=2, width=20, height=16, hand_points=1.5)
