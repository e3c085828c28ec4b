import os
import random

import numpy as np
import pytest
import torch

from utils.checkpoint import (CheckpointError, capture_rng_state, load_checkpoint, restore_rng_state,
                              save_checkpoint)


def test_round_trip_and_no_temp_left(tmp_path):
    path = str(tmp_path / "sub" / "chkpnt5.pth")
    save_checkpoint(path, {"iteration": 5, "weights": torch.arange(4.0)})
    state = load_checkpoint(path)
    assert state["iteration"] == 5 and torch.equal(state["weights"], torch.arange(4.0))
    assert os.listdir(tmp_path / "sub") == ["chkpnt5.pth"]


def test_rng_state_restores_the_same_draws():
    state = capture_rng_state()
    first = (random.random(), np.random.rand(), torch.rand(3))
    restore_rng_state(state)
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == second[0] and first[1] == second[1] and torch.equal(first[2], second[2])


@pytest.mark.cuda
def test_rng_state_of_a_checkpoint_loaded_onto_the_gpu_restores(tmp_path):
    """train.py loads checkpoints with map_location="cuda" on a GPU, which moves the generator
    states there too; resuming crashed on them (found running test_resume_is_exact on an H200)."""
    path = str(tmp_path / "chkpnt1.pth")
    save_checkpoint(path, {"rng": capture_rng_state()})
    first = (torch.rand(3), torch.rand(3, device="cuda"))
    state = load_checkpoint(path, map_location="cuda")
    assert state["rng"]["torch"].is_cuda
    restore_rng_state(state["rng"])
    second = (torch.rand(3), torch.rand(3, device="cuda"))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_errors_name_the_file(tmp_path):
    missing = str(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="nope.pth"):
        load_checkpoint(missing)
    corrupt = tmp_path / "bad.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pth"):
        load_checkpoint(str(corrupt))
    foreign = str(tmp_path / "tuple.pth")
    torch.save((1, 2), foreign)
    with pytest.raises(CheckpointError, match="tuple.pth"):
        load_checkpoint(foreign)
