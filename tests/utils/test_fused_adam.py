"""FusedAdam: torch's fused Adam, step for step, with less host work."""
import pytest
import torch

from utils.fused_adam import FusedAdam


def _twins(seed=0):
    """The same parameters under torch's fused Adam and under FusedAdam, one group each, lrs apart."""
    g = torch.Generator().manual_seed(seed)
    values = [torch.randn(5, 3, generator=g) for _ in range(4)]
    made = []
    for optimizer_class, kwargs in ((torch.optim.Adam, {"fused": True}), (FusedAdam, {})):
        params = [torch.nn.Parameter(v.clone()) for v in values]
        groups = [{"params": [p], "lr": 0.01 * (i + 1), "name": str(i)} for i, p in enumerate(params)]
        made.append((params, optimizer_class(groups, lr=0.0, eps=1e-15, **kwargs)))
    return made


def _step(pairs, grads, found_inf=None):
    for params, optimizer in pairs:
        for p, grad in zip(params, grads):
            p.grad = None if grad is None else grad.clone()
        if found_inf is not None:
            optimizer.found_inf = found_inf
        optimizer.step()


def test_updates_and_state_equal_torchs_fused_adam_bit_for_bit():
    pairs = _twins()
    g = torch.Generator().manual_seed(1)
    skip, keep = torch.ones(()), torch.zeros(())
    for step in range(6):
        grads = [torch.randn(5, 3, generator=g) for _ in range(4)]
        grads[2] = None if step < 2 else grads[2]           # a parameter without gradient: untouched
        _step(pairs, grads, found_inf=skip if step == 4 else keep)   # step 4 skipped (utils/loss_check.py)
    (torch_params, torch_adam), (our_params, our_adam) = pairs
    for a, b in zip(torch_params, our_params):
        assert torch.equal(a, b)
    ours, theirs = our_adam.state_dict()["state"], torch_adam.state_dict()["state"]
    assert ours.keys() == theirs.keys() and float(ours[0]["step"]) == 5 and float(ours[2]["step"]) == 3
    for index in theirs:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(ours[index][name], theirs[index][name]), (index, name)


def test_state_dict_round_trips_through_torchs_adam():
    (_, torch_adam), (params, our_adam) = _twins()
    _step([(params, our_adam)], [torch.ones(5, 3)] * 4)
    torch_adam.load_state_dict(our_adam.state_dict())          # a checkpoint resumed with --adam plain
    assert float(torch_adam.state_dict()["state"][1]["step"]) == 1
    with pytest.raises(ValueError, match="closure"):
        our_adam.step(lambda: 0.0)
