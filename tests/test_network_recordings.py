"""benchmarks/network_recordings.py: the recording count on known row sequences, and a training traced end to end."""
import json

from benchmarks.network_recordings import count_recordings, main


def test_each_call_outside_the_two_buckets_used_last_is_a_new_recording():
    # buckets: 1000 -> 1024, 1100 -> 1280, 1300 -> 1536, 2000 -> 2048
    rows = [1000, 1100, 1300, 1000, 2000, 1300, 1300]
    # two kept: 1024, 1280, 1536 (1024 goes), 1024 (1280 goes), 2048 (1536 goes), 1536 (1024 goes), then a replay
    assert count_recordings(rows) == 6
    # three kept: 1024, 1280, 1536, 1024 replayed, 2048 (1280 goes), 1536 replayed twice
    assert count_recordings(rows, kept=3) == 4
    assert count_recordings([1000, 700, 1024, 1]) == 1   # one bucket (the smallest is 1024 rows)
    assert count_recordings([]) == 0


def test_a_training_is_traced_call_by_call(tmp_path):
    from scene.synthetic import generate
    scene = tmp_path / "scene"
    generate(str(scene), frames=9, width=32, height=24, seed=5)
    out = tmp_path / "recordings.json"
    result = main(["--out", str(out), "--scale_rows", "0.5", "--",
                   "-s", str(scene), "-m", str(tmp_path / "model"), "--eval", "--llffhold", "4", "--iterations", "10",
                   "--warm_up", "3", "--mask_start", "6", "--mask_stop", "10", "--stop_MLP", "10",
                   "--densify_until_iter", "0", "--deform_depth", "2", "--deform_width", "16", "--deform_gate", "none",
                   "--rasterizer", "torch", "--quiet", "--test_iterations", "10", "--save_iterations", "10"])
    # the network learns after the warm-up (iterations 4-10): 7 calls, each on every Gaussian
    assert result["calls"] == 7 and len(set(result["rows"])) == 1
    assert result["rows_mean"] == round(0.5 * result["rows"][0])
    assert result["buckets"] == 1 and result["recordings"] == 1
    assert json.loads(out.read_text())["rows"] == result["rows"]
