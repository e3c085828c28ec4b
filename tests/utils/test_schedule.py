"""TrainingSchedule over whole runs: phase boundaries, weights, what learns, notices, validation."""
import math
from types import SimpleNamespace

import pytest

from utils.schedule import TrainingSchedule

DEFAULTS = dict(iterations=40_000, warm_up=3_000, mask_start=30_000, mask_stop=40_000, stop_MLP=40_000,
                loss_reduce=0.5, lambda_dssim=0.2, time_noise_steps=20_000, position_lr_init=0.00016,
                position_lr_final=0.0000016, position_lr_delay_mult=0.01, position_lr_max_steps=30_000,
                deform_lr_max_steps=40_000)


def opt(**overrides):
    return SimpleNamespace(**{**DEFAULTS, **overrides})


def expected_phase(o, it, has_masks=True, has_depth=True, is_blender=False):
    """The rules of EgoMask's train.py written out plainly, per iteration."""
    in_mask = o.mask_start <= it <= o.mask_stop
    in_depth = o.warm_up <= it < o.mask_start
    depth = (0.2 if in_mask else 0.5 if in_depth else 0.0) * o.loss_reduce
    return dict(deform=it >= o.warm_up,
                color_weight=1.0,
                depth_weight=depth if has_depth else 0.0,
                mask_weight=0.8 * o.loss_reduce if in_mask and has_masks else 0.0,
                train_mask_feature=in_mask and has_masks,
                train_deform=o.warm_up <= it < o.stop_MLP,
                time_noise=it >= o.warm_up and not is_blender)


CONFIGS = [
    opt(),
    opt(iterations=20, warm_up=3, mask_start=10, mask_stop=15, stop_MLP=12),     # colour tail after 15
    opt(iterations=12, warm_up=1, mask_start=1, mask_stop=12, stop_MLP=6),       # no depth-only phase
    opt(iterations=30, warm_up=8, mask_start=4, mask_stop=20, stop_MLP=31),      # masks before warm-up
    opt(iterations=25, warm_up=0, mask_start=5, mask_stop=5, stop_MLP=25, loss_reduce=2.0),  # 1-iteration mask phase
]


@pytest.mark.parametrize("o", CONFIGS, ids=lambda o: f"it{o.iterations}")
@pytest.mark.parametrize("has_masks, has_depth, is_blender",
                         [(True, True, False), (False, True, False), (True, False, True), (False, False, False)])
def test_every_iteration_follows_the_rules(o, has_masks, has_depth, is_blender):
    schedule = TrainingSchedule(o, has_masks=has_masks, has_depth=has_depth, is_blender=is_blender)
    for it in range(1, o.iterations + 1):
        p = schedule.phase(it)
        got = {k: getattr(p, k) for k in expected_phase(o, it)}
        assert got == expected_phase(o, it, has_masks, has_depth, is_blender), it


def transitions(schedule, field, iterations):
    """[(iteration, value)] wherever `field` changes, starting at iteration 1."""
    changes, last = [], object()
    for it in range(1, iterations + 1):
        value = getattr(schedule.phase(it), field)
        if value != last:
            changes.append((it, value))
            last = value
    return changes


def test_default_phases_are_entered_exactly_where_egomask_enters_them():
    schedule = TrainingSchedule(opt(), has_masks=True, has_depth=True)
    assert transitions(schedule, "name", 40_000) == [(1, "warm-up"), (3000, "depth"), (30000, "mask")]
    assert transitions(schedule, "deform", 40_000) == [(1, False), (3000, True)]
    assert transitions(schedule, "depth_weight", 40_000) == [(1, 0.0), (3000, 0.25), (30000, 0.1)]
    assert transitions(schedule, "mask_weight", 40_000) == [(1, 0.0), (30000, 0.4)]
    assert transitions(schedule, "train_mask_feature", 40_000) == [(1, False), (30000, True)]
    assert transitions(schedule, "train_deform", 40_000) == [(1, False), (3000, True), (40000, False)]
    assert {schedule.phase(it).color_weight for it in range(1, 40_001, 997)} == {1.0}


def test_colour_tail_after_mask_stop():
    schedule = TrainingSchedule(opt(mask_stop=35_000, stop_MLP=32_000), has_masks=True, has_depth=True)
    assert transitions(schedule, "name", 40_000) == [(1, "warm-up"), (3000, "depth"), (30000, "mask"),
                                                     (35001, "colour")]
    assert transitions(schedule, "train_deform", 40_000) == [(1, False), (3000, True), (32000, False)]
    tail = schedule.phase(35_001)
    assert (tail.depth_weight, tail.mask_weight, tail.train_mask_feature, tail.deform) == (0.0, 0.0, False, True)


def test_missing_data_zeroes_its_weights_and_says_so_once():
    schedule = TrainingSchedule(opt(), has_masks=False, has_depth=False)
    assert all(schedule.phase(it).depth_weight == 0 and schedule.phase(it).mask_weight == 0
               and not schedule.phase(it).train_mask_feature for it in range(1, 40_001, 7))
    assert len(schedule.notices) == 2
    masks, depth = schedule.notices
    assert masks.startswith("No hand masks") and "30000–40000" in masks
    assert depth.startswith("No depth priors") and "3000–40000" in depth
    assert TrainingSchedule(opt(), has_masks=True, has_depth=True).notices == []


def test_short_run_notices_unreached_phases():
    schedule = TrainingSchedule(opt(iterations=100), has_masks=True, has_depth=True)
    assert not any(schedule.phase(it).deform for it in range(1, 101))
    assert any("never trained (static scene)" in n for n in schedule.notices)
    assert any("mask_start (30000)" in n for n in schedule.notices)
    # no "no data" notice about phases the run never reaches
    assert not any(n.startswith("No depth") for n in TrainingSchedule(opt(iterations=100), True, False).notices)


def test_time_noise_follows_the_upstream_linear_ramp():
    schedule = TrainingSchedule(opt(), has_masks=True, has_depth=True)
    assert schedule.time_noise_scale(0) == pytest.approx(0.1)
    assert schedule.time_noise_scale(5_000) == pytest.approx(0.075)
    assert schedule.time_noise_scale(10_000) == pytest.approx(0.05)
    assert schedule.time_noise_scale(20_000) == pytest.approx(1e-15, abs=1e-20)
    assert schedule.time_noise_scale(35_000) == pytest.approx(1e-15, abs=1e-20)
    assert schedule.time_noise_std(2_999, num_frames=50) == 0.0          # before warm-up
    assert schedule.time_noise_std(4_000, num_frames=50) == pytest.approx(0.08 / 50)
    blender = TrainingSchedule(opt(), has_masks=False, has_depth=False, is_blender=True)
    assert blender.time_noise_std(4_000, num_frames=50) == 0.0


@pytest.mark.parametrize("time_noise, is_blender, noisy", [("auto", False, True), ("auto", True, False),
                                                           ("off", False, False), ("on", True, True)])
def test_time_noise_flag_overrides_upstreams_blender_rule(time_noise, is_blender, noisy):
    """--time_noise off (the default recipe's) trains every step at its camera's own time; auto is
    upstream's (noise except on Blender scenes); on forces it."""
    schedule = TrainingSchedule(opt(time_noise=time_noise), has_masks=True, has_depth=True, is_blender=is_blender)
    assert schedule.phase(4_000).time_noise == noisy
    assert (schedule.time_noise_std(4_000, num_frames=50) > 0) == noisy
    assert not schedule.phase(2_000).time_noise   # never before the deformation starts


def test_segments_cover_the_run_and_agree_with_phase():
    for o in CONFIGS:
        schedule = TrainingSchedule(o, has_masks=True, has_depth=False)
        segments = schedule.segments()
        assert segments[0][0] == 1 and segments[-1][1] == o.iterations
        for (first, last, phase), nxt in zip(segments, segments[1:] + [None]):
            assert all(schedule.phase(it) == phase for it in range(first, last + 1))
            if nxt is not None:
                assert nxt[0] == last + 1 and nxt[2] != phase
        assert len(schedule.describe()) == len(segments)


@pytest.mark.parametrize("overrides, message", [
    (dict(mask_start=30_000, mask_stop=20_000), "mask_start"),
    (dict(iterations=0), "iterations"),
    (dict(warm_up=-1), "warm_up"),
    (dict(stop_MLP=3_000), "stop_MLP"),
    (dict(stop_MLP=100), "stop_MLP"),
    (dict(loss_reduce=-0.5), "loss_reduce"),
    (dict(lambda_dssim=1.5), "lambda_dssim"),
    (dict(time_noise_steps=0), "time_noise_steps"),
])
def test_inconsistent_configurations_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainingSchedule(opt(**overrides), has_masks=True, has_depth=True)


def test_stop_mlp_before_warm_up_is_fine_when_deformation_never_starts():
    TrainingSchedule(opt(iterations=50, stop_MLP=10), has_masks=True, has_depth=True)


@pytest.mark.parametrize("o", CONFIGS, ids=lambda o: f"it{o.iterations}")
@pytest.mark.parametrize("has_masks", [True, False])
def test_early_mask_weight_teaches_the_hand_feature_from_the_first_iteration(o, has_masks):
    early = SimpleNamespace(**{**vars(o), "early_mask_weight": 0.1})
    schedule = TrainingSchedule(early, has_masks=has_masks, has_depth=True)
    for it in range(1, o.iterations + 1):
        p = schedule.phase(it)
        if it < o.mask_start:
            weight, learns = 0.1 * o.loss_reduce, True
        elif it <= o.mask_stop:
            weight, learns = 0.8 * o.loss_reduce, True
        else:
            weight, learns = 0.0, False
        assert p.mask_weight == pytest.approx(weight if has_masks else 0.0), it
        assert p.train_mask_feature == (learns and has_masks), it
        # the rest of the phase is the paper's
        paper = expected_phase(o, it, has_masks)
        assert (p.deform, p.depth_weight, p.train_deform) == (paper["deform"], paper["depth_weight"],
                                                              paper["train_deform"]), it


def test_a_negative_early_mask_weight_is_refused():
    with pytest.raises(ValueError, match="--early_mask_weight"):
        TrainingSchedule(opt(early_mask_weight=-0.1), has_masks=True, has_depth=True)


def test_the_sh_degree_rises_every_thousand_iterations():
    from utils.schedule import SH_UP_INTERVAL
    schedule = TrainingSchedule(opt(), has_masks=True, has_depth=True)
    assert [i for i in range(1, 3001) if schedule.raises_sh_degree(i)] == [1000, 2000, 3000] and SH_UP_INTERVAL == 1000


def test_learning_rates_decay_as_upstream():
    schedule = TrainingSchedule(opt(), has_masks=True, has_depth=True)   # train.py's defaults
    init, final = 0.00016 * 1.5, 0.0000016 * 1.5                         # scene extent 1.5
    assert schedule.position_lr(0, 1.5) == pytest.approx(init, rel=1e-12)
    assert schedule.position_lr(15_000, 1.5) == pytest.approx(math.sqrt(init * final), rel=1e-12)  # log-linear
    assert schedule.position_lr(30_000, 1.5) == pytest.approx(final, rel=1e-12)   # position_lr_max_steps
    assert schedule.position_lr(40_000, 1.5) == pytest.approx(final, rel=1e-12)
    # The deformation network: 5x the initial rate, down to the plain final one over deform_lr_max_steps.
    assert schedule.deform_lr(0) == pytest.approx(0.00016 * 5)
    assert schedule.deform_lr(20_000) == pytest.approx((0.0008 * 0.0000016) ** 0.5)
    assert schedule.deform_lr(40_000) == pytest.approx(0.0000016)
    assert schedule.deform_lr(80_000) == pytest.approx(0.0000016)
