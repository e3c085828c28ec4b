"""Adaptive density control of 3DGS: when (``step``) and what (statistics, clone / split / prune,
opacity reset), in one strategy object, as gsplat's strategies.

``DensificationStrategy`` owns the per-Gaussian statistics and edits a ``GaussianModel`` only
through its generic row operations (``cat_tensors``, ``prune``, ``replace_tensor``), which keep
the model's tensors and Adam state in step. Statistics are reset after every densification (as
upstream), so they are resized there; any other change of the Gaussian count needs ``reset``.

State dict (``state_dict()``), N = number of Gaussians:
    xyz_gradient_accum [N, 1]  sum over views of |d loss / d NDC centre| where visible
    denom              [N, 1]  number of views in which the Gaussian was visible
    max_radii2D        [N]     largest screen radius (pixels) since the last densification
    percent_dense      float   clone/split size boundary as a fraction of the scene extent

A budget (``max_gaussians``, train.py's --densify_budget x the observed training pixels) caps the
count: a densification adds only as many Gaussians as there is room for, the strongest mean
gradients first. Unlimited densification on a small, low-resolution clip went on splitting to
sub-pixel Gaussians (14 per pixel on the 128x96 synthetic bed, against 3.4 on a 506x174 real
clip) and let every training frame keep its own copy of a fast-moving hand: at a time between
two training frames both copies showed, half grown (README, "Hands decomposition").
"""
from typing import Optional

import torch

from utils.general_utils import build_rotation, inverse_sigmoid
from utils.system_utils import print_once

SPLIT_SAMPLES = 2                             # a large Gaussian becomes this many smaller ones
SPLIT_SCALE_DIVISOR = 0.8 * SPLIT_SAMPLES     # new scale = scale / 1.6 (upstream)
WORLD_SIZE_PRUNE_FRACTION = 0.1               # prune Gaussians wider than this x scene extent
OPACITY_RESET_CEILING = 0.01
MIN_OPACITY = 0.005                           # pruned below this opacity at each densification
SCREEN_SIZE_LIMIT = 20                        # px, pruned after the first opacity reset


class DensificationStrategy:
    def __init__(self, percent_dense: float = 0.01, prune_by_screen_size: bool = True, timing=None,
                 white_background: bool = False, max_gaussians: Optional[int] = None):
        """``prune_by_screen_size``: upstream 3DGS zeroes max_radii2D just before its screen-size
        test, so there that test never fires. True applies it as documented; False matches
        upstream's effective behaviour (prune by world size and opacity only), which is what
        train.py uses unless --prune_by_screen_size is given, so results compare with the papers'.
        ``timing``: train.py's OptimizationParams (or any object with its densify_from_iter,
        densify_until_iter, densification_interval, opacity_reset_interval and
        densify_grad_threshold), which ``step`` follows; the operations below do not need it.
        ``max_gaussians``: the budget (module text); None: no limit."""
        self.percent_dense = percent_dense
        self.max_gaussians = max_gaussians
        self.prune_by_screen_size = prune_by_screen_size
        self.timing, self.white_background = timing, white_background
        self.reset(0, "cpu")

    @classmethod
    def from_options(cls, opt, white_background: bool, observed_pixels: int) -> "DensificationStrategy":
        """The strategy of train.py's OptimizationParams; ValueError names a flag out of range
        (an interval of 0 would only fail, dividing by zero, once the window is reached).
        observed_pixels: the training views' pixels summed, which --densify_budget multiplies."""
        for flag in ("densification_interval", "opacity_reset_interval"):
            if getattr(opt, flag) < 1:
                raise ValueError(f"--{flag} must be at least 1 (got {getattr(opt, flag)}).")
        for flag in ("percent_dense", "densify_grad_threshold", "densify_budget"):
            if not getattr(opt, flag) >= 0:   # also refuses NaN
                raise ValueError(f"--{flag} must be >= 0 (got {getattr(opt, flag)}).")
        budget = opt.densify_budget * observed_pixels
        return cls(opt.percent_dense, opt.prune_by_screen_size, timing=opt, white_background=white_background,
                   max_gaussians=int(budget) if budget > 0 else None)

    # --- when ---------------------------------------------------------------------------------
    def step(self, model, render_pkg: dict, iteration: int, extent: float, valid=None) -> None:
        """After ``loss.backward()`` of ``iteration``, before the optimizer step: accumulate the
        statistics, densify and prune every densification_interval iterations in the window
        (densify_from_iter, densify_until_iter), and reset opacities every opacity_reset_interval
        (and once at densify_from_iter on a white background), as 3DGS. valid: see add_stats."""
        t = self.timing
        if iteration >= t.densify_until_iter:
            return
        self.add_stats(render_pkg["viewspace_points"], render_pkg["visibility_filter"], render_pkg["radii"], valid)
        if self._densifies_at(iteration):
            size_threshold = SCREEN_SIZE_LIMIT if iteration > t.opacity_reset_interval else None
            self.densify_and_prune(model, t.densify_grad_threshold, MIN_OPACITY, extent, size_threshold)
        if self._resets_at(iteration):
            self.reset_opacity(model)

    def edits_model_at(self, iteration: int) -> bool:
        """Whether step(iteration) densifies, prunes or resets opacities (changes the model)."""
        return iteration < self.timing.densify_until_iter and (self._densifies_at(iteration) or
                                                                self._resets_at(iteration))

    def _densifies_at(self, iteration: int) -> bool:
        t = self.timing
        return iteration > t.densify_from_iter and iteration % t.densification_interval == 0

    def _resets_at(self, iteration: int) -> bool:
        t = self.timing
        return iteration % t.opacity_reset_interval == 0 or (self.white_background and iteration == t.densify_from_iter)

    # --- statistics -------------------------------------------------------------------------
    def reset(self, num_gaussians: int, device) -> None:
        """Empty statistics for num_gaussians Gaussians."""
        self.xyz_gradient_accum = torch.zeros(num_gaussians, 1, device=device)
        self.denom = torch.zeros(num_gaussians, 1, device=device)
        self.max_radii2D = torch.zeros(num_gaussians, device=device)

    @property
    def num_gaussians(self) -> int:
        return self.denom.shape[0]

    def add_stats(self, viewspace_points: torch.Tensor, visibility_filter: torch.Tensor,
                  radii: torch.Tensor = None, valid: torch.Tensor = None) -> None:
        """Accumulate after ``loss.backward()``.

        viewspace_points [N, 3] (its .grad[:, :2] is d loss / d NDC centre), visibility_filter [N]
        bool, radii [N] screen radii in pixels (optional: a caller may track max_radii2D itself),
        valid: 0-d bool tensor, False to add nothing (a step whose loss was not finite, known only
        on the device: utils/loss_check.py).
        """
        grad = viewspace_points.grad
        if grad is None:
            raise RuntimeError("add_stats: viewspace_points has no gradient; call it after "
                               "loss.backward() with the render's 'viewspace_points' tensor.")
        self._check_count(grad.shape[0], "viewspace points")
        # Masked arithmetic, not boolean indexing: indexing by a mask costs a host sync and a
        # gather/scatter per tensor at every step. Hidden Gaussians get no gradient, and adding
        # 0.0 leaves a sum unchanged, so the sums are the same.
        visible = visibility_filter.reshape(-1, 1)
        if valid is not None:
            visible = visible & valid
        self.xyz_gradient_accum += torch.where(visible, grad[:, :2].norm(dim=-1, keepdim=True), 0.0)
        self.denom += visible
        if radii is not None:
            seen = radii.to(self.max_radii2D.dtype)
            self.max_radii2D = torch.where(visible.squeeze(1), torch.maximum(self.max_radii2D, seen), self.max_radii2D)

    def mean_grads(self) -> torch.Tensor:
        """[N] mean screen-space gradient norm per Gaussian (0 where never visible)."""
        return torch.nan_to_num((self.xyz_gradient_accum / self.denom).squeeze(1), nan=0.0)

    def _check_count(self, count: int, what: str) -> None:
        if count != self.num_gaussians:
            raise ValueError(f"{count} {what} but densification statistics for {self.num_gaussians} "
                             "Gaussians; call reset(N, device) after changing the model outside densify.")

    # --- densification ----------------------------------------------------------------------
    def densify_and_prune(self, model, max_grad: float, min_opacity: float, extent: float,
                          max_screen_size: float = None) -> dict:
        """Clone small and split large Gaussians whose mean gradient >= max_grad, then prune.

        Prunes opacity < min_opacity and, when ``max_screen_size`` is given, Gaussians wider than
        that many pixels on screen or WORLD_SIZE_PRUNE_FRACTION x extent in the world. Statistics
        are reset afterwards. Returns counts {"cloned", "split", "pruned"} for logging.
        """
        self._check_count(model.get_xyz.shape[0], "Gaussians in the model")
        with torch.no_grad():
            hot = self.hot_rows(max_grad, model.get_xyz.shape[0])
            is_small = model.get_scaling.max(dim=1).values <= self.percent_dense * extent
            clone_mask, split_mask = hot & is_small, hot & ~is_small
            new_rows = concat_rows(clone_rows(model, clone_mask), split_rows(model, split_mask))
            model.cat_tensors(new_rows)

            # Judged after densifying, as upstream: new rows are tested too (never seen: radius 0).
            num_new = new_rows["xyz"].shape[0]
            radii = torch.cat([self.max_radii2D, self.max_radii2D.new_zeros(num_new)])
            prune = self._prune_mask(model, radii, min_opacity, extent, max_screen_size)
            split_parents = torch.cat([split_mask, split_mask.new_zeros(num_new)])
            model.prune(~(prune | split_parents))
            self.reset(model.get_xyz.shape[0], model.get_xyz.device)
        return {"cloned": int(clone_mask.sum()), "split": int(split_mask.sum()),
                "pruned": int((prune & ~split_parents).sum())}

    def hot_rows(self, max_grad: float, count: int) -> torch.Tensor:
        """[N] bool, the Gaussians to densify: mean gradient >= max_grad, cut to the room the
        budget leaves beside count Gaussians, the largest gradients kept. Each row adds one
        Gaussian: a clone, or a split (two halves replace their parent)."""
        grads = self.mean_grads()
        hot = grads >= max_grad
        if self.max_gaussians is None:
            return hot
        room = max(self.max_gaussians - count, 0)
        if int(hot.sum()) <= room:
            return hot
        print_once(f"Densification budget reached: at most {self.max_gaussians} Gaussians "
                   "(--densify_budget per observed training pixel; 0 lifts it).")
        kept = torch.zeros_like(hot)
        kept[torch.topk(torch.where(hot, grads, -1.0), room).indices] = True
        return kept

    def _prune_mask(self, model, radii: torch.Tensor, min_opacity: float, extent: float,
                    max_screen_size) -> torch.Tensor:
        """[N] bool: transparent Gaussians, and oversized ones when max_screen_size is given."""
        prune = model.get_opacity.squeeze(1) < min_opacity
        if max_screen_size:
            prune |= model.get_scaling.max(dim=1).values > WORLD_SIZE_PRUNE_FRACTION * extent
            if self.prune_by_screen_size:
                prune |= radii > max_screen_size
        return prune

    def reset_opacity(self, model, ceiling: float = OPACITY_RESET_CEILING) -> None:
        """opacity = min(opacity, ceiling), with the opacity's Adam moments zeroed (upstream)."""
        with torch.no_grad():
            capped = torch.clamp_max(model.get_opacity, ceiling)
            model.replace_tensor("opacity", inverse_sigmoid(capped))

    # --- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"xyz_gradient_accum": self.xyz_gradient_accum.clone(), "denom": self.denom.clone(),
                "max_radii2D": self.max_radii2D.clone(), "percent_dense": self.percent_dense}

    def load_state_dict(self, state: dict, device=None) -> None:
        """device: where to put the statistics (default: where they were saved / map_location)."""
        move = (lambda t: t.to(device)) if device is not None else (lambda t: t.clone())
        self.xyz_gradient_accum = move(state["xyz_gradient_accum"])
        self.denom = move(state["denom"])
        self.max_radii2D = move(state["max_radii2D"])
        self.percent_dense = state["percent_dense"]


def clone_rows(model, selected: torch.Tensor) -> dict:
    """Exact copies of the selected [N] bool Gaussians (the next gradient steps pull them apart)."""
    return {name: tensor.detach()[selected] for name, tensor in model.tensors.items()}


def split_rows(model, selected: torch.Tensor) -> dict:
    """SPLIT_SAMPLES new Gaussians per selected one: centres drawn from N(0, diag(scale²)) rotated
    into the Gaussian's frame, scales divided by 1.6, every other attribute (mask too) copied."""
    parents = clone_rows(model, selected)                                              # M rows each
    rows = {name: value.repeat(SPLIT_SAMPLES, *[1] * (value.ndim - 1)) for name, value in parents.items()}
    scales = torch.exp(rows["scaling"])                                                # [S*M, 3]
    offsets = torch.normal(torch.zeros_like(scales), scales)                           # [S*M, 3] local
    rotations = build_rotation(rows["rotation"])                                       # [S*M, 3, 3]
    rows["xyz"] = rows["xyz"] + (rotations @ offsets[..., None]).squeeze(-1)
    rows["scaling"] = torch.log(scales / SPLIT_SCALE_DIVISOR)
    return rows


def concat_rows(*row_dicts: dict) -> dict:
    return {name: torch.cat([rows[name] for rows in row_dicts]) for name in row_dicts[0]}
