"""The benchmark scripts' own arithmetic: ratios per phase, deformation-phase speed, flag splits."""
import os

import pytest

from benchmarks.common import ROOT, command_line, parse_named, split_common_flags
from benchmarks.training_speed import add_ratios, deformation_speed, stop_gently, summary_line


def phases(warm, deform):
    return {"warm-up": {"steps": 100, "seconds": 100 / warm, "it_per_s": warm, "peak_memory_mb": 10.0},
            "depth": {"steps": 300, "seconds": 300 / deform, "it_per_s": deform, "peak_memory_mb": 20.0}}


def test_deformation_speed_pools_the_phases_after_the_warm_up():
    mixed = {**phases(100.0, 30.0), "mask": {"steps": 100, "seconds": 100 / 60.0, "it_per_s": 60.0}}
    assert deformation_speed(mixed) == pytest.approx(400 / (10.0 + 100 / 60.0))


def test_ratios_are_against_the_baseline_of_the_same_scene():
    rows = [{"scene": "a", "variant": "baseline", "phases": phases(100, 20), "deformation_it_per_s": 20.0,
             "test_psnr": 25.0, "peak_memory_mb": 20.0},
            {"scene": "a", "variant": "default", "phases": phases(110, 70), "deformation_it_per_s": 70.0,
             "test_psnr": 24.9, "peak_memory_mb": 10.0},
            {"scene": "b", "variant": "default", "error": "train.py exited 2"}]
    add_ratios(rows, baseline="baseline")
    fast = rows[1]
    assert fast["speedup_deformation"] == pytest.approx(3.5)
    assert fast["speedup_per_phase"] == {"warm-up": pytest.approx(1.1), "depth": pytest.approx(3.5)}
    assert fast["psnr_change_db"] == pytest.approx(-0.1) and fast["peak_memory_ratio"] == pytest.approx(0.5)
    assert "speedup_deformation" not in rows[2]


def test_flags_after_a_lone_double_dash_go_to_train_py_and_names_need_a_value():
    assert split_common_flags(["--out", "o", "--", "--deform_depth", "4"]) == (["--out", "o"], ["--deform_depth", "4"])
    assert split_common_flags(["--out", "o"]) == (["--out", "o"], [])
    assert parse_named("tf4=--time_frequencies 4", "--variant") == ("tf4", "--time_frequencies 4")
    assert parse_named("default=", "--recipe") == ("default", "")
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        parse_named("glass", "--scene")


def test_a_run_stopped_in_its_warm_up_gets_no_deformation_ratio_and_prints_dashes():
    rows = [{"scene": "a", "variant": "baseline", "phases": phases(100, 20), "deformation_it_per_s": 20.0,
             "test_psnr": 25.0, "peak_memory_mb": 20.0, "gaussians": 10},
            {"scene": "a", "variant": "default", "deformation_it_per_s": None, "test_psnr": None,
             "phases": {"warm-up": {"steps": 50, "seconds": 0.5, "it_per_s": 100.0, "peak_memory_mb": 5.0}},
             "peak_memory_mb": 5.0, "gaussians": 10, "stopped": "after the 5 s limit, at iteration 50"}]
    add_ratios(rows, baseline="baseline")
    assert rows[1]["speedup_deformation"] is None and rows[1]["speedup_per_phase"] == {"warm-up": 1.0}
    line = summary_line(rows[1])
    assert "- it/s with deformation" in line and "test PSNR -" in line and "stopped after the 5 s limit" in line


def test_stop_gently_asks_with_ctrl_c_before_killing():
    import subprocess
    import sys
    child = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                              "signal.signal(signal.SIGINT, lambda *a: sys.exit(7))\n"
                              "print('ready', flush=True)\ntime.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    assert stop_gently(child, grace=30) == 7          # its own Ctrl-C handler ran: not killed
    deaf = subprocess.Popen([sys.executable, "-c", "import signal, time\n"
                             "signal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('ready', flush=True)\n"
                             "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert deaf.stdout.readline().strip() == "ready"
    assert stop_gently(deaf, grace=0.5) == -9         # ignored Ctrl-C: killed after the grace period


def test_command_line_names_the_script_from_the_repository_root_and_quotes_arguments():
    script = os.path.join(ROOT, "benchmarks", "rasterizer.py")
    assert command_line(script, ["--out", "my results", "--sizes", "100"]) == \
        "python benchmarks/rasterizer.py --out 'my results' --sizes 100"
