"""render(): deform the Gaussians (Deformable 3DGS), pick the backend, rasterize one view.

Training renders one view several times per step (the image and the decomposition layers):
it deforms once with deform_gaussians and draws each with render_deformed."""
import math
from dataclasses import dataclass
from typing import Optional

import torch

from gaussian_renderer.backend import get_rasterizer
from utils.general_utils import build_covariance, strip_symmetric
from utils.rigid_utils import transform_points
from utils.sh_utils import sh_to_color


def background_color(white: bool, device) -> torch.Tensor:
    """[3] background of a scene: white for --white_background, else black."""
    return torch.tensor([1.0, 1.0, 1.0] if white else [0.0, 0.0, 0.0], device=device)


@dataclass
class DeformedGaussians:
    """The rasterizer's per-Gaussian inputs at one time: activated parameters plus the deformation.

    Computed once per training step and shared by every render of that step (the full image and
    the two decomposition layers), so the activations and their backward run once, not per render."""
    means3D: torch.Tensor                 # [N, 3] deformed centres
    scales: torch.Tensor                  # [N, 3]
    rotations: torch.Tensor               # [N, 4]
    opacities: torch.Tensor               # [N, 1]
    features: torch.Tensor                # [N, (D+1)^2, 3] SH coefficients
    mask_feature: Optional[torch.Tensor]  # [N, K] hand feature, None when K = 0
    active_sh_degree: int

    @property
    def count(self) -> int:
        return self.means3D.shape[0]


def deform_gaussians(pc, d_xyz, d_rotation, d_scaling, is_6dof: bool = False) -> DeformedGaussians:
    """pc's activated parameters with the deformation offsets applied (see render)."""
    xyz = pc.get_xyz
    n = xyz.shape[0]
    return DeformedGaussians(
        means3D=_deformed_means(xyz, d_xyz, is_6dof),
        scales=pc.get_scaling + _offset("d_scaling", d_scaling, n, 3),
        rotations=pc.get_rotation + _offset("d_rotation", d_rotation, n, 4),
        opacities=pc.get_opacity, features=pc.get_features,
        mask_feature=pc.get_mask if getattr(pc, "mask_dimension", 0) > 0 else None,
        active_sh_degree=pc.active_sh_degree)


def render(viewpoint_camera, pc, pipe, bg_color, d_xyz, d_rotation, d_scaling, is_6dof: bool = False,
           scaling_modifier: float = 1.0, override_color: Optional[torch.Tensor] = None,
           gaussian_subset: Optional[torch.Tensor] = None, opacity_weight: Optional[torch.Tensor] = None) -> dict:
    """Render pc seen from viewpoint_camera.

    d_xyz, d_rotation, d_scaling: offsets added to the activated position [N,3], rotation [N,4]
    and scale [N,3] (plain 0.0 before warm-up); with is_6dof, d_xyz is a rigid transform
    [N,4,4] applied to the points (column vectors) instead. gaussian_subset: bool [N] to draw
    only some Gaussians (static / hands renders). opacity_weight: [N] factor in [0, 1] on each
    Gaussian's opacity (a soft layer: the hands with their motion gate, the static scene with
    1 - gate). The SH colour is seen from the camera centre towards the *deformed* position, as
    the rasterizer does.

    Returns render [3,H,W], depth [1,H,W], hand_map [K,H,W], alpha [1,H,W],
    viewspace_points [N,3] (after backward, .grad[:, :2] = dL/d NDC centre), visibility_filter [N]
    bool, radii [N] int (0 outside the subset or not drawn).
    """
    gaussians = deform_gaussians(pc, d_xyz, d_rotation, d_scaling, is_6dof)
    return render_deformed(viewpoint_camera, gaussians, pipe, bg_color, scaling_modifier, override_color,
                           gaussian_subset, opacity_weight)


def render_deformed(viewpoint_camera, gaussians: DeformedGaussians, pipe, bg_color, scaling_modifier: float = 1.0,
                    override_color: Optional[torch.Tensor] = None, gaussian_subset: Optional[torch.Tensor] = None,
                    opacity_weight: Optional[torch.Tensor] = None) -> dict:
    """render() of Gaussians already deformed by deform_gaussians (same arguments and outputs)."""
    means3D = gaussians.means3D
    N, device = gaussians.count, means3D.device
    scales, rotations, opacities = gaussians.scales, gaussians.rotations, gaussians.opacities
    if opacity_weight is not None:
        opacities = opacities * opacity_weight.reshape(N, 1)
    screenspace_points = torch.zeros(N, 3, dtype=means3D.dtype, device=device, requires_grad=True)

    cov3D_precomp = None
    if getattr(pipe, "compute_cov3D_python", False):
        cov3D = build_covariance(scales, rotations, scaling_modifier)
        cov3D_precomp, scales, rotations = strip_symmetric(cov3D), None, None

    shs, colors_precomp = None, override_color
    if colors_precomp is None:
        if getattr(pipe, "convert_SHs_python", False):
            dirs = torch.nn.functional.normalize(means3D - viewpoint_camera.camera_center[None, :], dim=1)
            colors_precomp = sh_to_color(gaussians.active_sh_degree, gaussians.features, dirs)
        else:
            shs = gaussians.features

    inputs = dict(means3D=means3D, means2D=screenspace_points, opacities=opacities, shs=shs,
                  colors_precomp=colors_precomp, mask_feature=gaussians.mask_feature, scales=scales,
                  rotations=rotations, cov3D_precomp=cov3D_precomp)
    subset_ids = None
    if gaussian_subset is not None:
        subset_ids = _subset_ids(gaussian_subset, N, device)
        inputs = {k: None if v is None else v[subset_ids] for k, v in inputs.items()}

    module = get_rasterizer(getattr(pipe, "rasterizer", "auto"), device)
    settings = module.GaussianRasterizationSettings(
        image_height=int(viewpoint_camera.image_height), image_width=int(viewpoint_camera.image_width),
        tanfovx=math.tan(viewpoint_camera.FoVx * 0.5), tanfovy=math.tan(viewpoint_camera.FoVy * 0.5),
        bg=torch.as_tensor(bg_color, dtype=means3D.dtype, device=device), scale_modifier=scaling_modifier,
        viewmatrix=viewpoint_camera.world_view_transform, projmatrix=viewpoint_camera.full_proj_transform,
        sh_degree=gaussians.active_sh_degree, campos=viewpoint_camera.camera_center, prefiltered=False,
        debug=bool(getattr(pipe, "debug", False)))
    color, depth, hand_map, radii, alpha = module.GaussianRasterizer(raster_settings=settings)(**inputs)

    if subset_ids is not None:
        full = torch.zeros(N, dtype=radii.dtype, device=radii.device)
        full[subset_ids] = radii
        radii = full
    return {"render": color, "depth": depth, "hand_map": hand_map, "alpha": alpha,
            "viewspace_points": screenspace_points, "visibility_filter": radii > 0, "radii": radii}


def _offset(name: str, value, n: int, width: int):
    """A deformation offset: a number, or a tensor broadcastable to [n, width]."""
    if isinstance(value, torch.Tensor) and value.ndim > 0:
        if value.ndim > 2 or torch.broadcast_shapes(value.shape, (n, width)) != (n, width):
            raise ValueError(f"{name} must broadcast to [{n}, {width}], got {tuple(value.shape)}")
    return value


def _deformed_means(xyz: torch.Tensor, d_xyz, is_6dof: bool) -> torch.Tensor:
    if not is_6dof:
        return xyz + _offset("d_xyz", d_xyz, xyz.shape[0], 3)
    if not isinstance(d_xyz, torch.Tensor) or d_xyz.ndim == 0:
        if float(d_xyz) != 0.0:
            raise ValueError(f"with is_6dof, d_xyz must be [N, 4, 4] transforms or 0.0, got {d_xyz!r}")
        return xyz
    if tuple(d_xyz.shape) != (xyz.shape[0], 4, 4):
        raise ValueError(f"with is_6dof, d_xyz must be [N, 4, 4] = [{xyz.shape[0]}, 4, 4], got {tuple(d_xyz.shape)}")
    return transform_points(d_xyz, xyz)


def _subset_ids(subset: torch.Tensor, n: int, device) -> torch.Tensor:
    if subset.dtype != torch.bool or tuple(subset.shape) != (n,):
        raise ValueError(f"gaussian_subset must be a bool tensor [{n}], got {subset.dtype} {tuple(subset.shape)}")
    return torch.nonzero(subset.to(device)).squeeze(1)
