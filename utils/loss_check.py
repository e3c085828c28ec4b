"""The training loop's guard against non-finite losses, with or without a host read per step.

A bad step (a NaN or an infinite loss term) must never be applied, and training must stop with
the last good state saved. Reading each step's losses on the host does that simply, but every
read waits for the GPU, which then idles while the host prepares the next step. Deferred, the
check costs no read: each step's terms stay on the device, and a non-finite one sets ``skip``,
a 0-d tensor that torch's fused Adam reads as ``found_inf`` and so leaves parameters,
moments and step counts as they were. The flag stays set, so every later step is skipped too,
until the host reads the pending steps at a point the loop chooses (a log, a densification, an
evaluation, a save, the end): then the first bad step is found with the state before it.
"""
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch


@dataclass
class StepLosses:
    iteration: int
    values: Dict[str, float]       # every term, host floats
    context: Any                   # what the caller recorded with the step (its state before it)

    def first_non_finite(self) -> Optional[str]:
        return next((name for name, value in self.values.items() if not math.isfinite(value)), None)


class LossCheck:
    def __init__(self, device: torch.device, deferred: bool):
        """deferred: the host reads the losses only at read() (needs fused Adam, which honours
        ``skip``); otherwise read() follows every record()."""
        self.deferred = deferred
        self.skip = torch.zeros((), device=device) if deferred else None   # 1: fused Adam skips the update
        self._pending: List[tuple] = []

    def guard(self, *optimizers: torch.optim.Optimizer) -> None:
        """Make the optimizers skip their step once a recorded step was not finite (deferred only)."""
        if self.deferred:
            for optimizer in optimizers:
                optimizer.found_inf = self.skip

    @property
    def valid(self) -> Optional[torch.Tensor]:
        """0-d bool on the device, False once a recorded step was not finite (None when not
        deferred): statistics that must not take a bad step's values mask by it."""
        return None if self.skip is None else self.skip == 0

    def record(self, iteration: int, terms: Dict[str, torch.Tensor], context: Any = None) -> None:
        """A step's loss terms (0-d tensors), kept on the device until read()."""
        values = torch.stack([value.detach().float().reshape(()) for value in terms.values()])
        if self.deferred:
            torch.maximum(self.skip, (~torch.isfinite(values)).any().float(), out=self.skip)
        self._pending.append((iteration, list(terms), values, context))

    @property
    def pending(self) -> int:
        return len(self._pending)

    def read(self) -> List[StepLosses]:
        """The steps recorded since the last read, in order, in one host read."""
        if not self._pending:
            return []
        flat = torch.cat([values for _, _, values, _ in self._pending]).tolist()
        steps, start = [], 0
        for iteration, names, values, context in self._pending:
            steps.append(StepLosses(iteration, dict(zip(names, flat[start:start + len(names)])), context))
            start += len(names)
        self._pending.clear()
        return steps


def drop_unapplied_state(optimizer: torch.optim.Optimizer) -> None:
    """Forget the Adam state of parameters whose every step was skipped (step count 0): a skipped
    first step still creates it (zero moments), where the run without that step has none. Both
    behave the same; dropping it makes the rewound state the same object too (exact resume)."""
    for param in [p for p, state in optimizer.state.items() if "step" in state and float(state["step"]) == 0]:
        del optimizer.state[param]
