"""benchmarks/rasterizer.py --model: the trained-scene path, on the CPU with the reference rasterizer."""
import json
import os

import pytest
from plyfile import PlyData

import train
from benchmarks import rasterizer as bench

TRAIN = ["--rasterizer", "torch", "--data_device", "cpu", "--deform_depth", "2", "--deform_width", "16", "--quiet",
         "--iterations", "5", "--warm_up", "2", "--mask_start", "4", "--mask_stop", "5", "--stop_MLP", "5",
         "--test_iterations", "5", "--save_iterations", "5", "--densify_until_iter", "0"]
WIDTH, HEIGHT = 32, 24


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from scene.synthetic import generate

    root = tmp_path_factory.mktemp("bench_rasterizer")
    source, model = str(root / "data"), str(root / "model")
    generate(source, frames=4, width=WIDTH, height=HEIGHT, seed=0, num_points=200)
    train.main(["-s", source, "-m", model, *TRAIN])
    return model


def test_trained_scene_on_cpu(tiny_model, tmp_path):
    out = str(tmp_path / "bench.json")
    report = bench.main(["--model", tiny_model, "--device", "cpu", "--repeats", "2", "--warmup", "0",
                         "--cameras", "2", "--out", out])
    with open(out) as f:
        written = json.load(f)
    assert written == json.loads(json.dumps(report))
    assert written["results"] == []          # no random workload on the CPU
    entry = written["trained_scene"]
    ply = os.path.join(tiny_model, "point_cloud", "iteration_5", "point_cloud.ply")
    assert entry["num_gaussians"] == len(PlyData.read(ply)["vertex"]) > 0
    assert entry["iteration"] == 5
    assert entry["resolution"] == [WIDTH, HEIGHT]
    assert entry["rasterizer"] == "torch" and entry["device"] == "cpu"
    assert len(entry["cameras"]) == 2
    fids = [view["fid"] for view in entry["cameras"]]
    assert fids == sorted(fids) and fids[0] < fids[-1]   # first and last time
    for view in [*entry["cameras"], entry["median_over_cameras"]]:
        assert set(view) >= {"ours"} and "gsplat" not in view
        for phase in ("forward", "forward_backward"):
            assert view["ours"][phase]["median_ms"] > 0
            assert view["ours"][phase]["peak_extra_mib"] is None
    for view in entry["cameras"]:
        assert view["resolution"] == [WIDTH, HEIGHT]
        assert view["ours"]["forward"]["min_ms"] > 0


def test_deformed_inputs_match_render(tiny_model):
    """The benchmark draws what render() draws for the same camera and deformation."""
    import torch

    from benchmarks.synthetic_quality import load_model
    from gaussian_renderer import render
    from gaussian_renderer.backend import get_rasterizer

    dataset, pipe, scene, gaussians, deform = load_model(tiny_model, -1)
    camera = bench.pick_cameras(scene.getTrainCameras() + scene.getTestCameras(), 1)[0]
    params = bench.deformed_gaussians(gaussians, deform, camera.fid, dataset.is_6dof, "cpu")
    module = get_rasterizer("torch", "cpu")
    settings = bench.view_settings(module, camera, gaussians.active_sh_degree, "cpu")
    color, depth, features, _, _ = module.GaussianRasterizer(settings)(
        means3D=params["means"], means2D=torch.zeros_like(params["means"]), opacities=params["opacities"][:, None],
        shs=params["shs"], mask_feature=params["masks"], scales=params["scales"], rotations=params["quats"])
    with torch.no_grad():
        n = gaussians.get_xyz.shape[0]
        d = deform.step(gaussians.get_xyz, torch.full((n, 1), camera.fid))
        expected = render(camera, gaussians, pipe, torch.zeros(3), *d, is_6dof=dataset.is_6dof)
    assert torch.allclose(color, expected["render"], atol=1e-5)
    assert torch.allclose(depth, expected["depth"], atol=1e-5)
    assert torch.allclose(features, expected["hand_map"], atol=1e-5)


def test_cpu_needs_a_model():
    with pytest.raises(SystemExit):
        bench.main(["--device", "cpu"])


def test_pick_cameras_spreads_over_time():
    class Cam:
        def __init__(self, fid):
            self.fid, self.image_name = fid, f"{fid:.2f}"

    cams = [Cam(i / 9) for i in range(10)][::-1]
    assert [c.fid for c in bench.pick_cameras(cams, 3)] == [0.0, 5 / 9, 1.0]
    assert len(bench.pick_cameras(cams, 20)) == 10
    assert bench.pick_cameras(cams, 1)[0].fid == 5 / 9


def test_agreement_psnr_of_peer_images():
    """The ours-vs-peer image check: a constant 0.1 offset is 20 dB; equal images are None."""
    import torch

    params = {"x": torch.rand(4, 8, 8)}
    steps = {"ours": lambda p, backward: p["x"], "shifted": lambda p, backward: p["x"] + 0.1,
             "same": lambda p, backward: p["x"].clone()}
    psnr = bench.agreement(steps, params)
    assert psnr["shifted"] == pytest.approx(20.0, abs=0.01)
    assert psnr["same"] is None and "ours" not in psnr


def test_ab_adapter_passes_older_sources_their_flat_arguments():
    from benchmarks.rasterizer_ab import _OlderApiAdapter
    names = ["bg", "means3D", "colors", "opacities", "scales", "rotations", "scale_modifier", "cov3D_precomp",
             "features", "viewmatrix", "projmatrix", "tan_fovx", "tan_fovy", "image_height", "image_width", "shs",
             "sh_degree", "campos"]   # RasterInputs' order (csrc/rasterize.h)

    class Oldest:  # forward(..., debug): no depth_first_sort argument
        @staticmethod
        def rasterize_forward(*args):
            if len(args) != len(names) + 1:
                raise TypeError("incompatible function arguments")
            return ("oldest",) + args

    class Flat:  # forward(..., depth_first_sort, debug); backward without the image size
        @staticmethod
        def rasterize_forward(*args):
            return ("flat",) + args

        @staticmethod
        def rasterize_backward(*args):
            return ("flat",) + args

    class Current:
        RasterInputs = staticmethod(lambda *values: ("inputs",) + values)
        rasterize_forward = staticmethod(lambda inputs, sort, debug: ("current", inputs, sort, debug))
        rasterize_backward = staticmethod(lambda inputs, *rest: ("current", inputs) + rest)

    oldest, flat, current = _OlderApiAdapter(Oldest), _OlderApiAdapter(Flat), _OlderApiAdapter(Current)
    inputs = flat.RasterInputs(*names)
    assert oldest.rasterize_forward(inputs, True, "dbg") == ("oldest", *names, "dbg")
    assert flat.rasterize_forward(inputs, True, "dbg") == ("flat", *names, True, "dbg")
    assert flat.rasterize_backward(inputs, "g", "saved", "dbg") == \
        ("flat", *[n for n in names if not n.startswith("image_")], "g", "saved", "dbg")
    wrapped = current.RasterInputs(*names)
    assert wrapped == ("inputs", *names)
    assert current.rasterize_forward(wrapped, True, "dbg") == ("current", wrapped, True, "dbg")
    assert current.rasterize_backward(wrapped, "g", "dbg") == ("current", wrapped, "g", "dbg")
