"""The hands/static rule on hand-made mask features."""
import argparse

import numpy as np
import pytest
import torch

from scene.decomposition import add_decomposition_args, decompose, percentile, select_hands


def test_threshold_rule_uses_channel_mean():
    features = torch.tensor([
        [1.0, 1.0, 1.0],    # clearly hand
        [0.0, 0.0, 0.0],    # clearly scene
        [0.9, 0.9, -0.4],   # mean 0.47: just below the threshold
        [1.5, 0.0, 0.2],    # mean 0.567: hand although two channels are low
        [0.4, 0.4, 0.4],
    ])
    hands = select_hands(features, "threshold", threshold=0.5)
    assert hands.tolist() == [True, False, False, True, False]
    assert select_hands(features, "threshold", threshold=0.3).tolist() == [True, False, True, True, True]


def test_percentile_rule_takes_the_top_scores_of_summed_abs_feature():
    # scores Σ|m| are 0..19: the 85th percentile is 16.15, so 17, 18, 19 are hands
    scores = torch.arange(20, dtype=torch.float32)
    features = torch.stack([scores / 2, -scores / 2], dim=1)[torch.randperm(20)]
    hands = select_hands(features, "percentile", hand_percentile=85)
    chosen = features.abs().sum(1)[hands]
    assert sorted(chosen.tolist()) == [17.0, 18.0, 19.0]


def test_percentile_matches_numpy():
    values = torch.randn(101)
    for q in (0, 12.5, 50, 85, 100):
        assert float(percentile(values, q)) == pytest.approx(np.percentile(values.numpy(), q), abs=1e-6)


@pytest.mark.parametrize("rule", ["threshold", "percentile"])
def test_static_and_hands_are_complementary(rule):
    features = torch.rand(500, 3)
    split = decompose(features, rule)
    assert torch.equal(split.static | split.hands, torch.ones(500, dtype=torch.bool))
    assert not bool((split.static & split.hands).any())
    assert 0 < split.num_hands < 500


@pytest.mark.parametrize("rule", ["threshold", "percentile"])
def test_zero_and_one_gaussian(rule):
    empty = decompose(torch.zeros(0, 3), rule)
    assert empty.hands.shape == (0,) and empty.static.shape == (0,)
    one = decompose(torch.ones(1, 3), rule)
    assert one.hands.shape == (1,)
    assert bool(one.hands[0]) != bool(one.static[0])
    if rule == "threshold":
        assert one.hands.tolist() == [True]


def test_no_mask_dimension_means_all_static_with_notice():
    split = decompose(torch.zeros(7, 0), "threshold")
    assert split.static.all() and not split.hands.any()
    assert split.notice is not None and "mask_dimension 0" in split.notice


def test_flags_validate_their_values(capsys):
    parser = argparse.ArgumentParser()
    add_decomposition_args(parser)
    args = parser.parse_args(["--hand_rule", "percentile", "--hand_percentile", "90"])
    assert (args.hand_rule, args.hand_percentile) == ("percentile", 90.0)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--hand_percentile", "150"])
    assert exit_info.value.code == 2
    assert "150" in capsys.readouterr().err
    with pytest.raises(ValueError, match="Unknown hand rule"):
        select_hands(torch.ones(2, 3), "majority")


# ---------------------------------------------------------------- motion gate and hand pixels

def test_hand_score_and_motion_gate():
    from scene.decomposition import hand_score, motion_gate
    features = torch.tensor([[0.0, 0.0], [0.2, 0.4], [0.5, 0.5], [1.0, 0.6], [1.2, 1.0]])
    assert hand_score(features).tolist() == pytest.approx([0.0, 0.3, 0.5, 0.8, 1.1])
    # 0 up to 0.25, linear to 1 at 0.75, 1 beyond
    assert motion_gate(features).tolist() == pytest.approx([0.0, 0.1, 0.5, 1.0, 1.0])
    assert motion_gate(features, low=0.4, high=0.6).tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])
    assert hand_score(torch.zeros(4, 0)).tolist() == [0.0] * 4


def test_deformation_gate_follows_the_flag():
    from scene.decomposition import deformation_gate

    class Model:
        def __init__(self, k):
            self.mask_dimension = k
            self.get_mask = torch.full((3, k), 0.75)

    hand = argparse.Namespace(deform_gate="hand", gate_low=0.25, gate_high=0.75)
    assert deformation_gate(Model(3), hand).tolist() == [1.0, 1.0, 1.0]
    assert deformation_gate(Model(3), argparse.Namespace(deform_gate="none")) is None
    assert deformation_gate(Model(0), hand) is None          # no hand feature: everything deforms
    assert deformation_gate(Model(3), argparse.Namespace()) is None  # configs saved before the gate


def test_segment_hand_map_fills_holes_and_drops_specks():
    from scene.decomposition import segment_hand_map
    hand_map = torch.zeros(1, 40, 40)
    hand_map[0, 5:25, 5:25] = 0.9      # a hand ...
    hand_map[0, 12:16, 12:16] = 0.1    # ... with a hole the opening/closing kernel cannot close
    hand_map[0, 33:35, 33:35] = 1.0    # a 2x2 speck: smaller than the 3x3 opening
    hand_map[0, 30:40, 0:1] = 1.0      # a 1-px line: removed by the opening
    pixels = segment_hand_map(hand_map, kernel=3)
    expected = torch.zeros(1, 40, 40, dtype=torch.bool)
    expected[0, 5:25, 5:25] = True
    assert pixels.dtype == torch.bool and torch.equal(pixels, expected)


def test_hand_pixels_layer_follows_the_hands_layer_and_map_the_hand_feature():
    """Feature and layer disagree on purpose: a static Gaussian's stray feature makes the map claim
    the right square; hand Gaussians whose feature is only 0.4 leave the map under 0.5 on the left
    square, which the hands layer covers. Each rule returns its own square, cleaned."""
    from scene.decomposition import hand_pixels
    hand_map = torch.zeros(1, 30, 60)
    hands_alpha = torch.zeros(1, 30, 60)
    hands_alpha[0, 5:25, 5:25] = 0.9
    hand_map[0, 5:25, 5:25] = 0.4
    hand_map[0, 5:25, 35:55] = 0.8
    hand_map[0, 1, 1] = 0.9            # a speck the clean-up removes
    left = torch.zeros(1, 30, 60, dtype=torch.bool)
    left[0, 5:25, 5:25] = True
    right = torch.zeros(1, 30, 60, dtype=torch.bool)
    right[0, 5:25, 35:55] = True
    assert torch.equal(hand_pixels("layer", hand_map, hands_alpha, kernel=3), left)
    assert torch.equal(hand_pixels("map", hand_map, hands_alpha, kernel=3), right)
    with pytest.raises(ValueError, match="--hand_pixels"):
        hand_pixels("alpha", hand_map, hands_alpha)


def test_segment_hand_map_drops_pieces_below_the_minimum_area():
    from scene.decomposition import MIN_PIECE_FRACTION, segment_hand_map
    hand_map = torch.zeros(1, 100, 100)
    hand_map[0, 10:60, 10:60] = 1.0
    side = int((MIN_PIECE_FRACTION * 100 * 100) ** 0.5)   # a square just below the minimum area
    hand_map[0, 80:80 + side - 1, 80:80 + side] = 1.0
    pixels = segment_hand_map(hand_map, kernel=1)
    assert pixels[0, 10:60, 10:60].all() and int(pixels.sum()) == 50 * 50


def test_gate_rule_shares_each_opacity_between_the_layers_by_the_motion_gate():
    from scene.decomposition import decompose_model, motion_gate

    class Model:
        mask_dimension = 2
        get_mask = torch.tensor([[0.0, 0.0], [0.2, 0.4], [0.5, 0.5], [1.0, 0.6], [1.2, 1.0]])
        get_xyz = torch.zeros(5, 3)

    flags = dict(hand_rule="gate", hand_threshold=0.5, hand_percentile=85.0, gate_low=0.25, gate_high=0.75)
    split = decompose_model(Model(), argparse.Namespace(deform_gate="hand", **flags))
    gate = motion_gate(Model.get_mask)
    assert torch.equal(split.hands_weight, gate) and torch.equal(split.static_weight, 1.0 - gate)
    assert split.hands.tolist() == [False, False, True, True, True] and torch.equal(split.static, ~split.hands)
    assert split.rule == "gate" and split.notice is None
    # a model trained without the gate has no layers to share: the threshold rule, said once
    fallback = decompose_model(Model(), argparse.Namespace(deform_gate="none", **flags))
    assert fallback.rule == "threshold" and fallback.hands_weight is None and "--deform_gate hand" in fallback.notice
