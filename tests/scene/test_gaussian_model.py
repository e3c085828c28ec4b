"""GaussianModel: initialisation, activations, optimizer and schedule, PLY layout, exact resume."""
import io
import math
import os
from argparse import ArgumentParser

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from arguments import OptimizationParams
from scene.readers.dataset_types import DatasetError
from utils.fused_adam import FusedAdam
from scene.gaussian_model import TENSOR_NAMES, GaussianModel
from utils.graphics_utils import BasicPointCloud

SH_C0 = 0.28209479177387814


def default_opt(**overrides):
    parser = ArgumentParser()
    opt = OptimizationParams(parser).extract(parser.parse_args([]))
    for key, value in overrides.items():
        setattr(opt, key, value)
    return opt


def random_model(n=20, sh_degree=1, mask_dimension=2, seed=0) -> GaussianModel:
    """A model with random stored tensors, filled through the public cat_tensors."""
    g = torch.Generator().manual_seed(seed)
    model = GaussianModel(sh_degree, mask_dimension, device="cpu")
    rest = (sh_degree + 1) ** 2 - 1
    shapes = {"xyz": (3,), "f_dc": (1, 3), "f_rest": (rest, 3), "opacity": (1,), "scaling": (3,),
              "rotation": (4,), "mask": (mask_dimension,)}
    model.cat_tensors({name: torch.randn(n, *shape, generator=g) for name, shape in shapes.items()})
    model.spatial_lr_scale = 1.5
    return model


def fake_loss(model: GaussianModel, seed: int) -> torch.Tensor:
    """A deterministic loss touching every tensor (through the activations the renderer uses)."""
    g = torch.Generator().manual_seed(seed)
    outputs = [model.get_xyz, model.get_features, model.get_opacity, model.get_scaling,
               model.get_rotation, model.get_mask]
    return sum((out * torch.randn(out.shape, generator=g)).pow(2).sum() for out in outputs)


def train_steps(model: GaussianModel, seeds):
    for seed in seeds:
        fake_loss(model, seed).backward()
        model.optimizer.step()
        model.optimizer.zero_grad(set_to_none=True)


def adam_state(model: GaussianModel, name: str) -> dict:
    return model.optimizer.state.get(model.tensors[name], {})


# --- initialisation and activations ---------------------------------------------------------
def test_create_from_pcd_initial_values():
    g = np.random.default_rng(0)
    points = g.normal(size=(40, 3))
    colors = g.uniform(size=(40, 3))
    model = GaussianModel(3, 3, device="cpu")
    model.create_from_pcd(BasicPointCloud(points, colors, np.zeros_like(points)), spatial_lr_scale=2.5)

    assert model.spatial_lr_scale == 2.5 and model.active_sh_degree == 0
    torch.testing.assert_close(model.get_xyz, torch.tensor(points, dtype=torch.float32))
    assert model.get_features.shape == (40, 16, 3)
    torch.testing.assert_close(model.get_features[:, 0], torch.tensor((colors - 0.5) / SH_C0, dtype=torch.float32))
    assert torch.all(model.get_features[:, 1:] == 0)
    d2 = ((points[:, None] - points[None]) ** 2).sum(-1) + np.diag(np.full(40, np.inf))
    expected_scale = np.sqrt(np.sort(d2, axis=1)[:, :3].mean(axis=1))
    torch.testing.assert_close(model.get_scaling, torch.tensor(expected_scale, dtype=torch.float32)[:, None].expand(40, 3))
    assert torch.equal(model.get_rotation, torch.tensor([[1.0, 0, 0, 0]]).expand(40, 4))
    torch.testing.assert_close(model.get_opacity, torch.full((40, 1), 0.1))
    assert torch.equal(model.get_mask, torch.zeros(40, 3))


def test_duplicate_points_get_the_minimum_scale():
    points = np.zeros((5, 3))
    model = GaussianModel(0, 0, device="cpu")
    model.create_from_pcd(BasicPointCloud(points, np.full((5, 3), 0.5), points), 1.0)
    torch.testing.assert_close(model.get_scaling, torch.full((5, 3), math.sqrt(1e-7)))
    assert model.get_mask.shape == (5, 0) and model.get_features.shape == (5, 1, 3)


@pytest.mark.parametrize("points, colors, message", [
    (np.zeros((0, 3)), np.zeros((0, 3)), "N >= 1"),
    (np.zeros((4, 3)), np.full((4, 3), 200.0), "255"),
    (np.full((4, 3), np.nan), np.zeros((4, 3)), "NaN"),
    (np.zeros((4, 3)), np.zeros((3, 3)), "must match"),
])
def test_bad_point_clouds_are_rejected(points, colors, message):
    with pytest.raises(DatasetError, match=message):
        GaussianModel(1, device="cpu").create_from_pcd(BasicPointCloud(points, colors, points), 1.0)


def test_covariance_of_a_rotated_gaussian():
    model = random_model(n=1)
    half = math.sqrt(0.5)   # 90 degrees about z: x -> y, y -> -x
    model.replace_tensor("rotation", torch.tensor([[2 * half, 0.0, 0.0, 2 * half]]))  # unnormalized on purpose
    model.replace_tensor("scaling", torch.log(torch.tensor([[1.0, 2.0, 3.0]])))
    torch.testing.assert_close(model.get_covariance(), torch.tensor([[4.0, 0.0, 0.0, 1.0, 0.0, 9.0]]))
    torch.testing.assert_close(model.get_covariance(0.5), torch.tensor([[1.0, 0.0, 0.0, 0.25, 0.0, 2.25]]))
    torch.testing.assert_close(model.get_rotation, torch.tensor([[half, 0.0, 0.0, half]]))


@pytest.mark.parametrize("sh_degree, mask_dimension", [(4, 3), (-1, 3), (3, 33), (3, -1)])
def test_sizes_the_rasterizers_cannot_draw_are_refused_at_creation(sh_degree, mask_dimension):
    with pytest.raises(ValueError, match=r"sh_degree \(-?\d\) must be in 0..3 and mask_dimension \(-?\d+\) in 0..32"):
        GaussianModel(sh_degree, mask_dimension, device="cpu")
    GaussianModel(3, 32, device="cpu")   # the largest accepted


def test_sh_degree_goes_up_to_the_maximum():
    model = GaussianModel(2, device="cpu")
    degrees = []
    for _ in range(4):
        model.oneupSHdegree()
        degrees.append(model.active_sh_degree)
    assert degrees == [1, 2, 2, 2]


# --- optimizer, learning rates, mask phase --------------------------------------------------
def test_learning_rates_and_position_schedule():
    opt = default_opt()
    model = random_model()
    model.training_setup(opt)
    lrs = {group["name"]: group["lr"] for group in model.optimizer.param_groups}
    assert lrs == {"xyz": 0.00016 * 1.5, "f_dc": 0.0025, "f_rest": 0.0025 / 20, "opacity": 0.05,
                   "scaling": 0.001, "rotation": 0.001, "mask": 0.0}   # mask frozen until its phase
    assert model.optimizer.defaults["eps"] == 1e-15
    model.set_position_lr(0.5)
    assert model.optimizer.param_groups[0]["name"] == "xyz" and model.optimizer.param_groups[0]["lr"] == 0.5


def test_training_setup_needs_a_spatial_scale():
    model = GaussianModel(1, device="cpu")
    with pytest.raises(ValueError, match="spatial_lr_scale"):
        model.training_setup(default_opt())


def test_mask_feature_learns_only_when_trainable():
    model = random_model()
    model.training_setup(default_opt())
    mask_before, xyz_before = model.get_mask.detach().clone(), model.get_xyz.detach().clone()
    train_steps(model, [1, 2])
    assert torch.equal(model.get_mask, mask_before) and not torch.equal(model.get_xyz, xyz_before)
    assert adam_state(model, "mask") == {}

    model.set_mask_trainable(True)
    assert model.optimizer.param_groups[-1]["lr"] == 0.0025
    train_steps(model, [3])
    assert not torch.equal(model.get_mask, mask_before)

    model.set_mask_trainable(False)
    frozen = model.get_mask.detach().clone()
    moments = adam_state(model, "mask")["exp_avg"].clone()
    train_steps(model, [4])
    assert torch.equal(model.get_mask, frozen) and torch.equal(adam_state(model, "mask")["exp_avg"], moments)


# --- generic row operations -----------------------------------------------------------------
def test_cat_prune_replace_keep_tensors_and_adam_state_in_step():
    model = random_model(n=10)
    model.training_setup(default_opt())
    model.set_mask_trainable(True)
    train_steps(model, [1, 2])
    before = {name: (model.tensors[name].detach().clone(), adam_state(model, name)["exp_avg"].clone(),
                     adam_state(model, name)["exp_avg_sq"].clone()) for name in TENSOR_NAMES}

    extra = {name: torch.randn(3, *t.shape[1:]) for name, t in model.tensors.items()}
    model.cat_tensors(extra)
    keep = torch.tensor([True, False] * 6 + [True])
    model.prune(keep)

    kept_old, kept_new = torch.arange(10)[keep[:10]], torch.arange(3)[keep[10:]]   # 5 and 2 rows
    for name in TENSOR_NAMES:
        param, state = model.tensors[name], adam_state(model, name)
        group = next(g for g in model.optimizer.param_groups if g["name"] == name)
        assert group["params"][0] is param and param.requires_grad
        value, exp_avg, exp_avg_sq = before[name]
        assert param.shape[0] == 7 and state["exp_avg"].shape == param.shape == state["exp_avg_sq"].shape
        assert torch.equal(param[:5], value[kept_old]) and torch.equal(param[5:], extra[name][kept_new])
        assert torch.equal(state["exp_avg"][:5], exp_avg[kept_old])
        assert torch.equal(state["exp_avg_sq"][:5], exp_avg_sq[kept_old])
        assert torch.all(state["exp_avg"][5:] == 0) and torch.all(state["exp_avg_sq"][5:] == 0)
        assert state["step"] == 2
    train_steps(model, [3])   # the optimizer still works on the edited tensors

    untouched = adam_state(model, "xyz")["exp_avg"].clone()
    model.replace_tensor("opacity", torch.zeros(7, 1))
    assert torch.all(adam_state(model, "opacity")["exp_avg"] == 0)
    assert torch.equal(adam_state(model, "xyz")["exp_avg"], untouched)


def test_fused_adam_gives_the_plain_update_through_row_edits_and_resume():
    """--adam fused (train.py uses it on CUDA): the same steps as the plain Adam, also after
    densification's row edits, and a resumed model keeps the fused optimizer and its state."""
    opt, extra = default_opt(), None
    models = {}
    for fused in (False, True):
        model = random_model(n=10)
        model.training_setup(opt, fused=fused)
        model.set_mask_trainable(True)
        train_steps(model, [1, 2])
        extra = extra or {name: torch.randn(3, *t.shape[1:]) for name, t in model.tensors.items()}
        model.cat_tensors(extra)
        model.prune(torch.tensor([True, False] * 6 + [True]))
        train_steps(model, [3, 4])
        models[fused] = model
    assert isinstance(models[True].optimizer, FusedAdam) and not models[False].optimizer.defaults["fused"]
    for name in TENSOR_NAMES:
        torch.testing.assert_close(models[True].tensors[name], models[False].tensors[name], atol=1e-6, rtol=1e-5)
    resumed = random_model(n=1)
    resumed.training_setup(opt, fused=True)
    buffer = io.BytesIO()   # through a file, as a checkpoint (the state dict shares the Adam moments)
    torch.save(models[True].state_dict(), buffer)
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=False), opt)
    assert resumed.optimizer.defaults["fused"]
    train_steps(resumed, [5])
    train_steps(models[True], [5])
    for name in TENSOR_NAMES:
        assert torch.equal(resumed.tensors[name], models[True].tensors[name]), name


def test_row_operations_check_shapes():
    model = random_model(n=4)
    bad = {name: torch.zeros(2, *t.shape[1:]) for name, t in model.tensors.items()}
    bad["mask"] = torch.zeros(2, 5)
    with pytest.raises(ValueError, match="mask"):
        model.cat_tensors(bad)
    with pytest.raises(ValueError, match="opacity"):
        model.replace_tensor("opacity", torch.zeros(3, 1))


# --- PLY ------------------------------------------------------------------------------------
def test_ply_round_trip_is_exact(tmp_path):
    model = random_model(n=15, sh_degree=2, mask_dimension=3)
    path = str(tmp_path / "sub" / "point_cloud.ply")
    model.save_ply(path)
    loaded = GaussianModel(2, 3, device="cpu")
    loaded.load_ply(path)
    for name in TENSOR_NAMES:
        assert torch.equal(loaded.tensors[name], model.tensors[name]), name
    assert loaded.active_sh_degree == 2
    assert [f for f in os.listdir(tmp_path / "sub")] == ["point_cloud.ply"]   # no temporary left


def test_ply_uses_the_standard_3dgs_layout(tmp_path):
    model = random_model(n=4, sh_degree=1, mask_dimension=2)
    coeff, channel = torch.meshgrid(torch.arange(3.0), torch.arange(3.0), indexing="ij")
    model.replace_tensor("f_rest", (100 * channel + coeff).expand(4, 3, 3))   # [N, coeff, channel]
    path = str(tmp_path / "g.ply")
    model.save_ply(path)
    vertex = PlyData.read(path)["vertex"]
    assert list(vertex.data.dtype.names) == (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(9)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3", "msk_0", "msk_1"])
    assert all(vertex.data.dtype[name] == np.dtype("<f4") for name in vertex.data.dtype.names)
    # channel-major: f_rest_{c * 3 + i} holds coefficient i of colour channel c
    assert [float(vertex[f"f_rest_{k}"][0]) for k in range(9)] == [0, 1, 2, 100, 101, 102, 200, 201, 202]
    np.testing.assert_array_equal(vertex["opacity"], model.tensors["opacity"][:, 0].detach().numpy())
    np.testing.assert_array_equal(vertex["rot_3"], model.tensors["rotation"][:, 3].detach().numpy())


def write_external_ply(path, n, sh_degree, extra_props=()):
    """A PLY as upstream 3DGS writes it (no msk_*)."""
    names = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
             + [f"f_rest_{i}" for i in range(3 * ((sh_degree + 1) ** 2 - 1))]
             + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"] + list(extra_props))
    data = np.zeros(n, dtype=[(name, "f4") for name in names])
    for i, name in enumerate(names):
        data[name] = np.arange(n) + 1000 * i
    PlyData([PlyElement.describe(data, "vertex")]).write(path)
    return data


def test_external_ply_of_lower_degree_without_masks_loads(tmp_path, capsys):
    path = str(tmp_path / "upstream.ply")
    data = write_external_ply(path, n=5, sh_degree=1)
    model = GaussianModel(3, 3, device="cpu")
    model.load_ply(path)
    out = capsys.readouterr().out
    assert "no msk_*" in out and path in out
    assert torch.equal(model.get_mask, torch.zeros(5, 3))
    rest = model.tensors["f_rest"]
    assert rest.shape == (5, 15, 3) and torch.all(rest[:, 3:] == 0)
    # coefficient 1 of the green channel was f_rest_3 (channel-major, 3 coefficients per channel)
    assert torch.equal(rest[:, 1, 1], torch.tensor(data["f_rest_4"]))
    assert torch.equal(model.get_xyz[:, 2], torch.tensor(data["z"]))

    no_mask_model = GaussianModel(1, 0, device="cpu")
    no_mask_model.load_ply(path)
    assert no_mask_model.get_mask.shape == (5, 0) and capsys.readouterr().out == ""


def test_ply_errors_name_the_file_and_the_fix(tmp_path):
    path = str(tmp_path / "g.ply")
    write_external_ply(path, n=3, sh_degree=3)
    with pytest.raises(DatasetError, match="--sh_degree 3") as err:
        GaussianModel(1, 0, device="cpu").load_ply(path)
    assert path in str(err.value)

    write_external_ply(path, n=3, sh_degree=1, extra_props=["msk_0", "msk_1"])
    with pytest.raises(DatasetError, match="--mask_dimension 2"):
        GaussianModel(1, 3, device="cpu").load_ply(path)

    missing = str(tmp_path / "nope.ply")
    with pytest.raises(DatasetError, match="not found") as err:
        GaussianModel(1, device="cpu").load_ply(missing)
    assert missing in str(err.value)

    random_model(n=50).save_ply(path)
    with open(path, "rb") as f:
        content = f.read()
    with open(path, "wb") as f:
        f.write(content[: len(content) - 300])   # truncated
    with pytest.raises(DatasetError, match="damaged or truncated") as err:
        GaussianModel(1, 2, device="cpu").load_ply(path)
    assert path in str(err.value)

    plain = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1")])
    PlyData([PlyElement.describe(plain, "vertex")]).write(path)
    with pytest.raises(DatasetError, match="not a 3DGS Gaussian PLY"):
        GaussianModel(1, device="cpu").load_ply(path)


def test_ply_with_nan_is_rejected(tmp_path):
    model = random_model(n=4)
    model.replace_tensor("opacity", torch.tensor([[0.0], [float("nan")], [1.0], [2.0]]))
    path = str(tmp_path / "g.ply")
    model.save_ply(path)
    with pytest.raises(DatasetError, match="NaN"):
        GaussianModel(1, 2, device="cpu").load_ply(path)


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / "g.ply")
    random_model(n=5).save_ply(path)
    with open(path, "rb") as f:
        original = f.read()

    def failing_write(self, stream):
        stream.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(PlyData, "write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        random_model(n=9, seed=1).save_ply(path)
    with open(path, "rb") as f:
        assert f.read() == original
    assert os.listdir(tmp_path) == ["g.ply"]


# --- state dict -----------------------------------------------------------------------------
def test_state_dict_resume_is_exact():
    opt = default_opt()
    reference = random_model(n=12)
    reference.training_setup(opt)
    reference.set_position_lr(0.0001)
    reference.set_mask_trainable(True)
    train_steps(reference, [1, 2])
    reference.prune(torch.arange(12) % 3 != 0)
    reference.oneupSHdegree()
    train_steps(reference, [3])

    buffer = io.BytesIO()
    torch.save(reference.state_dict(), buffer)
    buffer.seek(0)
    resumed = GaussianModel(1, 2, device="cpu")
    resumed.load_state_dict(torch.load(buffer, weights_only=False), opt)

    assert resumed.active_sh_degree == 1 and resumed.spatial_lr_scale == 1.5 and resumed.mask_trainable
    assert [g["lr"] for g in resumed.optimizer.param_groups] == [g["lr"] for g in reference.optimizer.param_groups]
    train_steps(reference, [4, 5])
    train_steps(resumed, [4, 5])
    for name in TENSOR_NAMES:
        assert torch.equal(resumed.tensors[name], reference.tensors[name]), name
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(adam_state(resumed, name)[key], adam_state(reference, name)[key]), (name, key)


def test_state_dict_without_training_args_restores_tensors_only():
    model = random_model(n=6)
    restored = GaussianModel(1, 2, device="cpu")
    restored.load_state_dict(model.state_dict())
    assert restored.optimizer is None
    assert all(torch.equal(restored.tensors[n], model.tensors[n]) for n in TENSOR_NAMES)


def test_state_dict_mismatch_is_explained():
    state = random_model(n=3, sh_degree=1).state_dict()
    with pytest.raises(DatasetError, match="--sh_degree 1"):
        GaussianModel(3, 2, device="cpu").load_state_dict(state)
    with pytest.raises(DatasetError, match="not hold EgoMask-GS Gaussians"):
        GaussianModel(1, 2, device="cpu").load_state_dict({"xyz": torch.zeros(3, 3)})
