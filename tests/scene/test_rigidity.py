"""NeighbourDistances: the moving Gaussians' neighbour pairs and the distance-keeping loss."""
import math

import pytest
import torch

from scene.rigidity import NeighbourDistances


def cloud(n=200, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=g, dtype=torch.float64) * scale


def rotation_z(angle):
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def test_pairs_join_each_anchor_to_its_nearest_moving_gaussians_only():
    xyz = cloud()
    gate = torch.zeros(200, dtype=torch.float64)
    gate[50:150] = 0.6                                    # only these may move
    pairs = NeighbourDistances(anchors=30, neighbours=3)
    pairs.refresh(xyz, gate, seed=1)
    assert pairs.first.numel() == 90 and not pairs.stale(200) and pairs.stale(201)
    assert ((pairs.first >= 50) & (pairs.first < 150)).all() and ((pairs.second >= 50) & (pairs.second < 150)).all()
    assert (pairs.first != pairs.second).all()
    moving = torch.arange(50, 150)
    for anchor in pairs.first.unique():
        others = moving[moving != anchor]
        truth = (xyz[others] - xyz[anchor]).norm(dim=1).sort().values[:3]
        got = pairs.rest[pairs.first == anchor].sort().values
        torch.testing.assert_close(got, truth)
    again = NeighbourDistances(anchors=30, neighbours=3)
    again.refresh(xyz, gate, seed=1)                      # same seed: the same pairs
    assert torch.equal(again.first, pairs.first) and torch.equal(again.second, pairs.second)


def test_a_rigid_motion_costs_nothing_and_a_split_costs_its_relative_size():
    xyz = cloud()
    pairs = NeighbourDistances(anchors=200, neighbours=4)
    pairs.refresh(xyz, None, seed=0)
    moved = xyz @ rotation_z(0.7).T + torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64)
    assert pairs.loss(moved, None).abs() < 1e-9
    parked = xyz.clone()
    parked[::2] += torch.tensor([5.0, 0.0, 0.0], dtype=torch.float64)   # every other Gaussian parked away
    assert pairs.loss(parked, None) > 1.0
    # no unit: the same scene 100x larger, moved the same way, costs the same
    big = NeighbourDistances(anchors=200, neighbours=4)
    big.refresh(xyz * 100, None, seed=0)
    stretched = xyz * torch.tensor([1.2, 1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(big.loss(stretched * 100, None), pairs.loss(stretched, None))


def test_the_loss_weighs_each_pair_by_its_smaller_gate():
    xyz = cloud(n=40)
    gate = torch.ones(40, dtype=torch.float64)
    pairs = NeighbourDistances(anchors=40, neighbours=2)
    pairs.refresh(xyz, gate, seed=0)
    moved = xyz.clone()
    moved[:20] += 1.0                                     # pairs across the cut change length
    half = gate.clone()
    half[:20] = 0.0                                       # ... and with a zero gate they do not count
    inside_only = [(a >= 20 and b >= 20) for a, b in zip(pairs.first.tolist(), pairs.second.tolist())]
    assert any(inside_only) and not all(inside_only)
    assert pairs.loss(moved, gate) > 0.1
    assert pairs.loss(moved, half).abs() < 1e-9


def test_gradients_are_finite_for_a_pair_at_one_place():
    xyz = cloud(n=20)
    xyz[1] = xyz[0]                                       # a fresh clone
    pairs = NeighbourDistances(anchors=20, neighbours=2)
    pairs.refresh(xyz, None, seed=0)
    moving = xyz.clone().requires_grad_(True)
    pairs.loss(moving, None).backward()
    assert torch.isfinite(moving.grad).all()


def test_too_few_moving_gaussians_give_no_pairs_and_no_loss():
    xyz = cloud(n=10)
    gate = torch.zeros(10, dtype=torch.float64)
    gate[:3] = 1.0
    pairs = NeighbourDistances(anchors=8, neighbours=4)
    pairs.refresh(xyz, gate, seed=0)
    assert not pairs.ready and not pairs.stale(10)        # remembered: not remade every step
    assert pairs.loss(xyz, gate) == 0.0


def test_state_dict_round_trip_and_bad_sizes():
    xyz = cloud(n=50)
    pairs = NeighbourDistances(anchors=10, neighbours=3)
    pairs.refresh(xyz, None, seed=4)
    copy = NeighbourDistances(anchors=10, neighbours=3)
    copy.load_state_dict(pairs.state_dict(), "cpu")
    moved = xyz * 1.1
    assert torch.equal(copy.loss(moved, None), pairs.loss(moved, None)) and copy.count == 50
    empty = NeighbourDistances()
    empty.load_state_dict(NeighbourDistances().state_dict(), "cpu")
    assert not empty.ready and empty.stale(0)
    with pytest.raises(ValueError, match="neighbours"):
        NeighbourDistances(anchors=4, neighbours=0)
