"""DeformNetwork architecture and DeformModel behaviour: outputs, precision, optimizer, files, resume."""
import os
from types import SimpleNamespace

import pytest
import torch

from scene.deform_model import DeformModel, latest_iteration, resolve_precision
from utils.cuda_graphs import GraphedCalls
from utils.time_utils import DeformNetwork, PositionalEncoding

SMALL = dict(depth=4, width=32, device="cpu", init="pytorch")  # random heads: outputs move


def opt_params(**overrides):
    values = dict(position_lr_init=0.00016, position_lr_final=0.0000016, position_lr_delay_mult=0.01,
                  deform_lr_max_steps=40_000)
    values.update(overrides)
    return SimpleNamespace(**values)


def inputs(n=64, t=0.25):
    return torch.randn(n, 3), torch.full((n, 1), t)


# ---- architecture --------------------------------------------------------------------------
def test_positional_encoding_matches_the_nerf_layout():
    x = torch.randn(7, 3)
    pieces = [x]
    for k in range(10):  # per frequency: sin of every input dim, then cos of every input dim
        pieces += [torch.sin(x * 2.0 ** k), torch.cos(x * 2.0 ** k)]
    assert torch.equal(PositionalEncoding(3, 10)(x), torch.cat(pieces, dim=1))


@pytest.mark.parametrize("is_blender, time_ch", [(False, 21), (True, 30)])
def test_default_network_has_the_upstream_layer_shapes(is_blender, time_ch):
    # Deformable-3DGS: 63 xyz channels + 21 time channels (or the 30 of the Blender time net),
    # 8 layers of 256, the inputs concatenated again after layer 4.
    shapes = {k: tuple(v.shape) for k, v in DeformNetwork(is_blender=is_blender).state_dict().items()}
    inputs_ch = 63 + time_ch
    assert shapes["linear.0.weight"] == (256, inputs_ch)
    assert shapes["linear.5.weight"] == (256, 256 + inputs_ch)
    assert all(shapes[f"linear.{j}.weight"] == (256, 256) for j in (1, 2, 3, 4, 6, 7))
    assert "linear.8.weight" not in shapes
    assert shapes["gaussian_warp.weight"] == (3, 256)
    assert shapes["gaussian_rotation.weight"] == (4, 256)
    assert shapes["gaussian_scaling.weight"] == (3, 256)
    if is_blender:
        assert shapes["timenet.0.weight"] == (256, 13) and shapes["timenet.2.weight"] == (30, 256)
    else:
        assert not any(k.startswith("timenet") for k in shapes)


def test_time_frequencies_set_the_time_encoding_and_smooth_the_motion_in_time():
    torch.manual_seed(0)
    assert DeformNetwork(time_frequencies=3).state_dict()["linear.0.weight"].shape == (256, 63 + 7)
    assert DeformNetwork(is_blender=True, time_frequencies=2).state_dict()["timenet.0.weight"].shape == (256, 5)
    # With few frequencies a random network cannot change much between two close times; the
    # upstream 10 can (its highest frequency has a period of 1/256 of the clip).
    xyz = torch.randn(256, 3)

    def jump(net):
        with torch.no_grad():
            a = net(xyz, torch.full((256, 1), 0.500))[0]
            b = net(xyz, torch.full((256, 1), 0.502))[0]
        return (a - b).abs().mean() / a.abs().mean()
    assert jump(DeformNetwork(D=4, W=64, time_frequencies=2)) * 10 < jump(DeformNetwork(D=4, W=64))


def test_time_frequencies_of_saved_weights_must_match(tmp_path):
    DeformModel(depth=4, width=32, device="cpu", time_frequencies=4).save_weights(str(tmp_path), 1)
    with pytest.raises(RuntimeError, match="--time_frequencies"):
        DeformModel(depth=4, width=32, device="cpu").load_weights(str(tmp_path), 1)
    DeformModel(depth=4, width=32, device="cpu", time_frequencies=4).load_weights(str(tmp_path), 1)


def test_skip_connection_feeds_the_encoded_inputs_again():
    net = DeformNetwork(D=4, W=16)
    seen = {}
    net.linear[3].register_forward_hook(lambda m, args, out: seen.update(input=args[0]))
    x, t = inputs(5)
    net(x, t)
    encoded = net.encode(x, t)
    assert torch.equal(seen["input"][:, :encoded.shape[1]], encoded)


@pytest.mark.parametrize("is_blender", [False, True])
@pytest.mark.parametrize("is_6dof", [False, True])
def test_step_shapes_and_dtype(is_blender, is_6dof):
    model = DeformModel(is_blender, is_6dof, **SMALL)
    d_xyz, d_rotation, d_scaling = model.step(*inputs(10))
    assert d_xyz.shape == ((10, 4, 4) if is_6dof else (10, 3))
    assert d_rotation.shape == (10, 4) and d_scaling.shape == (10, 3)
    assert {d_xyz.dtype, d_rotation.dtype, d_scaling.dtype} == {torch.float32}


def test_6dof_output_is_a_rigid_transform():
    model = DeformModel(is_6dof=True, **SMALL)
    with torch.no_grad():
        model.deform.branch_w.bias.fill_(0.7)  # a clearly non-zero rotation
    T = model.step(*inputs(20))[0].detach()
    R = T[:, :3, :3]
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(20, 3, 3), atol=1e-5)
    assert torch.equal(T[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(20, 4))
    assert (R - torch.eye(3)).abs().max() > 0.1


def test_output_depends_on_time_and_gradients_reach_every_weight():
    model = DeformModel(**SMALL)
    x, _ = inputs(16)
    out0 = model.step(x, torch.zeros(16, 1))
    out1 = model.step(x, torch.ones(16, 1))
    assert not torch.allclose(out0[0], out1[0])
    sum(o.sum() for o in out1).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.deform.parameters())


def test_fixed_sizes_zero_the_scale_offsets_and_leave_the_rest_of_the_motion_as_it_was():
    """--deform_scale off: the same weights give the same position and rotation offsets, no size
    change at any time, and no gradient into the scale head (which stays in the weights' layout)."""
    models = []
    for scale_offsets in (True, False):
        torch.manual_seed(3)
        models.append(DeformModel(**SMALL, scale_offsets=scale_offsets))
    x, t = inputs(32)
    (moving, fixed) = [m.step(x, t) for m in models]
    assert moving[2].abs().min() > 0 and torch.count_nonzero(fixed[2]) == 0
    torch.testing.assert_close(fixed[0], moving[0], rtol=0, atol=0)
    torch.testing.assert_close(fixed[1], moving[1], rtol=0, atol=0)
    for model, out in zip(models, (moving, fixed)):
        sum(o.square().sum() for o in out).backward()
    head = models[1].deform.gaussian_scaling
    assert torch.count_nonzero(head.weight.grad) == 0 and torch.count_nonzero(head.bias.grad) == 0
    assert models[0].deform.gaussian_scaling.weight.grad.abs().sum() > 0
    assert sorted(models[1].deform.state_dict()) == sorted(models[0].deform.state_dict())


def test_for_model_builds_the_network_the_model_flags_describe():
    flags = SimpleNamespace(is_blender=False, is_6dof=False, deform_depth=3, deform_width=24, time_frequencies=2,
                            deform_init="zero", deform_scale="off")
    model = DeformModel.for_model(flags, device="cpu")   # a configuration from before --time_network: auto
    assert model.architecture() == {"is_blender": False, "is_6dof": False, "depth": 3, "width": 24,
                                    "time_frequencies": 2, "time_network": False}
    assert not model.deform.scale_offsets and torch.count_nonzero(model.deform.gaussian_warp.weight) == 0   # zero init
    assert DeformModel.for_model(SimpleNamespace(**{**vars(flags), "deform_scale": "on"})).deform.scale_offsets
    for is_blender, time_network, built in ((False, "on", True), (True, "off", False), (True, "auto", True),
                                            (False, "auto", False)):
        net = DeformModel.for_model(SimpleNamespace(**{**vars(flags), "is_blender": is_blender,
                                                       "time_network": time_network})).deform
        assert net.time_network == built and hasattr(net, "timenet") == built


def test_a_time_network_without_is_blender_changes_how_time_is_encoded_and_saves_its_weights(tmp_path):
    """--time_network on (the default recipe's) puts upstream's Blender time network between the
    encoding and the MLP on any scene: 4 frequencies (9 channels) -> 256 -> 30. Its weights are saved and
    loaded with the rest; a network built without it refuses them with the flag in the message."""
    torch.manual_seed(0)
    net = DeformNetwork(time_frequencies=4, time_network=True)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes["timenet.0.weight"] == (256, 9) and shapes["timenet.2.weight"] == (30, 256)
    assert shapes["linear.0.weight"] == (256, 63 + 30)
    xyz, t = torch.randn(5, 3), torch.full((5, 1), 0.3)
    expected = torch.cat([net.embed_xyz(xyz), net.timenet(net.embed_time(t))], dim=1)
    torch.testing.assert_close(net.encode(xyz, t), expected)
    with_net = DeformModel(time_frequencies=4, time_network=True, **SMALL)
    with_net.save_weights(str(tmp_path), 7)
    again = DeformModel(time_frequencies=4, time_network=True, **SMALL)
    again.load_weights(str(tmp_path), 7)
    for name, value in with_net.deform.state_dict().items():
        assert torch.equal(value, again.deform.state_dict()[name])
    without = DeformModel(time_frequencies=4, time_network=False, **SMALL)
    with pytest.raises(RuntimeError, match="--time_network"):
        without.load_weights(str(tmp_path), 7)


def test_bad_inputs_are_rejected_with_shapes_in_the_message():
    model = DeformModel(**SMALL)
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        model.step(torch.zeros(4, 2), torch.zeros(4, 1))
    with pytest.raises(ValueError, match=r"\[4, 1\]"):
        model.step(torch.zeros(4, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="fp64"):
        DeformModel(precision="fp64", **SMALL)


# ---- precision -----------------------------------------------------------------------------
def test_bf16_is_close_to_fp32_and_returns_fp32():
    fp32 = DeformModel(**SMALL)
    bf16 = DeformModel(precision="bf16", **SMALL)
    bf16.deform.load_state_dict(fp32.deform.state_dict())
    x, t = inputs(32)
    ref, low = fp32.step(x, t), bf16.step(x, t)
    for a, b in zip(ref, low):
        assert b.dtype == torch.float32
        assert torch.allclose(a, b, atol=0.05, rtol=0.05)
    assert bf16.precision in ("bf16", "fp32")  # fp32 fallback comes with a notice
    assert bf16.precision == "bf16" or bf16.notices


def test_tf32_on_cpu_falls_back_with_a_notice_and_leaves_the_flag_alone():
    before = torch.backends.cuda.matmul.allow_tf32
    model = DeformModel(precision="tf32", **SMALL)
    model.step(*inputs(4))
    assert model.precision == "fp32" and "TF32" in model.notices[0]
    assert torch.backends.cuda.matmul.allow_tf32 == before


@pytest.mark.parametrize("requested, device, recorded, expected", [
    ("auto", "cpu", True, "fp32"),     # no TF32 off CUDA, and no notice: fp32 is what auto means there
    ("auto", "cpu", False, "fp32"),
    ("auto", "cuda", True, "tf32"),    # training through the network's recordings
    ("auto", "cuda", False, "fp32"),   # rendering, or training op by op (the switch would reach other matmuls)
    ("tf32", "cpu", False, "tf32"),    # explicit choices pass through (DeformModel falls back with a notice)
    ("bf16", "cuda", True, "bf16"),
    ("fp32", "cuda", True, "fp32"),
])
def test_resolve_precision_settles_auto_by_device_and_recordings(requested, device, recorded, expected):
    assert resolve_precision(requested, device, recorded) == expected


def test_resolve_precision_names_the_choices_for_an_unknown_value():
    with pytest.raises(ValueError, match="auto, fp32, tf32, bf16"):
        resolve_precision("fp16", "cpu", False)


def test_backward_switches_tf32_on_only_without_recordings():
    """train.py wraps loss.backward() in backward_precision_context(): TF32 there only when the
    network's backward runs op by op; with recordings their own kernels carry TF32 and the rest of
    the backward must stay fp32."""
    before = torch.backends.cuda.matmul.allow_tf32
    model = DeformModel(**SMALL)
    model.precision = "tf32"   # as on CUDA (on the CPU the constructor falls back to fp32)
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        with model.backward_precision_context():
            assert torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cuda.matmul.allow_tf32
        model.graphs = GraphedCalls("deformation network")
        with model.backward_precision_context():
            assert not torch.backends.cuda.matmul.allow_tf32
        model.graphs, model.precision = None, "fp32"
        with model.backward_precision_context():
            assert not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.cuda
def test_tf32_is_scoped_to_the_context_on_cuda():
    before = torch.backends.cuda.matmul.allow_tf32
    model = DeformModel(precision="tf32", depth=4, width=32, device="cuda")
    with model.precision_context():
        assert torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cuda.matmul.allow_tf32 == before


# ---- optimizer and schedule ----------------------------------------------------------------
def test_train_setting_starts_at_upstreams_rate_and_set_learning_rate_sets_it():
    model = DeformModel(**SMALL)
    model.train_setting(opt_params())
    assert model.optimizer.defaults["eps"] == 1e-15
    assert model.optimizer.param_groups[0]["lr"] == pytest.approx(0.00016 * 5)
    model.set_learning_rate(0.25)
    assert model.optimizer.param_groups[0]["lr"] == 0.25


def test_set_learning_rate_before_train_setting_says_what_to_do():
    with pytest.raises(RuntimeError, match="train_setting"):
        DeformModel(**SMALL).set_learning_rate(1e-3)


def train_steps(model, steps, x, t):
    for _ in range(steps):
        out = model.step(x, t)
        sum((o ** 2).sum() for o in out).backward()
        model.optimizer_step()


def test_training_reduces_the_loss():
    model = DeformModel(**SMALL)
    model.train_setting(opt_params(position_lr_init=1e-3))
    x, t = inputs(32)
    loss = lambda: sum((o ** 2).sum() for o in model.step(x, t)).item()
    before = loss()
    train_steps(model, 20, x, t)
    assert loss() < 0.5 * before


def test_set_trainable_freezes_weights_and_optimizer_state():
    model = DeformModel(**SMALL)
    model.train_setting(opt_params(position_lr_init=1e-3))
    x, t = inputs(16)
    train_steps(model, 2, x, t)
    weights = {k: v.clone() for k, v in model.deform.state_dict().items()}
    model.set_trainable(False)
    out = model.step(x, t)
    assert not any(o.requires_grad for o in out)
    for _ in range(3):  # the training loop keeps stepping; nothing may move
        model.optimizer_step()
    assert all(torch.equal(weights[k], v) for k, v in model.deform.state_dict().items())
    model.set_trainable(True)
    train_steps(model, 1, x, t)
    assert not all(torch.equal(weights[k], v) for k, v in model.deform.state_dict().items())


def test_state_dict_gives_an_exact_resume():
    x, t = inputs(16)
    reference = DeformModel(**SMALL)
    reference.train_setting(opt_params(position_lr_init=1e-3))
    train_steps(reference, 3, x, t)
    snapshot = reference.state_dict()
    snapshot = {k: (v if not isinstance(v, dict) else _clone(v)) for k, v in snapshot.items()}
    train_steps(reference, 3, x, t)

    resumed = DeformModel(**SMALL)  # different random init
    resumed.train_setting(opt_params(position_lr_init=1e-3))
    resumed.load_state_dict(snapshot)
    train_steps(resumed, 3, x, t)
    for k, v in reference.deform.state_dict().items():
        assert torch.equal(v, resumed.deform.state_dict()[k]), k


def _clone(obj):
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone(v) for v in obj]
    return obj


def test_frozen_flag_survives_a_checkpoint():
    model = DeformModel(**SMALL)
    model.train_setting(opt_params())
    model.set_trainable(False)
    restored = DeformModel(**SMALL)
    restored.train_setting(opt_params())
    restored.load_state_dict(model.state_dict())
    assert restored.trainable is False
    assert not any(p.requires_grad for p in restored.deform.parameters())


# ---- weight files --------------------------------------------------------------------------
def test_save_and_load_weights_round_trip(tmp_path):
    model = DeformModel(**SMALL)
    path = model.save_weights(str(tmp_path), 7000)
    assert path == os.path.join(str(tmp_path), "deform", "iteration_7000", "deform.pth")
    assert os.listdir(os.path.dirname(path)) == ["deform.pth"]  # no temporary file left behind
    other = DeformModel(**SMALL)
    assert other.load_weights(str(tmp_path), 7000) == 7000
    x, t = inputs(8)
    for a, b in zip(model.step(x, t), other.step(x, t)):
        assert torch.equal(a, b)


def test_load_latest_picks_the_numerically_highest_iteration(tmp_path):
    models = {it: DeformModel(**SMALL) for it in (9000, 10000, 500)}
    for it, m in models.items():
        m.save_weights(str(tmp_path), it)
    os.makedirs(tmp_path / "deform" / "iteration_99999")  # empty folder: not a save
    loaded = DeformModel(**SMALL)
    assert loaded.load_weights(str(tmp_path)) == 10000
    assert torch.equal(loaded.deform.linear[0].weight, models[10000].deform.linear[0].weight)
    assert latest_iteration(str(tmp_path / "deform")) == 10000


def test_missing_weights_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="deform"):
        DeformModel(**SMALL).load_weights(str(tmp_path))
    DeformModel(**SMALL).save_weights(str(tmp_path), 100)
    with pytest.raises(FileNotFoundError, match=r"iteration_200.*\[100\]"):
        DeformModel(**SMALL).load_weights(str(tmp_path), 200)


def test_weights_of_another_architecture_are_refused_clearly(tmp_path):
    DeformModel(depth=4, width=32, device="cpu").save_weights(str(tmp_path), 1)
    with pytest.raises(RuntimeError, match="--deform_width"):
        DeformModel(depth=4, width=16, device="cpu").load_weights(str(tmp_path), 1)
    with pytest.raises(RuntimeError, match="missing branch_"):
        DeformModel(is_6dof=True, depth=4, width=32, device="cpu").load_weights(str(tmp_path), 1)


def test_truncated_weights_file_is_reported(tmp_path):
    path = DeformModel(**SMALL).save_weights(str(tmp_path), 5)
    with open(path, "r+b") as f:
        f.truncate(100)
    with pytest.raises(RuntimeError, match="truncated"):
        DeformModel(**SMALL).load_weights(str(tmp_path), 5)


@pytest.mark.parametrize("is_6dof", [False, True])
def test_zero_init_starts_as_the_identity_and_then_learns(is_6dof):
    model = DeformModel(depth=4, width=32, device="cpu", is_6dof=is_6dof)  # init="zero" by default
    x, t = inputs(16)
    d_xyz, d_rotation, d_scaling = model.step(x, t)
    identity = torch.eye(4).expand(16, 4, 4) if is_6dof else torch.zeros(16, 3)
    assert torch.allclose(d_xyz, identity, atol=1e-7)
    assert torch.count_nonzero(d_rotation) == 0 and torch.count_nonzero(d_scaling) == 0
    model.train_setting(opt_params())
    first_layer = model.deform.linear[0].weight
    before = first_layer.detach().clone()
    target = torch.full((16, 3), 0.05)
    for _ in range(30):
        d_xyz, _, _ = model.step(x, t)
        moved = d_xyz[:, :3, 3] if is_6dof else d_xyz
        ((moved - target) ** 2).mean().backward()
        model.optimizer_step()
    assert not torch.equal(first_layer.detach(), before)  # gradients reach the trunk once heads move
    moved = model.step(x, t)[0]
    assert ((moved[:, :3, 3] if is_6dof else moved) - target).abs().mean() < 0.04
    with pytest.raises(ValueError, match="deform_init"):
        DeformModel(depth=2, width=8, device="cpu", init="xavier")


# ---- gated offsets (--deform_gate hand) ---------------------------------------------------------

@pytest.mark.parametrize("is_6dof", [False, True])
def test_gated_offsets_move_only_the_gated_gaussians_and_by_their_share(is_6dof):
    torch.manual_seed(0)
    model = DeformModel(is_6dof=is_6dof, **SMALL)
    xyz = torch.randn(50, 3)
    gate = torch.zeros(50)
    gate[:20] = 1.0
    gate[20:30] = 0.5
    seen = []
    original = model.deform.forward
    model.deform.forward = lambda x, t, g=None: seen.append(x.shape[0]) or original(x, t, g)
    d_xyz, d_rotation, d_scaling = model.offsets(xyz, 0.3, gate=gate)
    assert seen == [30]                              # the network ran on the gated rows only
    full_xyz, full_rotation, full_scaling = model.offsets(xyz, 0.3)  # no gate: every Gaussian, full motion
    assert seen == [30, 50]
    for gated, full in ((d_rotation, full_rotation), (d_scaling, full_scaling)):
        assert torch.equal(gated[30:], torch.zeros_like(gated[30:]))   # static rows: exactly no motion
        assert torch.allclose(gated[:20], full[:20], atol=1e-6)
        assert torch.allclose(gated[20:30], 0.5 * full[20:30], atol=1e-6)
    if is_6dof:
        assert torch.equal(d_xyz[30:], torch.eye(4).expand(20, 4, 4))  # identity transforms
        assert torch.allclose(d_xyz[:20], full_xyz[:20], atol=1e-5)
        assert not torch.allclose(d_xyz[20:30], full_xyz[20:30], atol=1e-3)  # half the screw motion
    else:
        assert torch.equal(d_xyz[30:], torch.zeros(20, 3))
        assert torch.allclose(d_xyz[:20], full_xyz[:20], atol=1e-6)
        assert torch.allclose(d_xyz[20:30], 0.5 * full_xyz[20:30], atol=1e-6)


def test_gated_offsets_pass_gradients_to_the_network_and_not_to_the_centres():
    torch.manual_seed(0)
    model = DeformModel(**SMALL)
    xyz = torch.randn(10, 3, requires_grad=True)
    gate = torch.tensor([1.0] * 5 + [0.0] * 5)
    d_xyz, d_rotation, d_scaling = model.offsets(xyz, torch.tensor(0.5), gate=gate)
    (d_xyz.sum() + d_rotation.sum() + d_scaling.sum()).backward()
    assert xyz.grad is None                          # the canonical centres are detached
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.deform.parameters())


def test_time_noise_is_one_draw_for_every_gaussian():
    torch.manual_seed(0)
    model = DeformModel(**SMALL)
    xyz = torch.randn(8, 3)
    torch.manual_seed(1)
    noisy = model.offsets(xyz, 0.4, noise_std=0.05)[0]
    torch.manual_seed(1)
    shift = torch.randn(1, 1) * 0.05
    assert torch.allclose(noisy, model.step(xyz, torch.full((8, 1), 0.4) + shift)[0])


def test_time_outside_clamp_holds_the_nearest_trained_time_and_extrapolate_does_not():
    torch.manual_seed(0)
    model = DeformModel(**SMALL)
    xyz = torch.randn(16, 3)
    before = [model.offsets(xyz, t)[0] for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert not torch.allclose(before[0], before[1])     # the network does move with time
    cameras = [SimpleNamespace(fid=torch.tensor(t)) for t in (0.5, 0.25, 0.75)]
    model.set_time_outside("clamp", cameras)
    assert model.time_range == (0.25, 0.75)
    after = [model.offsets(xyz, t)[0] for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert torch.equal(after[0], before[1]) and torch.equal(after[4], before[3])   # held at the ends
    for inside in (1, 2, 3):
        assert torch.equal(after[inside], before[inside])                          # inside: unchanged
    model.set_time_outside("extrapolate", cameras)
    assert model.time_range is None and torch.equal(model.offsets(xyz, 0.0)[0], before[0])
    model.set_time_outside("clamp", [])
    assert model.time_range is None
    with pytest.raises(ValueError, match="--time_outside"):
        model.set_time_outside("hold", cameras)


def test_time_outside_linear_continues_the_end_motion_for_one_frame_spacing_then_holds():
    """Trained times 0.25, 0.5, 0.75 (spacing 0.25): t = 0.125 is half a spacing before the first,
    so it gets d(0.25) + 0.5 (d(0.25) - d(0.5)); t = 0 and any earlier time get the full spacing;
    the last end the same way; inside the range the network's own answer. With a gate the same
    holds for the moving rows, and static rows stay exactly at zero."""
    torch.manual_seed(0)
    model = DeformModel(**SMALL)
    xyz = torch.randn(16, 3)
    gate = torch.tensor([0.0, 1.0, 0.5, 0.0] * 4)
    at = {t: [model.offsets(xyz, t, gate=gate)] + [model.offsets(xyz, t)] for t in (0.25, 0.5, 0.75, 0.6)}
    model.set_time_outside("linear", [SimpleNamespace(fid=torch.tensor(t)) for t in (0.5, 0.25, 0.75)])
    assert model.time_range == (0.25, 0.75) and model.inner_times == (0.5, 0.5)

    def expected(end, inner, share, which):
        return [a + share * (a - b) for a, b in zip(at[end][which], at[inner][which])]

    for t, end, share in ((0.125, 0.25, 0.5), (0.0, 0.25, 1.0), (-3.0, 0.25, 1.0), (0.875, 0.75, 0.5), (1.0, 0.75, 1.0)):
        for which, kwargs in ((0, {"gate": gate}), (1, {})):
            got = model.offsets(xyz, torch.tensor(t), **kwargs)
            for g, e in zip(got, expected(end, 0.5, share, which)):
                assert torch.allclose(g, e, atol=1e-6), (t, which)
    got = model.offsets(xyz, 0.0, gate=gate)
    assert model.last_rows == 2 * int((gate > 0).sum())                     # two evaluations, moving rows only
    assert all(torch.equal(o[gate == 0], torch.zeros_like(o[gate == 0])) for o in got)
    assert not torch.allclose(got[0], at[0.25][0][0])                       # it does move past the end
    inside = model.offsets(xyz, 0.6)
    assert all(torch.equal(a, b) for a, b in zip(inside, at[0.6][1]))      # inside: unchanged
    model.set_time_outside("linear", [SimpleNamespace(fid=torch.tensor(0.5))])
    assert model.inner_times is None and torch.equal(model.offsets(xyz, 0.0)[0], at[0.5][1][0])   # one time: held



# ---- CUDA graphs ----------------------------------------------------------------------------
def test_bucket_rows_holds_the_rows_with_at_most_a_quarter_of_padding_and_few_sizes():
    from scene.deform_model import MIN_BUCKET_ROWS, bucket_rows
    sizes = set()
    for m in list(range(1, 3000, 7)) + list(range(3000, 400_000, 997)):
        b = bucket_rows(m)
        assert b >= m and (b <= 1.25 * m or b == MIN_BUCKET_ROWS)
        sizes.add(b)
    assert len(sizes) <= 4 * 9 + 1   # four sizes per doubling from 1024 to 400k


@pytest.mark.cuda
@pytest.mark.parametrize("gated, scale_offsets", [(True, True), (False, True), (True, False)],
                         ids=["hand_gate", "every_gaussian", "hand_gate_fixed_sizes"])
def test_offsets_and_network_gradients_through_recorded_graphs_equal_the_network_run_op_by_op(gated, scale_offsets):
    models = []
    for graphs in (True, False):
        torch.manual_seed(0)
        model = DeformModel(depth=4, width=64, device="cuda", init="pytorch", scale_offsets=scale_offsets)
        model.train_setting(opt_params())
        model.use_cuda_graphs(graphs)
        models.append(model)
    from scene.deform_model import bucket_rows
    g = torch.Generator(device="cuda").manual_seed(1)
    buckets = []
    for n in (900, 3500, 4000, 900):   # three buckets, then the first again, dropped by then (two kept)
        xyz = torch.randn(n, 3, device="cuda", generator=g)
        gate = (torch.rand(n, device="cuda", generator=g) - 0.3).clamp(0, 1) if gated else None
        upstream = torch.randn(n, 10, device="cuda", generator=g)
        results = []
        for model in models:
            offsets = model.offsets(xyz, 0.37, gate=gate)
            (torch.cat([o.reshape(n, -1) for o in offsets], dim=1) * upstream).sum().backward()
            grads = [p.grad.clone() for p in model.deform.parameters()]
            model.optimizer.zero_grad(set_to_none=True)
            results.append(([o.detach().clone() for o in offsets], grads))
        buckets.append(bucket_rows(models[0].last_rows))
        (graphed, graphed_grads), (eager, eager_grads) = results
        for a, b in zip(graphed, eager):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        for a, b in zip(graphed_grads, eager_grads):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert len(set(buckets[:3])) == 3 and buckets[3] == buckets[0]
    assert models[0].graphs.recordings_made == 4 and models[0].graphs.failure is None
    assert models[1].graphs is None
    models[0].set_trainable(False)   # frozen (stop_MLP): its recordings are of no more use
    assert not models[0].graphs._recordings


@pytest.mark.cuda
def test_steps_without_moving_rows_then_with_them_record_the_network_without_failure():
    # As in training before the hand feature has learned: the gate is zero everywhere for a few
    # steps, then some rows move; the previous step's offsets are still alive when they do.
    model = DeformModel(depth=4, width=64, device="cuda", init="pytorch")
    model.train_setting(opt_params())
    model.use_cuda_graphs(True)
    g = torch.Generator(device="cuda").manual_seed(2)
    xyz = torch.randn(500, 3, device="cuda", generator=g)
    kept = []
    for gate in (torch.zeros(500, device="cuda"), torch.zeros(500, device="cuda"),
                 torch.rand(500, device="cuda", generator=g)):
        offsets = model.offsets(xyz, 0.3, noise_std=0.01, gate=gate)
        sum(o.square().sum() for o in offsets).backward()
        model.optimizer_step()
        kept.append(offsets)
    assert model.graphs.failure is None and model.graphs.recordings_made == 1   # one bucket throughout
    assert all(torch.count_nonzero(o) == 0 for o in kept[0])
    assert torch.count_nonzero(kept[2][0]) > 0


def test_the_command_lines_choices_are_the_models():
    """arguments/ (which imports no scene code) lists the flags' choices; DeformModel validates them:
    one set of values for both."""
    from arguments import ModelParams, PipelineParams
    from scene.deform_model import INITS, PRECISION_CHOICES, TIME_OUTSIDE
    assert tuple(PipelineParams.choices["deform_precision"]) == PRECISION_CHOICES
    assert tuple(ModelParams.choices["deform_init"]) == INITS
    assert tuple(ModelParams.choices["time_outside"]) == TIME_OUTSIDE
