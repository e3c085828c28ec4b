"""Checkpoints: a named dict written atomically, and the RNG states an exact resume needs."""
import os
import random
from typing import Any, Dict

import numpy as np
import torch
from utils.atomic import write_atomically

CHECKPOINT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or not ours; the message says which and what to do."""


def capture_rng_state() -> Dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """capture_rng_state's inverse. The generator states are CPU byte tensors, but a checkpoint
    loaded with map_location="cuda" (train.py on a GPU) brings them back on the GPU: they go back
    to the host first (torch refuses them otherwise)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_checkpoint(path: str, state: Dict[str, Any]) -> str:
    """Write ``state`` (plus a format version) to ``path`` via a temporary file and a rename,
    so an interruption never leaves a half-written checkpoint under the final name."""
    payload = {"version": CHECKPOINT_VERSION, **state}
    return write_atomically(path, lambda temporary: torch.save(payload, temporary))


def load_checkpoint(path: str, map_location="cpu") -> Dict[str, Any]:
    if not os.path.isfile(path):
        raise CheckpointError(f"Checkpoint {path!r} does not exist: pass a chkpnt<N>.pth written by "
                                "train.py --checkpoint_iterations.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # a truncated or foreign file: say which and why
        raise CheckpointError(f"Checkpoint {path!r} cannot be read ({err}). It may be truncated or not "
                           "written by this codebase; resume from another chkpnt<N>.pth.") from err
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"Checkpoint {path!r} is not a version-{CHECKPOINT_VERSION} EgoMask-GS checkpoint "
                           "(upstream positional-tuple checkpoints are not supported).")
    return state
