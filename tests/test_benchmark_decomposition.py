"""benchmarks/decomposition.py end to end on a tiny synthetic scene: one training, scored as rendered
and with each --render variant in a copy of its folder."""
import json
import os

from benchmarks import decomposition


def test_each_render_variant_scores_the_same_training_in_a_copy(tmp_path):
    out = tmp_path / "bench"
    code = decomposition.main(["--out", str(out), "--synthetic", "--frames", "4", "--width", "32", "--height", "24",
                               "--points", "200", "--iterations", "40", "--llffhold", "2", "--recipe", "a=",
                               "--render", "raw=--static_fill off", "--", "--deform_depth", "2",
                               "--deform_width", "16", "--sh_degree", "1"])
    assert code == 0
    rows = {r["recipe"]: r for r in json.load(open(out / "decomposition.json"))["recipes"]}
    assert set(rows) == {"a", "a@raw"}
    assert rows["a@raw"]["render_flags"] == ["--static_fill", "off"]
    for name in rows:   # both scored, from their own renders
        assert "static_PSNR" in rows[name] and (out / f"strip_{name}.png").is_file()
    copy = out / "a@raw"
    assert not os.path.exists(copy / "train")   # the copy holds the trained model and its own renders only
    cfg = json.load(open(copy / "cfg_args.json"))
    assert cfg["model_path"].endswith(os.path.join("bench", "a"))   # the training's saved flags, untouched
    assert rows["a"]["PSNR"] == rows["a@raw"]["PSNR"]   # the full render does not depend on --static_fill
