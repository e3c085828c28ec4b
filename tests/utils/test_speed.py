"""PhaseSpeedMeter: steps and seconds per phase, time excluded from steps."""
import time

import torch

from utils.speed import PhaseSpeedMeter


def test_steps_are_counted_per_phase_and_excluded_time_does_not_count():
    meter = PhaseSpeedMeter(torch.device("cpu"))
    for name in ["warm-up", "warm-up", "depth"]:
        meter.start_step(name)
        time.sleep(0.01)
        meter.end_step()
    meter.start_step("depth")
    paused = meter.timed_pause()
    time.sleep(0.05)                                  # an evaluation inside the step
    meter.end_step(excluded_seconds=time.perf_counter() - paused)
    phases = meter.summary()
    assert phases["warm-up"]["steps"] == 2 and phases["depth"]["steps"] == 2
    assert 0.02 <= phases["warm-up"]["seconds"] < 0.045
    assert 0.01 <= phases["depth"]["seconds"] < 0.04   # one 10 ms step; the 50 ms pause is not in it
    assert abs(phases["depth"]["it_per_s"] - 2 / phases["depth"]["seconds"]) < 1e-9


def test_a_phase_seen_again_adds_to_its_entry():
    meter = PhaseSpeedMeter(torch.device("cpu"))
    for name in ["colour", "mask", "colour"]:
        meter.start_step(name)
        meter.end_step()
    assert meter.summary()["colour"]["steps"] == 2


def test_deformed_rows_are_averaged_per_step_of_their_phase():
    meter = PhaseSpeedMeter(torch.device("cpu"))
    for name, rows in [("warm-up", 0), ("depth", 10), ("depth", 30)]:
        meter.start_step(name)
        meter.end_step(deformed_rows=rows)
    phases = meter.summary()
    assert phases["warm-up"]["deformed_rows_per_step"] == 0.0
    assert phases["depth"]["deformed_rows_per_step"] == 20.0
