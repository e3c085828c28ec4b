import json
from argparse import ArgumentParser

import pytest

from arguments import (ModelParams, OptimizationParams, PipelineParams, add_run_arguments, get_combined_args,
                       load_config, non_negative_int, positive_float, positive_int, save_config)


def parser():
    p = ArgumentParser()
    groups = ModelParams(p), OptimizationParams(p), PipelineParams(p)
    add_run_arguments(p)
    return p, groups


def test_defaults_and_short_flags():
    p, (lp, op, pp) = parser()
    args = p.parse_args(["-s", "scene", "-m", "out", "-r", "2", "--eval", "--iterations", "100"])
    model, opt, pipe = lp.extract(args), op.extract(args), pp.extract(args)
    assert model.resolution == 2 and model.eval and model.mask_dimension == 3 and model.llffhold == 20
    assert opt.iterations == 100 and opt.warm_up == 3000 and opt.mask_start == 30000
    assert opt.densify_grad_threshold == 0.0002 and opt.lambda_dssim == 0.2
    assert pipe.rasterizer == "auto"
    assert opt.prune_by_screen_size is False  # upstream's effective behaviour unless asked for
    assert op.extract(p.parse_args(["--prune_by_screen_size"])).prune_by_screen_size is True


def test_unknown_flag_and_bad_choice_are_errors():
    p, _ = parser()
    with pytest.raises(SystemExit):
        p.parse_args(["-s", "x", "--itrations", "5"])
    with pytest.raises(SystemExit):
        p.parse_args(["-s", "x", "--rasterizer", "vulkan"])


def test_config_json_round_trip_and_combination(tmp_path):
    p, _ = parser()
    args = p.parse_args(["-s", "scene", "-m", str(tmp_path), "--eval", "--is_blender", "--mask_dimension", "1"])
    path = save_config(args, str(tmp_path))
    assert json.load(open(path))["is_blender"] is True
    assert load_config(str(tmp_path))["mask_dimension"] == 1
    # render.py style: only -m given now, the rest comes from the saved config; explicit flags win.
    combined = get_combined_args(p, ["-m", str(tmp_path), "--white_background"])
    assert combined.eval and combined.is_blender and combined.mask_dimension == 1
    assert combined.white_background is True and combined.source_path == "scene"
    # a copied model folder renders itself, not the folder its config was saved from
    copied = tmp_path / "copy"
    copied.mkdir()
    (copied / "cfg_args.json").write_text(open(path).read())
    assert get_combined_args(p, ["-m", str(copied)]).model_path == str(copied)
    # an explicit flag equal to its default still wins over the saved value
    assert get_combined_args(p, ["-m", str(tmp_path), "--mask_dimension", "3"]).mask_dimension == 3


def test_saved_value_outside_its_choices_names_the_file_and_flag_unless_given_now(tmp_path):
    from utils.errors import DatasetError
    p, _ = parser()
    save_config(p.parse_args(["-s", "scene", "-m", str(tmp_path)]), str(tmp_path))
    config = json.loads((tmp_path / "cfg_args.json").read_text())
    (tmp_path / "cfg_args.json").write_text(json.dumps({**config, "hand_pixels": "alpha"}))
    with pytest.raises(DatasetError, match=r"cfg_args.json: hand_pixels is 'alpha', not one of layer, map.*--hand_pixels"):
        get_combined_args(p, ["-m", str(tmp_path)])
    assert get_combined_args(p, ["-m", str(tmp_path), "--hand_pixels", "map"]).hand_pixels == "map"


@pytest.mark.parametrize("text", ["{truncated", "[1, 2]"])
def test_config_that_is_not_a_flag_dictionary_is_a_clear_error(tmp_path, text):
    from utils.errors import DatasetError
    (tmp_path / "cfg_args.json").write_text(text)
    with pytest.raises(DatasetError, match="cfg_args.json"):
        load_config(str(tmp_path))


def test_number_types_accept_their_range_and_refuse_the_rest():
    from argparse import ArgumentTypeError
    assert positive_int("1") == 1 and non_negative_int("0") == 0 and positive_float("0.5") == 0.5
    for parse, bad in ((positive_int, "0"), (positive_int, "-1"), (positive_int, "1.5"), (non_negative_int, "-1"),
                       (positive_float, "0"), (positive_float, "-2"), (positive_float, "nan"), (positive_float, "inf"),
                       (positive_float, "ten")):
        with pytest.raises(ArgumentTypeError, match=repr(bad)):
            parse(bad)


def test_missing_config_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="cfg_args.json"):
        load_config(str(tmp_path))


def test_every_train_flag_has_a_description_and_shows_its_default():
    import train
    parser, _ = train.build_parser()
    flags = [a for a in parser._actions if a.dest != "help"]
    assert len(flags) > 60
    for action in flags:
        assert action.help and action.help.strip(), f"--{action.dest} has no description"
    text = " ".join(parser.format_help().split())
    assert text.count("(default:") == len(flags)
    assert "--iterations ITERATIONS training iterations (default: 40000)" in text
