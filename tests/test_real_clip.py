"""A real egocentric clip end to end on the CPU: convert.py -> train.py -> render.py -> metrics.py.

The clip is ../shared/data/ego_glass (61 real frames with hand masks; never committed here). A
short scaled schedule at quarter resolution checks that every step runs on real data and that the
decomposition metrics come out; the quality figures of full runs are in benchmarks/results/.
"""
import json
import os
import shutil

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIP = os.path.join(os.path.dirname(ROOT), "shared", "data", "ego_glass")
ITERATIONS = 300

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def converted_clip(tmp_path_factory):
    if not os.path.isdir(os.path.join(CLIP, "input")):
        pytest.skip(f"the real clip is absent ({CLIP}): it comes with the project's shared/ folder, "
                    "see shared/data/ego_glass/README.md")
    import convert
    scene = tmp_path_factory.mktemp("ego_glass")
    for folder in ("input", "input_masks"):
        shutil.copytree(os.path.join(CLIP, folder), scene / folder)
    # the default mapper, with its fallback (the global mapper alone registered 0 of these 61 frames)
    assert convert.main(["-s", str(scene), "--camera", "SIMPLE_RADIAL"]) == 0
    return scene


def test_real_clip_trains_renders_and_scores_its_decomposition(converted_clip, tmp_path, monkeypatch):
    import metrics
    import render
    import train
    from utils.schedule import scaled_schedule

    registered = len(os.listdir(converted_clip / "images"))
    assert registered >= 55, f"only {registered} of 61 frames registered"
    model = str(tmp_path / "model")
    summary = train.main(["-s", str(converted_clip), "-m", model, "--eval", "--llffhold", "8", "-r", "4",
                          "--rasterizer", "torch", "--data_device", "cpu", "--quiet",
                          *scaled_schedule(ITERATIONS)])
    assert summary["num_gaussians"] > 0
    assert render.main(["-m", model, "--skip_train", "--quiet", "--no_video"]) == 0
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))   # offline: LPIPS null
    assert metrics.main(["-m", model]) == 0
    scores = json.loads(open(os.path.join(model, "results.json")).read())[f"ours_{ITERATIONS}"]
    assert scores["PSNR"] > 15.0
    for metric in ("mask_IoU", "hands_precision", "hands_recall"):
        assert 0.0 <= scores[metric] <= 1.0, metric
    assert scores["masked_PSNR"] > scores["PSNR"] - 3.0   # the frame without the hands is not worse
    strip = os.path.join(model, "test", f"ours_{ITERATIONS}", "strip")
    assert len(os.listdir(strip)) == len(os.listdir(os.path.join(model, "test", f"ours_{ITERATIONS}", "gt")))
