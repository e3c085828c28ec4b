"""DeformModel: the deformation MLP with its device, precision, optimizer, schedule and files.

Optimizer and learning rate follow Deformable-3DGS: Adam (eps 1e-15) with
lr = position_lr_init × 5 decayed log-linearly to position_lr_final (not × 5) over
deform_lr_max_steps. position_lr_delay_mult is passed as upstream, but without delay steps it
has no effect there either.
Weights live in ``<model_path>/deform/iteration_N/deform.pth`` as a plain network state dict,
the upstream file format.
"""
import contextlib
import os
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from arguments import resolve_switch
from utils.cuda_graphs import GraphedCalls
from utils.system_utils import saved_iterations
from utils.schedule import DEFORM_LR_SCALE
from utils.time_utils import DeformNetwork
from utils.atomic import write_atomically
from utils.fused_adam import FusedAdam

PRECISIONS = ("fp32", "tf32", "bf16")
PRECISION_CHOICES = ("auto",) + PRECISIONS   # --deform_precision; resolve_precision() settles "auto"
INITS = ("zero", "pytorch")
TIME_OUTSIDE = ("linear", "clamp", "extrapolate")
WEIGHTS_DIR = "deform"
WEIGHTS_FILE = "deform.pth"
MIN_BUCKET_ROWS = 1024   # smallest padded row count of a recorded network call
BUCKETS_KEPT = 2         # recordings of the network kept (each holds its activations)


def resolve_precision(requested: str, device, recorded: bool) -> str:
    """The number format the network runs in for --deform_precision ``requested``.

    "auto" (the default) is TF32 where the network trains through its CUDA-graph recordings
    (``recorded``, train.py under --cuda_graphs on): the recordings hold the network's own forward
    and backward matmuls, so TF32 covers exactly those and nothing else of the step. Everywhere
    else it is fp32: on the CPU (no TF32), when rendering (no recordings; fp32 costs little
    there), and when training op by op, where TF32, a global switch, would also cover every
    other matmul of the step's backward pass. An explicit choice is returned as given."""
    if requested not in PRECISION_CHOICES:
        raise ValueError(f"Unknown deformation precision {requested!r}: use one of "
                         f"{', '.join(PRECISION_CHOICES)} (--deform_precision).")
    if requested != "auto":
        return requested
    return "tf32" if recorded and torch.device(device).type == "cuda" else "fp32"


class DeformModel:
    def __init__(self, is_blender: bool = False, is_6dof: bool = False, depth: int = 8, width: int = 256,
                 precision: str = "fp32", device=None, init: str = "zero",
                 time_frequencies: int = -1, scale_offsets: bool = True, time_network: Optional[bool] = None):
        """init: "zero" starts as the identity deformation (output heads at zero); "pytorch" keeps
        PyTorch's default init of every layer, as upstream Deformable-3DGS. scale_offsets=False:
        the Gaussians keep their size at every time (--deform_scale off, arguments/ says why)."""
        if init not in INITS:
            raise ValueError(f"Unknown deformation init {init!r}: use one of {', '.join(INITS)} (--deform_init).")
        if precision not in PRECISIONS:
            raise ValueError(f"Unknown deformation precision {precision!r}: use one of {', '.join(PRECISIONS)} "
                             "(--deform_precision).")
        self.device = _resolve_device(device)
        self.is_blender, self.is_6dof = is_blender, is_6dof
        self.deform = DeformNetwork(D=depth, W=width, is_blender=is_blender, is_6dof=is_6dof,
                                    time_frequencies=time_frequencies, scale_offsets=scale_offsets,
                                    time_network=time_network).to(self.device)
        if init == "zero":
            self.deform.zero_heads_()
        self.notices: List[str] = []   # one-line messages the caller prints once
        self.precision = self._usable_precision(precision)
        self.optimizer: Optional[torch.optim.Optimizer] = None
        self.trainable = True
        self.time_range: Optional[Tuple[float, float]] = None   # set_time_outside: no extrapolation in time
        self.inner_times: Optional[Tuple[float, float]] = None  # --time_outside linear: the trained times next to the ends
        self.last_rows = 0   # Gaussians the network ran on in the last offsets() call (its cost)
        self.graphs: Optional[GraphedCalls] = None   # use_cuda_graphs

    @classmethod
    def for_model(cls, dataset, precision: str = "fp32", device=None) -> "DeformModel":
        """The network a run's model parameters describe (arguments.ModelParams: --is_blender,
        --is_6dof, --deform_depth, --deform_width, --time_frequencies, --time_network, --deform_init,
        --deform_scale): the one place that turns those flags into a DeformModel. A configuration
        saved before --time_network existed means "auto" (upstream's: with --is_blender)."""
        time_network = resolve_switch(getattr(dataset, "time_network", "auto"), auto=dataset.is_blender)
        return cls(dataset.is_blender, dataset.is_6dof, depth=dataset.deform_depth, width=dataset.deform_width,
                   precision=precision, device=device, init=dataset.deform_init,
                   time_frequencies=dataset.time_frequencies, scale_offsets=dataset.deform_scale == "on",
                   time_network=time_network)

    # ---- forward -------------------------------------------------------------------------
    def step(self, xyz: torch.Tensor, time_input: torch.Tensor,
             gate: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """xyz [N, 3] (detached by the caller), time_input [N, 1], gate [N, 1] or None (scales the
        motion, see DeformNetwork) -> d_xyz [N, 3] or [N, 4, 4] (is_6dof), d_rotation [N, 4],
        d_scaling [N, 3]; always float32 whatever the precision."""
        _check_inputs(xyz, time_input, self.device)
        with self.precision_context():
            d_xyz, d_rotation, d_scaling = self.deform(xyz, time_input, gate)
        return d_xyz.float(), d_rotation.float(), d_scaling.float()

    def offsets(self, xyz: torch.Tensor, fid, noise_std: float = 0.0,
                gate: Optional[torch.Tensor] = None, every_row: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The deformation of every Gaussian at one time, in one call.

        xyz [N, 3] canonical centres (detached here: the network does not move its own inputs);
        fid the camera's time (number or 0-d tensor); noise_std > 0 adds one Gaussian draw of that
        std to the time (annealed smoothing while training); gate [N] in [0, 1] or None: how much
        of the predicted motion each Gaussian takes. The network runs only on Gaussians whose gate
        is > 0; the others get exactly no offset (the identity transform with is_6dof). every_row
        runs it on all rows and scales by the gate (the same offsets, slower: the speed baseline)."""
        xyz = xyz.detach()
        outside = self._outside_end(fid)
        if outside is not None:   # --time_outside linear: first-order continuation past the end
            end, inner, share = outside
            at_end = self._offsets_at(xyz, end, 0.0, gate, every_row)
            rows = self.last_rows
            at_inner = self._offsets_at(xyz, inner, 0.0, gate, every_row)
            self.last_rows += rows
            return tuple(a + share * (a - b) for a, b in zip(at_end, at_inner))
        return self._offsets_at(xyz, fid, noise_std, gate, every_row)

    def _offsets_at(self, xyz, fid, noise_std, gate, every_row):
        """offsets() at one time, the range clamp applied (the network's one evaluation)."""
        n = xyz.shape[0]
        t = torch.full((1, 1), float(fid), dtype=xyz.dtype, device=xyz.device)   # made there: no copy
        if self.time_range is not None:
            t = t.clamp(*self.time_range)
        if noise_std > 0.0:
            t = t + torch.randn(1, 1, device=xyz.device) * noise_std
        self.last_rows = n
        if gate is None:
            return self._rows(xyz, t, None)
        gate = gate.detach().reshape(-1).to(xyz.device)
        if every_row:
            return self.step(xyz, t.expand(n, 1), gate[:, None])
        moving = torch.nonzero(gate > 0).squeeze(1)
        self.last_rows = moving.shape[0]
        d_xyz, d_rotation, d_scaling = self._rows(xyz[moving], t, gate[moving, None])
        return _scatter_rows(d_xyz, moving, n, identity=self.is_6dof), \
            _scatter_rows(d_rotation, moving, n), _scatter_rows(d_scaling, moving, n)

    def use_cuda_graphs(self, enabled: bool) -> None:
        """While the network learns, run its forward and backward as recorded CUDA graphs
        (utils/cuda_graphs.py; CUDA, fp32 or TF32): the rows are padded up to a bucket size
        (bucket_rows) with gate 0, so padded rows have no output and no gradient. The
        BUCKETS_KEPT buckets used last stay recorded (each holds its activations)."""
        usable = enabled and self.device.type == "cuda" and self.precision != "bf16"
        self.graphs = GraphedCalls("deformation network", max_recordings=BUCKETS_KEPT) if usable else None

    def _rows(self, xyz: torch.Tensor, t: torch.Tensor, gate: Optional[torch.Tensor]):
        """step() on M rows at time t [1, 1] with gate [M, 1] (None: the full motion), through
        the recording of their bucket when use_cuda_graphs is on and the network learns."""
        m = xyz.shape[0]
        if self.graphs is None or not (self.trainable and torch.is_grad_enabled()):
            return self.step(xyz, t.expand(m, 1), gate)
        # Even with no moving row the call goes through a recording (all rows padding): a network
        # run op by op here would leave autograd nodes of its weights on the default stream, and
        # a later recording that meets them while they live fails (its capture would wait on them).
        rows = bucket_rows(m)
        gate = torch.ones(m, 1, dtype=xyz.dtype, device=xyz.device) if gate is None else gate
        inputs = (F.pad(xyz, (0, 0, 0, rows - m)), t.expand(rows, 1), F.pad(gate.to(xyz.dtype), (0, 0, 0, rows - m)))
        with self.precision_context():
            outputs = self.graphs(self.precision, lambda: _Recorded(self.deform), inputs)
        return tuple(output[:m] for output in outputs)

    def _outside_end(self, fid) -> Optional[Tuple[float, float, float]]:
        """Under --time_outside linear, for a time before the first (after the last) trained time:
        (that end, the trained time next to it, how far past the end in units of their spacing,
        at most 1); None inside the range or under the other policies. fid is a camera's Python
        float, so this costs no GPU round trip (a 0-d CUDA tensor would be read once)."""
        if self.inner_times is None:
            return None
        t = float(fid)
        first, last = self.time_range
        for end, inner, past in ((first, self.inner_times[0], first - t), (last, self.inner_times[1], t - last)):
            if past > 0.0:
                return end, inner, min(past / abs(end - inner), 1.0)
        return None

    def set_time_outside(self, policy: str, cameras) -> None:
        """What the network sees for a time outside the cameras' [first, last] time (--time_outside).

        The network never learned those times: with its high time frequencies, a frame held out
        before the first training frame (llffhold holds out frame 0) got a guessed pose, sometimes
        far off.
        "linear": the motion continues at its speed at the end, measured between the end and the
        trained time next to it: offsets(end) + s (offsets(end) - offsets(next)), s the distance
        past the end in units of that spacing, at most 1 (beyond one frame spacing the pose is
        held, so a far-off time cannot fly away). Two network evaluations for such a time. With a
        single trained time it is "clamp".
        "clamp": the nearest end's pose, off by at most one frame's motion.
        "extrapolate": the time itself (upstream).
        Training times are inside the range, so training is the same under every policy."""
        if policy not in TIME_OUTSIDE:
            raise ValueError(f"--time_outside must be one of {', '.join(TIME_OUTSIDE)}, got {policy!r}")
        times = sorted({float(camera.fid) for camera in cameras})
        self.time_range = (times[0], times[-1]) if policy != "extrapolate" and times else None
        self.inner_times = (times[1], times[-2]) if policy == "linear" and len(times) > 1 else None

    def precision_context(self):
        """The numeric mode of the network. bf16 autocast is recorded in the graph, so its backward
        follows by itself; TF32 is a global switch read when kernels launch, so wrap
        ``loss.backward()`` in this context too to get TF32 gradients."""
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        if self.precision == "tf32":
            return _allow_tf32()
        return contextlib.nullcontext()

    def backward_precision_context(self):
        """The context train.py wraps ``loss.backward()`` in. With recorded CUDA graphs the
        network's backward replays the kernels recorded under precision_context(), so nothing is
        switched and the rest of the backward stays fp32. Without recordings (--cuda_graphs off),
        TF32 must be on while backward runs for the network's gradients to use it (the switch then
        covers the whole backward pass). After a failed recording the backward stays fp32."""
        if self.graphs is not None:
            return contextlib.nullcontext()
        return self.precision_context() if self.precision == "tf32" else contextlib.nullcontext()

    def _usable_precision(self, precision: str) -> str:
        if precision == "bf16" and not torch.amp.is_autocast_available(self.device.type):
            self.notices.append(f"bf16 autocast is not available on {self.device.type}: "
                                "the deformation network runs in fp32.")
            return "fp32"
        if precision == "tf32" and self.device.type != "cuda":
            self.notices.append("TF32 only exists on CUDA GPUs: the deformation network runs in fp32.")
            return "fp32"
        return precision

    # ---- optimization --------------------------------------------------------------------
    def train_setting(self, training_args, fused: bool = False) -> None:
        """Adam from an OptimizationParams group, at the schedule's first learning rate
        (TrainingSchedule.deform_lr); fused: torch's one-kernel Adam (see GaussianModel.training_setup)."""
        lr_init = training_args.position_lr_init * DEFORM_LR_SCALE
        groups = [{"params": list(self.deform.parameters()), "lr": lr_init, "name": "deform"}]
        self.optimizer = FusedAdam(groups, lr=0.0, eps=1e-15) if fused else torch.optim.Adam(groups, lr=0.0, eps=1e-15)

    def set_learning_rate(self, lr: float) -> None:
        """The network's learning rate for the next step (TrainingSchedule.deform_lr decays it)."""
        self._require_optimizer("set_learning_rate")
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def set_trainable(self, flag: bool) -> None:
        """Switch learning on or off (stop_MLP). Off drops pending gradients, so a later
        optimizer step leaves the weights and the Adam moments exactly as they are; its CUDA-graph
        recordings, used only while it learns, are dropped."""
        if self.trainable and not flag and self.graphs is not None:
            self.graphs.clear()
        self.trainable = bool(flag)
        for p in self.deform.parameters():
            p.requires_grad_(self.trainable)
            if not self.trainable:
                p.grad = None

    def optimizer_step(self) -> None:
        """Apply and clear the gradients (a no-op while frozen)."""
        self._require_optimizer("optimizer_step")
        if self.trainable:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _require_optimizer(self, what: str) -> None:
        if self.optimizer is None:
            raise RuntimeError(f"DeformModel.{what} needs the optimizer: call train_setting(opt) first.")

    # ---- files and checkpoints -----------------------------------------------------------
    def save_weights(self, model_path: str, iteration: int) -> str:
        """Write deform/iteration_N/deform.pth atomically (temporary file + rename); returns its path."""
        folder = os.path.join(model_path, WEIGHTS_DIR, f"iteration_{iteration}")
        os.makedirs(folder, exist_ok=True)
        state = self.deform.state_dict()
        return write_atomically(os.path.join(folder, WEIGHTS_FILE), lambda temporary: torch.save(state, temporary))

    def load_weights(self, model_path: str, iteration: int = -1) -> int:
        """Load deform/iteration_N/deform.pth (-1: the highest N); returns the iteration loaded."""
        folder = os.path.join(model_path, WEIGHTS_DIR)
        if iteration == -1:
            iteration = latest_iteration(folder)
        path = os.path.join(folder, f"iteration_{iteration}", WEIGHTS_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No deformation weights at {path!r}: available iterations in {folder!r}: "
                                    f"{saved_iterations(folder, WEIGHTS_FILE) or 'none'}. Pass one of them (--iteration).")
        try:
            weights = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as err:
            raise RuntimeError(f"Cannot read deformation weights {path!r} ({err}); the file may be truncated. "
                               "Load another iteration.") from err
        self._load_network(weights, source=path)
        return iteration

    def state_dict(self) -> dict:
        """Network, optimizer and trainable flag: everything an exact resume needs."""
        return {"network": self.deform.state_dict(),
                "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
                "trainable": self.trainable,
                "architecture": self.architecture()}

    def load_state_dict(self, state: dict) -> None:
        self._load_network(state["network"], source="the checkpoint")
        if state.get("optimizer") is not None:
            self._require_optimizer("load_state_dict (of a checkpoint with optimizer state)")
            self.optimizer.load_state_dict(state["optimizer"])
        self.set_trainable(state.get("trainable", True))

    def architecture(self) -> dict:
        return {"is_blender": self.is_blender, "is_6dof": self.is_6dof,
                "depth": self.deform.D, "width": self.deform.W,
                "time_frequencies": self.deform.time_frequencies, "time_network": self.deform.time_network}

    def _load_network(self, weights: dict, source: str) -> None:
        expected = {k: tuple(v.shape) for k, v in self.deform.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in weights.items()}
        if expected != found:
            raise RuntimeError(
                f"The deformation weights in {source} do not fit this network ({self._describe()}): "
                f"{_first_difference(expected, found)}. Use the --deform_depth, --deform_width, "
                "--time_frequencies, --time_network, --is_blender and --is_6dof of the run that wrote them.")
        self.deform.load_state_dict(weights)

    def _describe(self) -> str:
        a = self.architecture()
        return (f"depth {a['depth']}, width {a['width']}, is_blender={a['is_blender']}, "
                f"is_6dof={a['is_6dof']}, time_frequencies={a['time_frequencies']}, "
                f"time_network={a['time_network']}")


def bucket_rows(m: int) -> int:
    """The smallest size 1024·2^k·(1, 5/4, 3/2 or 7/4) that holds m rows: at most a quarter of
    padding, and few distinct shapes (so few recordings) as the moving rows change."""
    size = MIN_BUCKET_ROWS
    while True:
        for quarters in (4, 5, 6, 7):
            if size * quarters // 4 >= m:
                return size * quarters // 4
        size *= 2


class _Recorded(torch.nn.Module):
    """The network behind one recording: make_graphed_callables replaces a recorded module's
    forward, so each recording wraps the network in a module of its own (the same parameters)."""

    def __init__(self, network: DeformNetwork):
        super().__init__()
        self.network = network

    def forward(self, xyz, t, gate):
        return self.network(xyz, t, gate)


def latest_iteration(folder: str) -> int:
    """The highest N among folder/iteration_N (numeric, so 10000 beats 9000)."""
    iterations = saved_iterations(folder, WEIGHTS_FILE)
    if not iterations:
        raise FileNotFoundError(f"No saved deformation weights in {folder!r} (expected iteration_N/{WEIGHTS_FILE}): "
                                "is this a model folder written by train.py, and did training reach a save iteration?")
    return iterations[-1]


def _first_difference(expected: dict, found: dict) -> str:
    missing = sorted(set(expected) - set(found))
    if missing:
        return f"missing {missing[0]}"
    unexpected = sorted(set(found) - set(expected))
    if unexpected:
        return f"unexpected {unexpected[0]}"
    key = next(k for k in expected if expected[k] != found[k])
    return f"{key} has shape {list(found[key])}, expected {list(expected[key])}"


def _scatter_rows(rows: torch.Tensor, ids: torch.Tensor, n: int, identity: bool = False) -> torch.Tensor:
    """[M, ...] rows placed at ids of an [n, ...] tensor of zeros (of identity matrices); differentiable."""
    if identity:
        full = torch.eye(rows.shape[-1], dtype=rows.dtype, device=rows.device).expand(n, *rows.shape[1:])
    else:
        full = rows.new_zeros((n, *rows.shape[1:]))
    return full.index_put((ids,), rows)


def _check_inputs(xyz: torch.Tensor, time_input: torch.Tensor, device: torch.device) -> None:
    if xyz.dim() != 2 or xyz.shape[1] != 3:
        raise ValueError(f"DeformModel.step expects xyz of shape [N, 3], got {list(xyz.shape)}.")
    if time_input.shape != (xyz.shape[0], 1):
        raise ValueError(f"DeformModel.step expects time_input of shape [N, 1] = [{xyz.shape[0]}, 1], "
                         f"got {list(time_input.shape)} (expand the camera's fid to every Gaussian).")
    if xyz.device.type != device.type or time_input.device.type != device.type:
        raise ValueError(f"DeformModel lives on {device} but got xyz on {xyz.device} and time_input on "
                         f"{time_input.device}: move them (or build DeformModel with device=...).")


def _resolve_device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("DeformModel was asked for a CUDA device but no GPU is available: "
                           "pass device='cpu' (--data_device cpu).")
    return device


@contextlib.contextmanager
def _allow_tf32():
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
