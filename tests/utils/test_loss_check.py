"""The deferred finite-loss check: a bad step and every later one leave the parameters as they were."""
import math

import pytest
import torch

from utils.loss_check import LossCheck, drop_unapplied_state


def _adam_step(check, optimizer, param, loss_value):
    """One step whose loss term is loss_value (NaN gives NaN gradients too)."""
    loss = (param * loss_value).sum()
    check.record(len(check._pending) + 1, {"color": loss, "total": loss}, context=param.detach().clone())
    loss.backward()
    check.guard(optimizer)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def test_a_deferred_check_skips_the_bad_step_and_every_later_one_until_read():
    param = torch.nn.Parameter(torch.ones(4))
    optimizer = torch.optim.Adam([param], lr=0.1, fused=True)   # fused Adam honours found_inf (CPU too)
    check = LossCheck(torch.device("cpu"), deferred=True)
    _adam_step(check, optimizer, param, 1.0)
    after_good = param.detach().clone()
    assert not torch.equal(after_good, torch.ones(4)) and bool(check.valid)
    _adam_step(check, optimizer, param, float("nan"))
    _adam_step(check, optimizer, param, 1.0)                   # finite, but after the bad one
    assert torch.equal(param.detach(), after_good) and torch.isfinite(param).all()
    assert float(optimizer.state[param]["step"]) == 1           # skipped steps are not counted
    assert not bool(check.valid)
    steps = check.read()
    assert [s.iteration for s in steps] == [1, 2, 3] and check.pending == 0
    assert [s.first_non_finite() for s in steps] == [None, "color", None]
    assert math.isnan(steps[1].values["total"]) and steps[2].values["color"] == pytest.approx(float(after_good.sum()))
    assert torch.equal(steps[1].context, after_good)            # the state recorded before the bad step


def test_an_immediate_check_changes_nothing_in_the_optimizer():
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.Adam([param], lr=0.1)
    check = LossCheck(torch.device("cpu"), deferred=False)
    _adam_step(check, optimizer, param, 2.0)
    assert check.valid is None and not hasattr(optimizer, "found_inf")
    assert [s.values for s in check.read()] == [{"color": 4.0, "total": 4.0}]


def test_state_of_a_parameter_never_stepped_is_dropped():
    used, unused = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.Adam([used, unused], lr=0.1, fused=True)
    check = LossCheck(torch.device("cpu"), deferred=True)
    _adam_step(check, optimizer, used, 1.0)
    optimizer.param_groups[0]["params"] = [used, unused]
    unused.grad = torch.full((2,), float("nan"))
    check.record(2, {"total": torch.tensor(float("nan"))})
    check.guard(optimizer)
    optimizer.step()                                             # skipped: unused gets zero state, step 0
    assert float(optimizer.state[unused]["step"]) == 0
    drop_unapplied_state(optimizer)
    assert unused not in optimizer.state and float(optimizer.state[used]["step"]) == 1
