"""GraphedCalls: a function's forward and backward replayed as CUDA graphs give what the function
gives, for every new input; off the GPU it simply runs."""
import pytest
import torch

from utils.cuda_graphs import GraphedCalls


def smooth(x, w):
    """A few dozen small kernels, a gradient for both inputs."""
    y = x
    for _ in range(6):
        y = torch.tanh(y * w + 0.1) + 0.5 * y
    return {"total": (y * y).mean(), "peak": y.detach().amax()}


def run(calls, x, w, key="k"):
    x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
    out = calls(key, lambda: smooth, [x, w])
    out["total"].backward()
    return out["total"].detach().clone(), out["peak"].clone(), x.grad.clone(), w.grad.clone()


def test_off_the_gpu_the_function_runs_unrecorded():
    calls = GraphedCalls("test")
    x, w = torch.randn(8, 5), torch.randn(5)
    got = run(calls, x, w)
    want = run(GraphedCalls("test"), x, w)
    assert calls.recordings_made == 0 and calls.failure is None
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_no_garbage_collection_runs_while_a_recording_is_made(monkeypatch):
    """A recording let go earlier lives in reference cycles; were the collector to free it during
    a capture, the capture would fail. _record collects first and holds the collector off until
    the recording is made (or has failed), then restores it."""
    import gc
    seen = []

    def fake_record(fn, samples, allow_unused_input):
        seen.append(gc.isenabled())
        if len(seen) == 2:
            raise RuntimeError("capture failed")
        return fn
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", fake_record)
    monkeypatch.setattr("utils.cuda_graphs._release_random_generator", lambda device: None)
    calls = GraphedCalls("test")
    assert gc.isenabled()
    assert calls._record("a", smooth, (torch.zeros(2),)) is smooth
    assert calls._record("b", smooth, (torch.zeros(2),)) is None and calls.failure is not None
    assert seen == [False, False] and gc.isenabled()


def test_a_full_set_lets_its_oldest_recording_go_before_recording_with_one_collection(monkeypatch):
    """At max_recordings, the least recently used recording is let go before the new capture (its
    buffers are freed first, not held beside the new ones) and a recording costs one garbage
    collection, not one to make it and another to free the one it replaces."""
    import gc
    collections, present = [], []
    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(1) or 0)

    def fake_record(fn, samples, allow_unused_input):
        present.append(sorted(key for key in calls._recordings))
        return fn
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", fake_record)
    calls = GraphedCalls("test", max_recordings=2)
    for key in ("a", "b", "c", "a"):
        assert calls._record(key, smooth, (torch.zeros(2),)) is smooth
    assert present == [[], ["a"], ["b"], ["c"]]   # while "c" is recorded, "a" is already gone
    assert len(collections) == 4 and sorted(calls._recordings) == ["a", "c"]
    calls.clear()
    assert len(collections) == 5 and not calls._recordings


@pytest.mark.cuda
def test_replays_give_the_functions_values_and_gradients_for_each_new_input():
    calls = GraphedCalls("test")
    g = torch.Generator(device="cuda").manual_seed(0)
    for step in range(4):
        x = torch.randn(64, 32, device="cuda", generator=g)
        w = torch.randn(32, device="cuda", generator=g)
        graphed = run(calls, x, w)
        x_, w_ = x.clone().requires_grad_(), w.clone().requires_grad_()
        eager = smooth(x_, w_)
        eager["total"].backward()
        for a, b in zip(graphed, (eager["total"].detach(), eager["peak"], x_.grad, w_.grad)):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert calls.recordings_made == 1   # one shape, one key: recorded once, replayed after


@pytest.mark.cuda
def test_a_new_shape_or_key_gets_its_own_recording_and_the_oldest_is_dropped():
    calls = GraphedCalls("test", max_recordings=2)
    w = torch.randn(16, device="cuda")
    for rows, key in ((8, "a"), (8, "b"), (12, "a"), (8, "a")):
        run(calls, torch.randn(rows, 16, device="cuda"), w, key)
    # (8, a), (8, b), (12, a): three recordings; (8, a) was the oldest of two kept, so it is recorded again.
    assert calls.recordings_made == 4
    assert len(calls._recordings) == 2


@pytest.mark.cuda
def test_a_function_that_reads_the_host_falls_back_to_running_with_one_notice(capsys):
    def reads_host(x):
        return {"total": x.sum() * float(x.abs().max())}   # .item() inside: cannot be recorded
    calls = GraphedCalls("host reader")
    x = torch.randn(10, device="cuda", requires_grad=True)
    out = calls("k", lambda: reads_host, [x])
    out["total"].backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, float(x.detach().abs().max())))
    assert calls.failure is not None and calls.recordings_made == 0
    notice = capsys.readouterr().out
    assert "CUDA graphs off for the host reader" in notice
    assert "previous error during capture" not in notice   # the cause, not the capture's own complaint
    torch.randn(3, device="cuda")   # the failed capture left the random generator usable

