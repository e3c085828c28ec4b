"""render(): deform the Gaussians (Deformable 3DGS), pick the backend, rasterize one view.

Training renders one view several times per step (the image and the decomposition layers):
it deforms once with deform_gaussians and draws each with render_deformed."""
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

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
    N, device = gaussians.count, gaussians.means3D.device
    inputs = _rasterizer_inputs(viewpoint_camera, gaussians, pipe, scaling_modifier, override_color)
    if opacity_weight is not None:
        inputs["opacities"] = inputs["opacities"] * opacity_weight.reshape(N, 1)
    points = inputs["means2D"]   # the leaf: with a subset, the gathered rows pass its gradient back
    subset_ids = None
    if gaussian_subset is not None:
        subset_ids = _subset_ids(gaussian_subset, N, device)
        inputs = {k: None if v is None else v[subset_ids] for k, v in inputs.items()}
    color, depth, hand_map, radii, alpha = _rasterizer(viewpoint_camera, gaussians, pipe, bg_color,
                                                       scaling_modifier)(**inputs)
    if subset_ids is not None:
        full = torch.zeros(N, dtype=radii.dtype, device=radii.device)
        full[subset_ids] = radii
        radii = full
    return _package(color, depth, hand_map, alpha, radii, points)


def render_layers(viewpoint_camera, gaussians: DeformedGaussians, pipe, bg_colors: Sequence,
                  opacity_weights: Sequence[Optional[torch.Tensor]]) -> List[dict]:
    """Several images of the same deformed Gaussians from one camera, in one rasterizer draw:
    image l with every opacity times opacity_weights[l] ([N] constants in [0, 1], None for 1)
    over bg_colors[l]. Each dict is render_deformed's for that image with opacity_weight; the
    first alone carries viewspace_points (its own screen-space gradient, for densification), the
    others share its radii. Training draws the image and the decomposition's two layers this way:
    one projection, one sort and one set of launches instead of three (same result)."""
    N, device = gaussians.count, gaussians.means3D.device
    if len(bg_colors) != len(opacity_weights) or not opacity_weights:
        raise ValueError(f"render_layers needs one background per layer, got {len(bg_colors)} backgrounds "
                         f"for {len(opacity_weights)} layers")
    inputs = _rasterizer_inputs(viewpoint_camera, gaussians, pipe)
    ones = None
    rows = []
    for weight in opacity_weights:
        if weight is None:
            ones = ones if ones is not None else torch.ones(N, device=device)
            weight = ones
        rows.append(weight.detach().reshape(N).to(device=device, dtype=torch.float32))
    bg = torch.stack([torch.as_tensor(c, dtype=torch.float32, device=device).reshape(3) for c in bg_colors])
    color, depth, hand_map, radii, alpha = _rasterizer(viewpoint_camera, gaussians, pipe, bg)(
        **inputs, layer_weights=torch.stack(rows))
    packages = [_package(color[l], depth[l], hand_map[l], alpha[l], radii, None) for l in range(len(rows))]
    packages[0]["viewspace_points"] = inputs["means2D"]
    return packages


def _rasterizer_inputs(viewpoint_camera, gaussians: DeformedGaussians, pipe, scaling_modifier: float = 1.0,
                       override_color: Optional[torch.Tensor] = None) -> dict:
    """GaussianRasterizer's keyword arguments for the deformed Gaussians: covariance and colour
    in Python or in the rasterizer (--compute_cov3D_python, --convert_SHs_python), a fresh
    screen-space points tensor whose gradient densification reads."""
    means3D = gaussians.means3D
    scales, rotations = gaussians.scales, gaussians.rotations
    screenspace_points = torch.zeros(gaussians.count, 3, dtype=means3D.dtype, device=means3D.device,
                                     requires_grad=True)
    cov3D_precomp = None
    if getattr(pipe, "compute_cov3D_python", False):
        cov3D = build_covariance(scales, rotations, scaling_modifier)
        cov3D_precomp, scales, rotations = strip_symmetric(cov3D), None, None
    shs, colors_precomp = None, override_color
    if colors_precomp is None:
        if getattr(pipe, "convert_SHs_python", False):
            centre = viewpoint_camera.camera_center.to(means3D.device)
            dirs = torch.nn.functional.normalize(means3D - centre[None, :], dim=1)
            colors_precomp = sh_to_color(gaussians.active_sh_degree, gaussians.features, dirs)
        else:
            shs = gaussians.features
    return dict(means3D=means3D, means2D=screenspace_points, opacities=gaussians.opacities, shs=shs,
                colors_precomp=colors_precomp, mask_feature=gaussians.mask_feature, scales=scales,
                rotations=rotations, cov3D_precomp=cov3D_precomp)


def _rasterizer(viewpoint_camera, gaussians: DeformedGaussians, pipe, bg_color, scaling_modifier: float = 1.0):
    """The backend's GaussianRasterizer for this camera (--rasterizer picks the backend). The
    camera's matrices live with its images (--data_device cpu keeps both on the host): they go
    where the Gaussians are (a no-op when already there)."""
    device = gaussians.means3D.device
    module = get_rasterizer(getattr(pipe, "rasterizer", "auto"), device)
    settings = module.GaussianRasterizationSettings(
        image_height=int(viewpoint_camera.image_height), image_width=int(viewpoint_camera.image_width),
        tanfovx=math.tan(viewpoint_camera.FoVx * 0.5), tanfovy=math.tan(viewpoint_camera.FoVy * 0.5),
        bg=torch.as_tensor(bg_color, dtype=gaussians.means3D.dtype, device=device), scale_modifier=scaling_modifier,
        viewmatrix=viewpoint_camera.world_view_transform.to(device),
        projmatrix=viewpoint_camera.full_proj_transform.to(device),
        sh_degree=gaussians.active_sh_degree, campos=viewpoint_camera.camera_center.to(device), prefiltered=False,
        debug=bool(getattr(pipe, "debug", False)))
    return module.GaussianRasterizer(raster_settings=settings)


def _package(color, depth, hand_map, alpha, radii, viewspace_points) -> dict:
    return {"render": color, "depth": depth, "hand_map": hand_map, "alpha": alpha,
            "viewspace_points": viewspace_points, "visibility_filter": radii > 0, "radii": radii}


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
