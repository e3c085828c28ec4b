"""Command-line parameter groups with the flags users of 3DGS / Deformable-3DGS / EgoMask know.

Each group's attributes are its flags; a leading underscore also gives a one-letter short flag
(``_source_path`` -> ``-s/--source_path``). The resolved configuration is saved as JSON
(``cfg_args.json``) and read back with ``json`` by ``render.py``: no ``eval``.
"""
import copy
import json
import math
import os
import sys
from argparse import SUPPRESS, ArgumentParser, ArgumentTypeError, Namespace

from utils.atomic import write_json_atomic
from utils.errors import DatasetError

CONFIG_FILE = "cfg_args.json"


class GroupParams:
    pass


class ParamGroup:
    choices: dict = {}
    help: dict = {}   # flag -> one line for --help (the default is appended by the formatter)

    def __init__(self, parser: ArgumentParser, name: str, fill_none: bool = False):
        group = parser.add_argument_group(name)
        for key, value in vars(self).items():
            shorthand = key.startswith("_")
            key = key.lstrip("_")
            flags = [f"--{key}"] + ([f"-{key[0]}"] if shorthand else [])
            default = None if fill_none else value
            kwargs = {"default": default, "help": self.help.get(key, "")}
            if key in self.choices:
                kwargs["choices"] = self.choices[key]
            if isinstance(value, bool):
                group.add_argument(*flags, action="store_true", **kwargs)
            else:
                kwargs["type"] = None if value is None else type(value)
                group.add_argument(*flags, **kwargs)

    def extract(self, args: Namespace) -> GroupParams:
        group = GroupParams()
        for key in vars(self):
            name = key.lstrip("_")
            setattr(group, name, getattr(args, name))
        return group


class ModelParams(ParamGroup):
    choices = {"data_device": ["cpu", "cuda"], "depth_prior_kind": ["disparity", "depth"],
               "deform_init": ["zero", "pytorch"], "time_outside": ["linear", "clamp", "extrapolate"],
               "hand_pixels": ["layer", "map"], "static_fill": ["on", "off"], "deform_scale": ["on", "off"],
               "time_network": ["auto", "on", "off"]}
    help = {
        "sh_degree": "highest spherical-harmonics degree of the colours",
        "source_path": "scene folder (COLMAP/EgoMask, Blender or Nerfies layout)",
        "model_path": "output folder of the trained model; empty: output/<scene>-<time>",
        "images": "image folder inside the scene (e.g. images_2 for half size)",
        "resolution": "1, 2, 4, 8 divide the size; a number >= 64 is a target width; -1: at most 1600 px wide",
        "white_background": "white background instead of black",
        "data_device": "where the images are kept (cpu saves GPU memory)",
        "eval": "hold out every llffhold-th frame as a test view",
        "load2gpu_on_the_fly": "move each image to the GPU only while it is used",
        "is_blender": "D-NeRF/Blender time encoding (6 frequencies and a time network)",
        "is_6dof": "deform with a rigid SE(3) motion per Gaussian",
        "mask_dimension": "channels of the per-Gaussian hand feature (0: no hands decomposition)",
        "llffhold": "with --eval, frames whose index %% llffhold == 0 are test views",
        "depth_prior_kind": "what the depth_gt/ files hold: relative inverse depth or depth",
        "no_masks": "train without the hand masks even where masks/ exists",
        "no_depth": "train without the depth priors even where depth_gt/ exists",
        "ignore_distortion": "accept distorted COLMAP cameras, ignoring the distortion",
        "deform_depth": "layers of the deformation MLP",
        "deform_width": "width of the deformation MLP",
        "time_frequencies": "frequencies of the time encoding (-1: upstream's 10, or 6 with --is_blender)",
        "time_network": "a small network between the time encoding and the deformation MLP (upstream's "
                        "D-NeRF/Blender choice): on, off, or auto (on with --is_blender)",
        "deform_init": "zero: the deformation starts as the identity; pytorch: upstream's random init",
        "deform_scale": "on: the deformation network also changes each Gaussian's size over time (upstream); off: "
                        "sizes are fixed and only positions and rotations move (hands and handled objects are "
                        "rigid; a size that changes lets a fit switch Gaussians on and off between frames)",
        "time_outside": "times before the first or after the last training frame: linear continues the motion at "
                        "its speed at that end (for up to one frame spacing, then holds); clamp renders them at "
                        "that frame's time; extrapolate asks the deformation network (upstream)",
        "hand_pixels": "render.py's hand pixels (hands_mask_binary/, mask_IoU): layer, where the hands layer "
                       "covers more than half the pixel; map, where the rendered hand feature is above 0.5 (paper)",
        "static_fill": "render.py's static layer (static/): on, static Gaussians no training view showed outside the "
                       "hands take their shown neighbours' colour and the holes the hands leave are painted from "
                       "around them; off, the layer as drawn (paper)",
    }

    def __init__(self, parser, sentinel=False):
        self.sh_degree = 3
        self._source_path = ""
        self._model_path = ""
        self._images = "images"
        self._resolution = -1
        self._white_background = False
        self.data_device = "cuda"
        self.eval = False
        self.load2gpu_on_the_fly = False
        self.is_blender = False
        self.is_6dof = False
        self.mask_dimension = 3
        self.llffhold = 20
        self.depth_prior_kind = "disparity"
        self.no_masks = False   # train without hand-mask supervision even where masks exist
        self.no_depth = False   # train without the depth prior even where priors exist
        self.ignore_distortion = False  # accept distorted COLMAP cameras, ignoring the distortion
        self.deform_depth = 8
        self.deform_width = 256
        self.time_frequencies = -1
        self.time_network = "auto"     # utils/time_utils.py's DeformNetwork says what it is
        # "zero": the deformation starts as the identity, so switching it on after warm-up keeps the
        # warm-up's scene; "pytorch": every layer at PyTorch's default init (upstream Deformable-3DGS)
        self.deform_init = "zero"
        self.deform_scale = "on"
        self.time_outside = "linear"   # DeformModel.set_time_outside says why
        self.hand_pixels = "layer"     # scene/decomposition.py's hand_pixels says why
        self.static_fill = "on"        # scene/static_fill.py says why
        super().__init__(parser, "Loading Parameters", sentinel)

    def extract(self, args):
        group = super().extract(args)
        if group.source_path:
            group.source_path = os.path.abspath(group.source_path)
        return group


class PipelineParams(ParamGroup):
    choices = {"rasterizer": ["auto", "cuda", "torch"], "deform_precision": ["auto", "fp32", "tf32", "bf16"],
               "adam": ["fused", "plain"], "cuda_graphs": ["on", "off"]}
    help = {
        "convert_SHs_python": "evaluate the SH colours in PyTorch instead of the rasterizer",
        "compute_cov3D_python": "build the 3D covariances in PyTorch instead of the rasterizer",
        "debug": "check the rasterizer's inputs and dump them when a kernel fails",
        "rasterizer": "auto: CUDA where it builds, else the PyTorch reference",
        "deform_precision": "number format of the deformation MLP; auto: TF32 while it trains as recorded "
                            "CUDA graphs (its own matmuls only), fp32 elsewhere (CPU, rendering, --cuda_graphs off)",
        "log_interval": "steps between TensorBoard scalars and progress-bar updates",
        "adam": "fused: torch's one-kernel Adam on CUDA (plain on the CPU); plain: its per-op (foreach) Adam",
        "cuda_graphs": "on: the losses and the deformation network replay as recorded CUDA graphs (CUDA only)",
        "speed_baseline": "train as before the speed work, for benchmarks: the deformation network "
                          "on every Gaussian (static ones get its output times 0), fp32, logged every step, "
                          "plain Adam, no CUDA graphs",
    }

    def __init__(self, parser):
        self.convert_SHs_python = False
        self.compute_cov3D_python = False
        self.debug = False
        self.rasterizer = "auto"
        self.deform_precision = "auto"
        self.log_interval = 10
        self.adam = "fused"
        self.cuda_graphs = "on"
        self.speed_baseline = False
        super().__init__(parser, "Pipeline Parameters")


class OptimizationParams(ParamGroup):
    choices = {"depth_loss": ["minmax", "ssi"], "deform_gate": ["hand", "none"], "time_noise": ["auto", "on", "off"]}
    help = {
        "iterations": "training iterations",
        "warm_up": "iterations before the deformation starts (Gaussians only until then)",
        "position_lr_init": "learning rate of the positions at the start (x scene extent)",
        "position_lr_final": "learning rate of the positions at the end (x scene extent)",
        "position_lr_delay_mult": "upstream's delay multiplier of the position learning rate",
        "position_lr_max_steps": "iterations over which the position learning rate decays",
        "deform_lr_max_steps": "iterations over which the deformation learning rate decays",
        "feature_lr": "learning rate of the colour (SH) coefficients",
        "opacity_lr": "learning rate of the opacities",
        "scaling_lr": "learning rate of the scales",
        "rotation_lr": "learning rate of the rotations",
        "mask_lr": "learning rate of the hand feature",
        "percent_dense": "clone below / split above this fraction of the scene extent",
        "lambda_dssim": "weight of (1 - SSIM) in the colour loss",
        "densification_interval": "iterations between densifications",
        "opacity_reset_interval": "iterations between opacity resets",
        "densify_from_iter": "first iteration that densifies",
        "densify_until_iter": "last iteration that densifies",
        "densify_grad_threshold": "screen-space gradient above which a Gaussian is cloned or split",
        "densify_budget": "most Gaussians per observed training pixel (training views x pixels): densification "
                          "adds none beyond it, the strongest gradients first (0: no limit, the paper)",
        "prune_by_screen_size": "also prune Gaussians wider than 20 px on screen (upstream never does)",
        "mask_start": "first iteration of the mask phase",
        "mask_stop": "last iteration of the mask phase",
        "stop_MLP": "iteration from which the deformation network is frozen",
        "loss_reduce": "scale of the depth and mask loss weights",
        "depth_loss": "minmax: EgoMask's normalized L1; ssi: scale-and-shift invariant",
        "time_noise": "Gaussian noise on each training step's time (annealed, upstream's): on, off, or auto "
                      "(on, except with --is_blender)",
        "time_noise_steps": "iterations over which the time noise anneals to zero",
        "deform_gate": "hand: only Gaussians labelled hand deform; none: all (the paper)",
        "gate_low": "hand score at and below which a Gaussian does not move",
        "gate_high": "hand score from which a Gaussian takes the full motion",
        "early_mask_weight": "mask-loss weight (x loss_reduce) before the mask phase (paper: 0)",
        "hands_layer_weight": "weight of the hands layer's opacity and colour losses (paper: 0)",
        "static_layer_weight": "weight of the static layer's colour loss (paper: 0)",
    }

    def __init__(self, parser):
        self.iterations = 40_000
        self.warm_up = 3_000
        self.position_lr_init = 0.00016
        self.position_lr_final = 0.0000016
        self.position_lr_delay_mult = 0.01
        self.position_lr_max_steps = 30_000
        self.deform_lr_max_steps = 40_000
        self.feature_lr = 0.0025
        self.opacity_lr = 0.05
        self.scaling_lr = 0.001
        self.rotation_lr = 0.001
        self.mask_lr = 0.0025
        self.percent_dense = 0.01
        self.lambda_dssim = 0.2
        self.densification_interval = 100
        self.opacity_reset_interval = 3000
        self.densify_from_iter = 500
        self.densify_until_iter = 15_000
        self.densify_grad_threshold = 0.0002
        # A cap on the Gaussian count, 0.05 per observed training pixel (README, "Hands decomposition"):
        # unlimited densification gave every training frame of a low-resolution clip its own copy of
        # a fast hand. 0.05 beat 0.1 and 0.03 on the synthetic bed (15 seeds) and tied 0.1 on the real
        # clip with 23 % fewer Gaussians. 0 = upstream's unlimited densification.
        self.densify_budget = 0.05
        # Upstream 3DGS zeroes its screen-size statistic just before testing it, so Gaussians larger
        # than 20 px are never pruned there (gsplat's default is off too); on = as the code intends.
        self.prune_by_screen_size = False
        self.mask_start = 30_000
        self.mask_stop = 40_000
        self.stop_MLP = 40_000
        self.loss_reduce = 0.5
        self.depth_loss = "minmax"
        self.time_noise = "auto"
        self.time_noise_steps = 20_000
        # Hands decomposition (README, "Hands decomposition"). deform_gate "hand": only Gaussians
        # labelled hand by their learned feature deform, the static scene never moves; "none": every
        # Gaussian deforms (the paper). early_mask_weight: the hand feature learns from iteration 1
        # with mask loss weight early_mask_weight·loss_reduce before the mask phase (paper: 0).
        self.deform_gate = "hand"
        self.gate_low = 0.25
        self.gate_high = 0.75
        self.early_mask_weight = 0.1
        # With the gate, losses on each layer rendered alone (train.py's layer_losses); paper: 0.
        self.hands_layer_weight = 0.5
        self.static_layer_weight = 0.5
        super().__init__(parser, "Optimization Parameters")


# Named sets of defaults (--recipe); flags written on the command line still win. "default" is our
# hands decomposition: 4 time frequencies through a time network and no time noise, so that
# held-out frames interpolate between training frames (train.py goes back to upstream's time
# handling on scenes without hand masks). "paper" is EgoMask's own recipe: every Gaussian deforms,
# the hand feature learns only in the mask phase, upstream's time encoding, and the deformation
# network starts at PyTorch's init (README, "Hands decomposition").
UPSTREAM_TIME = {"time_frequencies": -1, "time_network": "auto", "time_noise": "auto"}   # Deformable-3DGS's
RECIPES = {
    "default": {"time_frequencies": 4, "time_network": "on", "time_noise": "off"},
    "paper": {"deform_gate": "none", "early_mask_weight": 0.0, "hands_layer_weight": 0.0,
              "static_layer_weight": 0.0, "densify_budget": 0.0, "deform_init": "pytorch",
              "time_outside": "extrapolate", **UPSTREAM_TIME, "hand_pixels": "map", "static_fill": "off",
              "deform_precision": "fp32"},
}


def resolve_switch(value: str, auto: bool) -> bool:
    """An "auto" | "on" | "off" flag (--time_network, --time_noise) as a bool; auto is upstream's
    choice, given by the caller. A configuration saved before such a flag existed reads as auto."""
    return {"on": True, "off": False}.get(value, auto)


def apply_recipe(args: Namespace, explicit: dict) -> None:
    """Set the --recipe's values on args, except flags given explicitly (explicit_arguments).
    args.recipe_set names the flags the recipe decided (train.py may undo them for a scene they
    do not suit)."""
    args.recipe_set = sorted(key for key in RECIPES[args.recipe] if key not in explicit)
    for key in args.recipe_set:
        setattr(args, key, RECIPES[args.recipe][key])


def add_run_arguments(parser: ArgumentParser) -> None:
    """Flags of a training run that are not model, pipeline or optimization parameters."""
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="default",
                        help="default: our hands decomposition; paper: EgoMask's recipe (see the README)")
    parser.add_argument("--test_iterations", nargs="+", type=int,
                        default=[5000, 6000, 7000] + list(range(10000, 40001, 1000)),
                        help="iterations that score the test views")
    parser.add_argument("--save_iterations", nargs="+", type=int, default=[7000, 10000, 20000, 30000, 40000],
                        help="iterations that save the Gaussians and the deformation (the last always)")
    parser.add_argument("--checkpoint_iterations", nargs="+", type=int, default=[],
                        help="iterations that save a full training checkpoint chkpnt<N>.pth")
    parser.add_argument("--start_checkpoint", type=str, default=None,
                        help="chkpnt<N>.pth to resume from; alone, it resumes the run it came from")
    parser.add_argument("--overwrite", action="store_true",
                        help="train into a model folder that already holds results, replacing them")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the whole run")
    parser.add_argument("--cpu_threads", type=int, default=-1,
                        help="PyTorch threads of a CPU run: -1 automatic (1 on a machine of 2 cores or fewer, "
                             "measured fastest when it is shared), 0 PyTorch's default, N; OMP_NUM_THREADS wins")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (TensorBoard logs are kept)")
    parser.add_argument("--viewer", action="store_true",
                        help="serve view.py's web page while training (needs viser), refreshed as the model learns")
    parser.add_argument("--viewer_port", type=int, default=8080, help="port of --viewer's page")
    parser.add_argument("--detect_anomaly", action="store_true", help="PyTorch's autograd anomaly detection (slow)")
    parser.add_argument("--deterministic", action="store_true",
                        help="bit-exact reruns and resumes on CUDA too (always on for CPU runs)")


def save_config(args: Namespace, model_path: str) -> str:
    """Write the resolved configuration as JSON; returns its path."""
    return write_json_atomic(os.path.join(model_path, CONFIG_FILE), vars(args), sort_keys=True, default=str)


# ---------------------------------------------------------------- argparse types of the tools' own flags

def _number(text: str, kind, lowest, inclusive: bool, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if not math.isfinite(value) or value < lowest or (value == lowest and not inclusive):
        raise ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _number(text, int, 1, True, "a positive integer")


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    return _number(text, int, 0, True, "an integer >= 0")


def positive_float(text: str) -> float:
    """A finite number > 0."""
    return _number(text, float, 0.0, False, "a positive number")


def load_config(model_path: str) -> dict:
    path = os.path.join(model_path, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No {CONFIG_FILE} in {model_path!r}: is this a folder written by train.py? "
            "Pass the model folder with -m, or give -s and the other flags explicitly.")
    try:
        with open(path) as f:
            saved = json.load(f)
    except ValueError as err:   # not JSON (truncated, edited): say which file
        raise DatasetError(f"{path} is not valid JSON ({err}): restore it from the training run, "
                           "or give -s and the other flags explicitly.") from None
    if not isinstance(saved, dict):
        raise DatasetError(f"{path} holds a {type(saved).__name__}, not the flags of a run: restore it from "
                           "the training run, or give -s and the other flags explicitly.")
    return saved


def explicit_arguments(parser: ArgumentParser, argv) -> dict:
    """Only the flags written on the command line (defaults left out)."""
    quiet = copy.deepcopy(parser)
    for action in quiet._actions:
        action.default = SUPPRESS
    return vars(quiet.parse_args(argv))


def get_combined_args(parser: ArgumentParser, argv=None) -> Namespace:
    """Flags written now win, then the model's saved cfg_args.json, then the parser's defaults."""
    argv = sys.argv[1:] if argv is None else argv
    cmdline = parser.parse_args(argv)  # validates, and gives the defaults
    try:
        saved = load_config(cmdline.model_path)
    except FileNotFoundError as err:
        print(f"Note: {err}")
        saved = {}
    explicit = explicit_arguments(parser, argv)
    _check_saved_choices(parser, saved, explicit, cmdline.model_path)
    return Namespace(**{**vars(cmdline), **saved, **explicit})


def _check_saved_choices(parser: ArgumentParser, saved: dict, explicit: dict, model_path: str) -> None:
    """A saved value outside its flag's choices (an edited or foreign cfg_args.json) stops here,
    naming the file and the flag, unless the command line gives that flag."""
    for action in parser._actions:
        name = action.dest
        if action.choices is None or name not in saved or name in explicit or saved[name] in action.choices:
            continue
        raise DatasetError(f"{os.path.join(model_path, CONFIG_FILE)}: {name} is {saved[name]!r}, not one of "
                           f"{', '.join(map(str, action.choices))}: fix the file or pass --{name}.")
