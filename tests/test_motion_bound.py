"""benchmarks/motion_bound.py: the pose arithmetic, the anchor frames, and the bound on a real render."""
import numpy as np
import pytest

from benchmarks.motion_bound import anchors, blend_pose, main, rotation_exp, rotation_log


def test_rotation_log_and_exp_invert_each_other():
    rng = np.random.default_rng(0)
    for _ in range(5):
        v = rng.normal(size=3)
        v *= 2.5 / np.linalg.norm(v) * rng.uniform(0.1, 1.0)   # angles up to 2.5 rad
        r = rotation_exp(v)
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-12) and np.linalg.det(r) == pytest.approx(1.0)
        assert np.allclose(rotation_log(r), v, atol=1e-9)


def test_blend_pose_hits_both_ends_and_continues_in_a_straight_line():
    a = (np.array([0.0, 0.0, 0.0]), np.eye(3), np.array([0.1, 0.2]))
    b = (np.array([1.0, 2.0, 0.0]), rotation_exp(np.array([0.0, 0.0, 0.3])), np.array([0.3, 0.2]))
    for s, pose in ((0.0, a), (1.0, b)):
        got = blend_pose(a, b, s)
        assert all(np.allclose(x, y) for x, y in zip(got, pose))
    wrist, rot, flex = blend_pose(a, b, -1.0)   # one step before a
    assert np.allclose(wrist, [-1.0, -2.0, 0.0]) and np.allclose(flex, [-0.1, 0.2])
    assert np.allclose(rotation_log(rot), [0.0, 0.0, -0.3])


def test_anchors_are_around_the_view_or_the_two_nearest_past_an_end():
    train = [1, 2, 3, 5, 6, 7]
    assert anchors(4, train) == (3, 5)
    assert anchors(0, train) == (1, 2)
    assert anchors(8, train) == (7, 6)


def test_finer_frame_spacing_brings_the_linear_guess_close_to_the_truth(tmp_path):
    coarse = main(["--out", str(tmp_path / "coarse"), "--frames", "24", "--width", "48", "--height", "36",
                   "--llffhold", "4"])
    fine = main(["--out", str(tmp_path / "fine"), "--frames", "81", "--width", "48", "--height", "36",
                 "--llffhold", "8"])
    assert fine["mean"]["IoU_linear"] > 0.95 > coarse["mean"]["IoU_linear"]
    for report in (coarse, fine):
        assert report["mean"]["IoU_linear"] > report["mean"]["IoU_hold"]
        assert (tmp_path / "coarse" / "motion_bound.json").is_file()
