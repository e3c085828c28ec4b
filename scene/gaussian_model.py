"""The set of 3D Gaussians: per-Gaussian tensors in one container, their Adam optimizer, PLY I/O.

Stored tensors (``GaussianModel.tensors``, N Gaussians, D = max SH degree, K = mask_dimension):
    xyz      [N, 3]               centres
    f_dc     [N, 1, 3]            SH degree-0 coefficients
    f_rest   [N, (D+1)^2 - 1, 3]  higher SH coefficients
    opacity  [N, 1]               logit (activated by sigmoid)
    scaling  [N, 3]               log scale (activated by exp)
    rotation [N, 4]               quaternion (w, x, y, z), normalized when read
    mask     [N, K]               hand-mask feature, no activation (K may be 0)
Every edit (densify, prune, opacity reset, loading) goes through ``cat_tensors``, ``prune`` or
``replace_tensor``, which keep the tensors and their Adam state in step. Adam has one parameter
group per tensor, named as above. Densification statistics live in scene/densify.py.
"""
import os
from typing import Dict, Optional

import numpy as np
import torch
from plyfile import PlyData, PlyElement
from torch import nn

from gaussian_renderer.rules import MAX_FEATURES
from scene.readers.dataset_types import DatasetError
from scene.knn import dist2_knn3
from utils.general_utils import (build_covariance, inverse_sigmoid,
                                 strip_symmetric)
from utils.fused_adam import FusedAdam
from utils.graphics_utils import BasicPointCloud
from utils.sh_utils import MAX_SH_DEGREE, RGB2SH
from utils.atomic import write_atomically

TENSOR_NAMES = ("xyz", "f_dc", "f_rest", "opacity", "scaling", "rotation", "mask")
INITIAL_OPACITY = 0.1
MIN_INITIAL_DIST2 = 1e-7
ADAM_EPS = 1e-15
F_REST_LR_DIVISOR = 20.0
STATE_FORMAT = "egomask-gaussians-v1"
COLOR_TOLERANCE = 1e-5   # float round-off of colours computed from SH


class GaussianModel:
    def __init__(self, sh_degree: int, mask_dimension: int = 3, device=None):
        """device: where the tensors live (default CUDA when available, else CPU)."""
        # the rasterizers' limits, checked before anything is trained: SH up to degree 3, and at most
        # MAX_FEATURES hand-feature channels (both backends refuse more)
        if not 0 <= sh_degree <= MAX_SH_DEGREE or not 0 <= mask_dimension <= MAX_FEATURES:
            raise ValueError(f"sh_degree ({sh_degree}) must be in 0..{MAX_SH_DEGREE} and mask_dimension "
                             f"({mask_dimension}) in 0..{MAX_FEATURES}.")
        self.max_sh_degree = sh_degree
        self.active_sh_degree = 0
        self.mask_dimension = mask_dimension
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.spatial_lr_scale: Optional[float] = None
        self.optimizer: Optional[torch.optim.Adam] = None
        self.fused_adam = False
        self.mask_trainable = False  # the mask feature learns only in the mask phase
        self._mask_lr = 0.0
        self.tensors: Dict[str, nn.Parameter] = {}
        self._install_all(self._empty_tensors(0))

    # --- shapes ---------------------------------------------------------------------------
    @property
    def num_rest_coeffs(self) -> int:
        return (self.max_sh_degree + 1) ** 2 - 1

    def _row_shapes(self) -> Dict[str, tuple]:
        return {"xyz": (3,), "f_dc": (1, 3), "f_rest": (self.num_rest_coeffs, 3), "opacity": (1,),
                "scaling": (3,), "rotation": (4,), "mask": (self.mask_dimension,)}

    def _empty_tensors(self, n: int) -> Dict[str, torch.Tensor]:
        return {name: torch.zeros(n, *shape, device=self.device) for name, shape in self._row_shapes().items()}

    # --- what the renderer reads ----------------------------------------------------------
    @property
    def get_xyz(self) -> torch.Tensor:
        return self.tensors["xyz"]

    @property
    def get_features(self) -> torch.Tensor:
        """[N, (D+1)^2, 3]"""
        return torch.cat((self.tensors["f_dc"], self.tensors["f_rest"]), dim=1)

    @property
    def get_opacity(self) -> torch.Tensor:
        return torch.sigmoid(self.tensors["opacity"])

    @property
    def get_scaling(self) -> torch.Tensor:
        return torch.exp(self.tensors["scaling"])

    @property
    def get_rotation(self) -> torch.Tensor:
        return nn.functional.normalize(self.tensors["rotation"], dim=1)

    @property
    def get_mask(self) -> torch.Tensor:
        return self.tensors["mask"]

    def get_covariance(self, scaling_modifier: float = 1.0) -> torch.Tensor:
        """[N, 6] upper triangle (xx, xy, xz, yy, yz, zz)."""
        return strip_symmetric(build_covariance(self.get_scaling, self.get_rotation, scaling_modifier))

    def oneupSHdegree(self) -> None:
        if self.active_sh_degree < self.max_sh_degree:
            self.active_sh_degree += 1

    # Upstream names, read-only.
    _xyz = property(lambda self: self.tensors["xyz"])
    _features_dc = property(lambda self: self.tensors["f_dc"])
    _features_rest = property(lambda self: self.tensors["f_rest"])
    _opacity = property(lambda self: self.tensors["opacity"])
    _scaling = property(lambda self: self.tensors["scaling"])
    _rotation = property(lambda self: self.tensors["rotation"])
    _mask = property(lambda self: self.tensors["mask"])

    # --- initialisation -------------------------------------------------------------------
    def create_from_pcd(self, pcd: BasicPointCloud, spatial_lr_scale: float) -> None:
        """Gaussians at the points: SH DC from the colours, isotropic scale sqrt(mean kNN-3 dist²),
        identity rotation, opacity 0.1, mask 0."""
        points, colors = _checked_point_cloud(pcd)
        self.spatial_lr_scale = float(spatial_lr_scale)
        xyz = torch.tensor(points, dtype=torch.float32, device=self.device)
        rgb = torch.tensor(colors, dtype=torch.float32, device=self.device)
        n = xyz.shape[0]
        dist2 = torch.clamp_min(dist2_knn3(xyz), MIN_INITIAL_DIST2)
        values = self._empty_tensors(n)
        values["xyz"] = xyz
        values["f_dc"] = RGB2SH(rgb)[:, None, :]
        values["opacity"] = inverse_sigmoid(torch.full((n, 1), INITIAL_OPACITY, device=self.device))
        values["scaling"] = torch.log(torch.sqrt(dist2))[:, None].repeat(1, 3)
        values["rotation"][:, 0] = 1.0
        self._install_all(values)
        print(f"Number of points at initialisation: {n}")

    # --- optimizer ------------------------------------------------------------------------
    def training_setup(self, opt, fused: Optional[bool] = None) -> None:
        """Adam with one group per tensor, at the flags' initial learning rates. fused: torch's
        one-kernel-per-group Adam through utils/fused_adam.py (the same update in far fewer
        launches and less host work: the training loop is bound by the host); None keeps the
        last setting (a resumed checkpoint)."""
        if fused is not None:
            self.fused_adam = bool(fused)
        if self.spatial_lr_scale is None:
            raise ValueError("training_setup: spatial_lr_scale is unknown; create the model with "
                             "create_from_pcd, or pass spatial_lr_scale to load_ply / load_state_dict.")
        self._mask_lr = opt.mask_lr
        learning_rates = {
            "xyz": opt.position_lr_init * self.spatial_lr_scale,
            "f_dc": opt.feature_lr,
            "f_rest": opt.feature_lr / F_REST_LR_DIVISOR,
            "opacity": opt.opacity_lr,
            "scaling": opt.scaling_lr,
            "rotation": opt.rotation_lr,
            "mask": self._current_mask_lr(),
        }
        groups = [{"params": [self.tensors[name]], "lr": learning_rates[name], "name": name}
                  for name in TENSOR_NAMES]
        self.optimizer = FusedAdam(groups, lr=0.0, eps=ADAM_EPS) if self.fused_adam else \
            torch.optim.Adam(groups, lr=0.0, eps=ADAM_EPS)

    def set_position_lr(self, lr: float) -> None:
        """The positions' learning rate for the next step (TrainingSchedule.position_lr decays it)."""
        if self.optimizer is None:
            raise RuntimeError("set_position_lr: call training_setup(opt) first.")
        self._group("xyz")["lr"] = lr

    def set_mask_trainable(self, trainable: bool) -> None:
        """Outside the mask phase the mask feature gets no gradient and lr 0, so Adam leaves it
        and its moments untouched (its step count too): resuming at any point is exact."""
        self.mask_trainable = bool(trainable)
        self.tensors["mask"].requires_grad_(self.mask_trainable)
        if not self.mask_trainable:
            self.tensors["mask"].grad = None
        if self.optimizer is not None:
            self._group("mask")["lr"] = self._current_mask_lr()

    def _current_mask_lr(self) -> float:
        return self._mask_lr if self.mask_trainable else 0.0

    def _group(self, name: str) -> dict:
        for group in self.optimizer.param_groups:
            if group["name"] == name:
                return group
        raise KeyError(f"no optimizer group {name!r}")

    # --- the generic row operations -------------------------------------------------------
    def cat_tensors(self, new_rows: Dict[str, torch.Tensor]) -> None:
        """Append rows (one [M, ...] entry per stored tensor); their Adam moments start at 0."""
        self._check_rows(new_rows)
        for name in TENSOR_NAMES:
            extra = new_rows[name].detach().to(self.device, torch.float32)
            self._edit_rows(name, lambda t, extra=extra: torch.cat([t, torch.zeros_like(extra)]),
                            torch.cat([self.tensors[name].detach(), extra]))

    def prune(self, keep_mask: torch.Tensor) -> None:
        """Keep the rows where keep_mask [N] (bool) is True, in the tensors and their Adam state."""
        keep_mask = keep_mask.to(self.device)
        for name in TENSOR_NAMES:
            self._edit_rows(name, lambda t: t[keep_mask], self.tensors[name].detach()[keep_mask])

    def replace_tensor(self, name: str, value: torch.Tensor) -> None:
        """Replace one stored tensor (same shape), zeroing its Adam moments."""
        if value.shape != self.tensors[name].shape:
            raise ValueError(f"replace_tensor({name!r}): shape {tuple(value.shape)} != {tuple(self.tensors[name].shape)}")
        self._edit_rows(name, torch.zeros_like, value.detach().to(self.device, torch.float32))

    def _edit_rows(self, name: str, edit_state, new_value: torch.Tensor) -> None:
        """Install new_value as tensor `name`, applying edit_state to its per-row Adam moments."""
        old = self.tensors[name]
        new = self._install(name, new_value)
        if self.optimizer is None:
            return
        state = self.optimizer.state.pop(old, None)
        if state is not None:
            self.optimizer.state[new] = {
                key: edit_state(value) if torch.is_tensor(value) and value.shape == old.shape else value
                for key, value in state.items()}
        self._group(name)["params"][0] = new

    def _install(self, name: str, value: torch.Tensor) -> nn.Parameter:
        trainable = self.mask_trainable if name == "mask" else True
        param = nn.Parameter(value.contiguous(), requires_grad=trainable)
        self.tensors[name] = param
        return param

    def _install_all(self, values: Dict[str, torch.Tensor]) -> None:
        """Replace every tensor (new model contents); the optimizer, if any, must be set up again."""
        self._check_rows(values)
        for name in TENSOR_NAMES:
            self._install(name, values[name].to(self.device, torch.float32))
        self.optimizer = None

    def _check_rows(self, rows: Dict[str, torch.Tensor]) -> None:
        missing = set(TENSOR_NAMES) - set(rows)
        if missing:
            raise ValueError(f"missing per-Gaussian tensors: {sorted(missing)}")
        n = rows["xyz"].shape[0]
        for name, shape in self._row_shapes().items():
            if tuple(rows[name].shape) != (n, *shape):
                raise ValueError(f"tensor {name!r} has shape {tuple(rows[name].shape)}, expected {(n, *shape)}")

    # --- PLY --------------------------------------------------------------------------------
    def save_ply(self, path: str) -> None:
        write_gaussian_ply(path, {name: t.detach().cpu() for name, t in self.tensors.items()})

    def load_ply(self, path: str, spatial_lr_scale: Optional[float] = None) -> None:
        """Read a 3DGS PLY (ours or any standard one); a lower SH degree is zero-padded, missing
        msk_* become zeros (with a notice). active_sh_degree becomes max_sh_degree (upstream)."""
        values = read_gaussian_ply(path, self.max_sh_degree, self.mask_dimension)
        self._install_all(values)
        self.active_sh_degree = self.max_sh_degree
        if spatial_lr_scale is not None:
            self.spatial_lr_scale = float(spatial_lr_scale)

    # --- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything this model needs for an exact resume (the densification statistics are
        saved beside it, by DensificationStrategy.state_dict)."""
        return {
            "format": STATE_FORMAT,
            "max_sh_degree": self.max_sh_degree,
            "mask_dimension": self.mask_dimension,
            "active_sh_degree": self.active_sh_degree,
            "spatial_lr_scale": self.spatial_lr_scale,
            "mask_trainable": self.mask_trainable,
            "tensors": {name: t.detach().clone() for name, t in self.tensors.items()},
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict, training_args=None) -> None:
        """Restore from state_dict(); with training_args the optimizer (lrs, moments, steps) too."""
        self._check_state(state)
        self.mask_trainable = state["mask_trainable"]   # before installing: sets requires_grad
        self._install_all(state["tensors"])
        self.active_sh_degree = state["active_sh_degree"]
        self.spatial_lr_scale = state["spatial_lr_scale"]
        if training_args is not None:
            self.training_setup(training_args)
            if state["optimizer"] is not None:
                self.optimizer.load_state_dict(state["optimizer"])

    def _check_state(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise DatasetError("This checkpoint does not hold EgoMask-GS Gaussians (format "
                               f"{state.get('format') if isinstance(state, dict) else type(state).__name__!r}); "
                               "pass a chkpnt<N>.pth written by this code's train.py.")
        for key, mine in (("max_sh_degree", self.max_sh_degree), ("mask_dimension", self.mask_dimension)):
            if state[key] != mine:
                raise DatasetError(f"The checkpoint has {key} = {state[key]} but the model was built with "
                                   f"{mine}; pass --{key.replace('max_', '')} {state[key]}.")


def _checked_point_cloud(pcd: BasicPointCloud):
    points = np.asarray(pcd.points, dtype=np.float64)
    colors = np.asarray(pcd.colors, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] == 0:
        raise DatasetError(f"The initial point cloud has shape {points.shape}; it needs N >= 1 points [N, 3]. "
                           "Check points3D / the initial .ply of the dataset.")
    if colors.shape != points.shape:
        raise DatasetError(f"The initial point cloud has {points.shape[0]} points but colours of shape "
                           f"{colors.shape}; they must match.")
    if not np.isfinite(points).all():
        raise DatasetError("The initial point cloud contains NaN/infinite coordinates; clean points3D.")
    if colors.min() < -COLOR_TOLERANCE or colors.max() > 1.0 + COLOR_TOLERANCE:
        raise DatasetError(f"Initial point colours must lie in [0, 1] (got {colors.min():.3g}..{colors.max():.3g}); "
                           "divide 8-bit colours by 255.")
    return points, colors


# --- PLY in the standard 3DGS layout (+ msk_*) ---------------------------------------------------
# x y z nx ny nz f_dc_0..2 f_rest_0..3M-1 opacity scale_0..2 rot_0..3 msk_0..K-1, float32, where
# f_dc / f_rest are stored channel-major ([N, 3, M] flattened), as upstream; normals are zeros.
PLY_SCALARS = ("opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")


def write_gaussian_ply(path: str, tensors: Dict[str, torch.Tensor]) -> None:
    """tensors: the stored (not activated) per-Gaussian tensors on the CPU. Written atomically."""
    n = tensors["xyz"].shape[0]
    columns = {
        "xyz": tensors["xyz"],
        "normals": torch.zeros(n, 3),
        "f_dc": tensors["f_dc"].transpose(1, 2).flatten(start_dim=1),
        "f_rest": tensors["f_rest"].transpose(1, 2).flatten(start_dim=1),
        "scalars": torch.cat([tensors["opacity"], tensors["scaling"], tensors["rotation"]], dim=1),
        "mask": tensors["mask"],
    }
    values = torch.cat(list(columns.values()), dim=1).numpy().astype(np.float32)
    names = (["x", "y", "z", "nx", "ny", "nz"] + _numbered("f_dc_", 3)
             + _numbered("f_rest_", columns["f_rest"].shape[1]) + list(PLY_SCALARS)
             + _numbered("msk_", columns["mask"].shape[1]))
    # All fields are float32, so the [N, C] matrix can be viewed as N records without a copy.
    records = np.ascontiguousarray(values).view(np.dtype([(name, "<f4") for name in names])).reshape(n)
    _write_atomically(path, PlyData([PlyElement.describe(records, "vertex")], byte_order="<"))


def read_gaussian_ply(path: str, max_sh_degree: int, mask_dimension: int) -> Dict[str, torch.Tensor]:
    """Stored per-Gaussian tensors from a 3DGS PLY; raises DatasetError naming the file."""
    vertex = _read_vertex_element(path)
    names = set(vertex.data.dtype.names)
    required = ["x", "y", "z"] + _numbered("f_dc_", 3) + list(PLY_SCALARS)
    missing = [name for name in required if name not in names]
    if missing:
        raise DatasetError(f"{path}: missing Gaussian properties {missing}; this is not a 3DGS Gaussian "
                           "PLY (a plain point cloud?). Pass a point_cloud.ply written by 3DGS training.")

    def columns(names_):
        return torch.from_numpy(np.stack([np.asarray(vertex[name], dtype=np.float32) for name in names_], axis=1))

    n = len(vertex.data)
    file_rest = _numbered_columns(path, names, "f_rest_")
    rest = _pad_sh_rest(path, columns(file_rest).reshape(n, 3, -1), max_sh_degree)   # [N, 3, M]
    values = {
        "xyz": columns(["x", "y", "z"]),
        "f_dc": columns(_numbered("f_dc_", 3)).reshape(n, 3, 1).transpose(1, 2),
        "f_rest": rest.transpose(1, 2),
        "opacity": columns(["opacity"]),
        "scaling": columns(_numbered("scale_", 3)),
        "rotation": columns(_numbered("rot_", 4)),
        "mask": _read_mask(path, names, columns, n, mask_dimension),
    }
    bad = sum(int((~torch.isfinite(v)).any(dim=tuple(range(1, v.ndim))).sum()) for v in values.values() if v.numel())
    if bad:
        raise DatasetError(f"{path}: {bad} Gaussian attribute rows hold NaN/infinite values; "
                           "the training that wrote it diverged: use an earlier iteration.")
    return {name: value.contiguous() for name, value in values.items()}


def _numbered(prefix: str, count: int) -> list:
    return [f"{prefix}{i}" for i in range(count)]


def _numbered_columns(path: str, names: set, prefix: str) -> list:
    """Names prefix0..prefix{n-1} present in the file, checked to be contiguous."""
    found = sorted((name for name in names if name.startswith(prefix)), key=lambda s: int(s[len(prefix):]))
    if found != _numbered(prefix, len(found)):
        raise DatasetError(f"{path}: properties {found} are not numbered 0..{len(found) - 1}; the file is damaged.")
    return found


def _pad_sh_rest(path: str, rest: torch.Tensor, max_sh_degree: int) -> torch.Tensor:
    """rest [N, 3, M_file] -> [N, 3, (D+1)^2 - 1], zero-padding a lower SH degree."""
    file_coeffs = rest.shape[2]
    file_degree = round((file_coeffs + 1) ** 0.5) - 1
    if (file_degree + 1) ** 2 - 1 != file_coeffs:
        raise DatasetError(f"{path}: {3 * file_coeffs} f_rest_* properties do not match any SH degree; the file is damaged.")
    if file_degree > max_sh_degree:
        raise DatasetError(f"{path}: has SH degree {file_degree} but the model was built with degree "
                           f"{max_sh_degree}; pass --sh_degree {file_degree}.")
    wanted = (max_sh_degree + 1) ** 2 - 1
    return torch.nn.functional.pad(rest, (0, wanted - file_coeffs))


def _read_mask(path: str, names: set, columns, n: int, mask_dimension: int) -> torch.Tensor:
    file_mask = _numbered_columns(path, names, "msk_")
    if not file_mask:
        if mask_dimension:
            print(f"Note: {path} has no msk_* properties (a standard 3DGS file); "
                  f"the {mask_dimension} hand-mask channels start at zero.")
        return torch.zeros(n, mask_dimension)
    if len(file_mask) != mask_dimension:
        raise DatasetError(f"{path}: has {len(file_mask)} hand-mask channels (msk_*) but the model expects "
                           f"{mask_dimension}; pass --mask_dimension {len(file_mask)}.")
    return columns(file_mask)


def _read_vertex_element(path: str):
    if not os.path.isfile(path):
        raise DatasetError(f"PLY file not found: {path}. Check the model folder / iteration number.")
    try:
        ply = PlyData.read(path)
        vertex = ply["vertex"]
        _ = vertex.data  # force the read of every row: a truncated file fails here
    except KeyError:
        raise DatasetError(f"{path}: has no 'vertex' element; it is not a Gaussian PLY.") from None
    except Exception as err:
        raise DatasetError(f"{path}: cannot be read as PLY ({type(err).__name__}: {err}); "
                           "the file is damaged or truncated, save it again.") from None
    return vertex


def _write_atomically(path: str, ply: PlyData) -> None:
    def write(temporary: str) -> None:
        with open(temporary, "wb") as f:
            ply.write(f)
    write_atomically(path, write)
