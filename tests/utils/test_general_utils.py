"""utils/general_utils.py: the CPU thread choice."""
import os

import pytest
import torch


# ---------------------------------------------------------------- CPU threads

@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("cores, requested, expected", [(2, -1, 1), (1, -1, 1), (2, 3, 3), (16, 5, 5)])
def test_cpu_threads_follow_the_request_and_the_machine(monkeypatch, restore_threads, cores, requested, expected):
    from utils.general_utils import set_cpu_threads
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert set_cpu_threads(requested) == expected == torch.get_num_threads()


def test_cpu_threads_automatic_on_a_large_machine_and_the_environment_wins(monkeypatch, restore_threads):
    from utils.general_utils import set_cpu_threads
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    torch.set_num_threads(3)
    assert set_cpu_threads(-1) == 3          # more than 2 cores: PyTorch's own setting is left alone
    assert set_cpu_threads(0) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert set_cpu_threads(1) == 3           # OMP_NUM_THREADS set: the user's choice, untouched


def test_cpu_threads_are_left_alone_for_a_gpu_run(monkeypatch, restore_threads):
    from utils.general_utils import set_cpu_threads
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    torch.set_num_threads(2)
    assert set_cpu_threads(-1, "cuda") == 2 == torch.get_num_threads()
    assert set_cpu_threads(-1, torch.device("cpu")) == 1
