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
