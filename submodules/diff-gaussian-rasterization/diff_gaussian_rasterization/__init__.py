"""Differentiable tile-based Gaussian rasterizer on CUDA (our own implementation).

Same interface as the pure-PyTorch reference (docs/ARCHITECTURE.md, "Rasterizer contract"):

    color, depth, feature_map, radii, alpha = GaussianRasterizer(settings)(
        means3D, means2D, opacities, shs=None, colors_precomp=None, mask_feature=None,
        scales=None, rotations=None, cov3D_precomp=None)

The compiled part is ``diff_gaussian_rasterization._C`` when the package was pip-installed, or a
module built just in time by ``utils.cuda_ext.load_rasterizer`` and registered with
``set_extension``.
"""
import importlib
import os
from typing import Optional

import torch

from .settings import (MAX_FEATURES, GaussianRasterizationSettings, RasterizerModule,  # shared with the reference
                       check_layers)

_extension_module = None
# From this many Gaussians on, tile lists come from a depth-first pair of 32-bit sorts rather than
# one 64-bit (tile, depth) sort: fewer passes over the key list, more launches. Same lists either
# way. H100, 1280x720, same process (benchmarks/results/rasterizer_h100.json): the single sort was
# ahead at 100k (forward 0.79 vs 0.86 ms), the depth-first pair from 200k (forward+backward 2.85 vs
# 2.93 ms at 200k, 3.36 vs 4.32 ms at 1M).
DEPTH_FIRST_SORT_MIN_GAUSSIANS = 150_000


def set_extension(module) -> None:
    """Use ``module`` (a JIT-built copy of ``_C``) as the compiled backend."""
    global _extension_module
    _extension_module = module


def has_extension() -> bool:
    try:
        _extension()
        return True
    except RuntimeError:
        return False


def _extension():
    global _extension_module
    if _extension_module is None:
        try:
            _extension_module = importlib.import_module(__name__ + "._C")
        except ImportError as err:
            raise RuntimeError(
                "diff_gaussian_rasterization: the CUDA extension is not built. Install it with "
                "`pip install ./submodules/diff-gaussian-rasterization`, or call "
                "utils.cuda_ext.load_rasterizer(), which builds it on first use.") from err
    return _extension_module




# Order of the tensors the forward hands to the backward (after the 4 images).
_SAVED = ("radii", "depths", "means2d", "conic_opacity", "rgb", "clamped", "point_list", "ranges",
          "final_T", "n_contrib")


def _check_inputs(inputs: dict) -> None:
    """Validate in Python, so every bad input is a plain RuntimeError that names the tensor
    (messages composed in nvcc-compiled host code have crashed the process)."""
    for name, value in inputs.items():
        if not torch.is_tensor(value) or value.numel() == 0:
            continue
        if not value.is_cuda:
            raise RuntimeError(f"{name} must be a CUDA tensor, got one on {value.device}.")
        if value.dtype != torch.float32 and name not in ("saved",):
            raise RuntimeError(f"{name} must be float32, got {value.dtype}.")
    channels = inputs["features"].shape[1] if inputs.get("features") is not None else 0
    if channels > MAX_FEATURES:
        raise RuntimeError(f"mask_feature has {channels} channels; at most {MAX_FEATURES} are supported.")


def _camera_tensor(t: torch.Tensor) -> torch.Tensor:
    """Camera matrices are often transposed views (Camera stores ``M.T``): make them plain float32."""
    return t.detach().float().contiguous()


def _empty_like_device(ref: torch.Tensor) -> torch.Tensor:
    return torch.empty(0, device=ref.device, dtype=torch.float32)


def _dump_inputs(phase: str, inputs: dict, err: Exception) -> RuntimeError:
    """Save the inputs of a failing call and return the error to raise, naming the file."""
    path = os.path.abspath(f"rasterizer_{phase}_snapshot.pt")
    try:
        torch.save({k: (v.detach().cpu() if torch.is_tensor(v) else v) for k, v in inputs.items()}, path)
        where = f"its inputs are saved in {path} (torch.load it to reproduce)"
    except Exception as save_err:  # the device may be unusable after the failure
        where = f"saving its inputs to {path} failed too ({save_err})"
    return RuntimeError(f"CUDA rasterizer {phase} pass failed: {err}; {where}.")


def _draw_inputs(means3D, shs, colors_precomp, opacities, scales, rotations, cov3D_precomp, mask_feature, bg,
                 layer_weights, settings) -> dict:
    """The inputs of one draw, named and in the order of _C.RasterInputs; both passes build them
    from the same tensors and settings."""
    return dict(bg=bg, means3D=means3D, colors=colors_precomp, opacities=opacities, scales=scales,
                rotations=rotations, scale_modifier=float(settings.scale_modifier), cov3D_precomp=cov3D_precomp,
                features=mask_feature, viewmatrix=_camera_tensor(settings.viewmatrix),
                projmatrix=_camera_tensor(settings.projmatrix),
                tan_fovx=float(settings.tanfovx), tan_fovy=float(settings.tanfovy),
                image_height=int(settings.image_height), image_width=int(settings.image_width), shs=shs,
                sh_degree=int(settings.sh_degree), campos=_camera_tensor(settings.campos), layer_weights=layer_weights)


class _RasterizeGaussians(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means3D, means2D, shs, colors_precomp, opacities, scales, rotations, cov3D_precomp,
                mask_feature, bg, layer_weights, settings):
        args = _draw_inputs(means3D, shs, colors_precomp, opacities, scales, rotations, cov3D_precomp,
                            mask_feature, bg, layer_weights, settings)
        depth_first_sort = means3D.shape[0] >= DEPTH_FIRST_SORT_MIN_GAUSSIANS

        def run():
            _check_inputs(args)
            inputs = _extension().RasterInputs(*args.values())
            return _extension().rasterize_forward(inputs, depth_first_sort, settings.debug)

        out = _call("forward", run, args, settings.debug)
        color, depth, feature_map, alpha = out[:4]
        saved = out[4:]
        ctx.settings = settings
        ctx.save_for_backward(means3D, shs, colors_precomp, opacities, scales, rotations, cov3D_precomp,
                              mask_feature, bg, layer_weights, *saved)
        radii = saved[0]
        ctx.mark_non_differentiable(radii)
        return color, depth, feature_map, radii, alpha

    @staticmethod
    def backward(ctx, grad_color, grad_depth, grad_feature, _grad_radii, grad_alpha):
        s = ctx.settings
        (means3D, shs, colors_precomp, opacities, scales, rotations, cov3D_precomp, mask_feature, bg,
         layer_weights, *saved) = ctx.saved_tensors
        args = _draw_inputs(means3D, shs, colors_precomp, opacities, scales, rotations, cov3D_precomp,
                            mask_feature, bg, layer_weights, s)
        grads_in = dict(grad_color=grad_color, grad_depth=grad_depth, grad_feature=grad_feature,
                        grad_alpha=grad_alpha, saved=list(saved))  # any strides

        def run():
            inputs = _extension().RasterInputs(*args.values())
            return _extension().rasterize_backward(inputs, *grads_in.values(), s.debug)

        grads = _call("backward", run, {**args, **grads_in}, s.debug)
        g_means2d, g_colors, g_opacities, g_means3d, g_cov3d, g_shs, g_scales, g_rotations, g_features = grads

        def present(grad, tensor):
            return grad if tensor.numel() > 0 else None

        g_bg = None
        if ctx.needs_input_grad[9]:  # colour = ... + T_final bg, per layer
            final_T = saved[_SAVED.index("final_T")]                         # [L, H, W]
            layered_color = grad_color if layer_weights.dim() == 2 else grad_color[None]
            g_bg = (layered_color * final_T[:, None]).sum(dim=(2, 3)).view_as(bg)
        return (g_means3d, g_means2d, present(g_shs, shs), present(g_colors, colors_precomp),
                g_opacities.view_as(opacities), present(g_scales, scales), present(g_rotations, rotations),
                present(g_cov3d, cov3D_precomp), present(g_features, mask_feature), g_bg, None, None)


def _call(phase: str, fn, inputs: dict, debug: bool):
    if not debug:
        return fn()
    try:
        result = fn()
        torch.cuda.synchronize()
        return result
    except Exception as err:
        raise _dump_inputs(phase, inputs, err) from err


def rasterize_gaussians(s: GaussianRasterizationSettings, means3D, means2D, opacities, shs=None, colors_precomp=None,
                        mask_feature=None, scales=None, rotations=None, cov3D_precomp=None, layer_weights=None):
    """One draw with the CUDA kernels; the arguments and the result are GaussianRasterizer's
    (layer_weights: a layered draw, see RasterizerModule)."""
    if (shs is None) == (colors_precomp is None):
        raise ValueError("GaussianRasterizer: give exactly one of shs and colors_precomp.")
    if (scales is None or rotations is None) == (cov3D_precomp is None):
        raise ValueError("GaussianRasterizer: give either scales and rotations, or cov3D_precomp.")
    n = means3D.shape[0]
    if mask_feature is not None and (mask_feature.ndim != 2 or mask_feature.shape[0] != n):
        raise ValueError(f"GaussianRasterizer: mask_feature must be [N={n}, K], got {tuple(mask_feature.shape)}.")
    empty = _empty_like_device(means3D)

    def prepared(t: Optional[torch.Tensor]) -> torch.Tensor:
        return empty if t is None else t.contiguous()

    if layer_weights is not None:
        check_layers(s, n, layer_weights)
    features = mask_feature if mask_feature is not None else means3D.new_empty((n, 0))
    return _RasterizeGaussians.apply(
        means3D.contiguous(), means2D, prepared(shs), prepared(colors_precomp), opacities.contiguous(),
        prepared(scales), prepared(rotations), prepared(cov3D_precomp), features.contiguous(),
        s.bg.contiguous(), prepared(layer_weights), s)


class GaussianRasterizer(RasterizerModule):
    draw = staticmethod(rasterize_gaussians)
