"""A training/evaluation view: image, supervision and matrices, already on their device."""
from typing import Optional

import numpy as np
import torch

from utils.graphics_utils import getProjectionMatrix, getWorld2View2, principal_offset_ndc


class Camera:
    """One view. Tensors: image [3, H, W] in [0, 1]; mask [1, H, W] (1 = hand) or None;
    depth_prior [1, H, W] or None (its convention in ``depth_kind``); fid the frame's time, a Python
    float: host-side decisions about it (the time policy) never wait for the GPU, and the network's
    time input is made on its device (DeformModel.offsets)."""

    znear = 0.01
    zfar = 100.0

    def __init__(self, uid: int, R: np.ndarray, T: np.ndarray, FoVx: float, FoVy: float,
                 image: torch.Tensor, image_name: str, fid: float,
                 mask: Optional[torch.Tensor] = None, depth_prior: Optional[torch.Tensor] = None,
                 depth_kind: Optional[str] = None, cx: Optional[float] = None, cy: Optional[float] = None,
                 trans=np.zeros(3), scale: float = 1.0, data_device: str = "cpu"):
        self.uid = uid
        self.R, self.T = R, T
        self.FoVx, self.FoVy = FoVx, FoVy
        self.image_name = image_name
        self.data_device = torch.device(data_device)
        self.original_image = image.clamp(0.0, 1.0).to(self.data_device)
        self.image_height, self.image_width = image.shape[1], image.shape[2]
        self.mask = None if mask is None else mask.to(self.data_device)
        self.depth_prior = None if depth_prior is None else depth_prior.to(self.data_device)
        self.depth_kind = depth_kind
        self.fid = float(fid)
        self.cx, self.cy = cx, cy  # principal point in pixels at this resolution, None = centred
        self.trans, self.scale = trans, scale

        offset = principal_offset_ndc(cx, cy, self.image_width, self.image_height)
        # stored transposed (row vectors, as upstream) and contiguous: the rasterizers read them as is
        self.world_view_transform = torch.tensor(getWorld2View2(R, T, trans, scale)).transpose(0, 1).contiguous().to(self.data_device)
        self.projection_matrix = getProjectionMatrix(self.znear, self.zfar, FoVx, FoVy, offset).transpose(0, 1).contiguous().to(self.data_device)
        self.full_proj_transform = self.world_view_transform @ self.projection_matrix
        self.camera_center = self.world_view_transform.inverse()[3, :3]

    def to(self, device) -> "Camera":
        """Move every tensor (used by --load2gpu_on_the_fly)."""
        for name in ("original_image", "mask", "depth_prior", "world_view_transform",
                     "projection_matrix", "full_proj_transform", "camera_center"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(device))
        self.data_device = torch.device(device)
        return self

    def __repr__(self):
        return f"Camera({self.image_name!r}, {self.image_width}x{self.image_height}, fid={float(self.fid):.3f})"
