"""Per-phase training speed: steps, seconds of training steps alone, it/s and peak GPU memory.

The loop does not wait for the GPU at each iteration, so one iteration's wall time is only what
the host saw; summed over a phase it is the phase's time, because the meter waits for the GPU
once when a phase ends (and before anything it should not count, such as an evaluation).
"""
import time
from typing import Dict, Optional

import torch


class PhaseSpeedMeter:
    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.device = device
        self.phases: Dict[str, Dict[str, float]] = {}
        self._current: Optional[str] = None
        self._started = 0.0

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def start_step(self, phase_name: str) -> None:
        if phase_name != self._current:
            self._close_phase()
            self._current = phase_name
            if self.cuda:
                torch.cuda.reset_peak_memory_stats(self.device)
        self._started = time.perf_counter()

    def end_step(self, excluded_seconds: float = 0.0, deformed_rows: int = 0) -> float:
        """The step ends; excluded_seconds (an evaluation inside it, say) do not count;
        deformed_rows: Gaussians the deformation network ran on (its cost follows this count).
        Returns the step's seconds as the host saw them."""
        entry = self.phases.setdefault(self._current, {"steps": 0, "seconds": 0.0, "peak_memory_mb": 0.0,
                                                       "deformed_rows": 0})
        seconds = time.perf_counter() - self._started - excluded_seconds
        entry["steps"] += 1
        entry["seconds"] += seconds
        entry["deformed_rows"] += int(deformed_rows)
        return seconds

    def timed_pause(self) -> float:
        """Wait for the GPU (its pending work belongs to the steps) and return the clock, so the
        caller can time what is not a step from here."""
        self._sync()
        return time.perf_counter()

    def flush(self) -> None:
        """Between steps, before a save: the GPU's pending work belongs to the steps just ended."""
        if self._current in self.phases:
            start = time.perf_counter()
            self._sync()
            self.phases[self._current]["seconds"] += time.perf_counter() - start

    def summary(self) -> Dict[str, Dict[str, float]]:
        """{phase: {steps, seconds, it_per_s, peak_memory_mb, deformed_rows_per_step}}; closes the
        current phase."""
        self._close_phase()
        self._current = None
        return {name: {"steps": e["steps"], "seconds": e["seconds"], "peak_memory_mb": e["peak_memory_mb"],
                       "it_per_s": e["steps"] / e["seconds"] if e["seconds"] > 0 else None,
                       "deformed_rows_per_step": e["deformed_rows"] / e["steps"] if e["steps"] else 0.0}
                for name, e in self.phases.items()}

    def _close_phase(self) -> None:
        if self._current is None or self._current not in self.phases:
            return
        self.flush()
        entry = self.phases[self._current]
        if self.cuda:
            peak = torch.cuda.max_memory_allocated(self.device) / 2 ** 20
            entry["peak_memory_mb"] = max(entry["peak_memory_mb"], peak)
