"""The deformation MLP of Deformable 3D Gaussians: (position, time) -> (Δxyz, Δrotation, Δscale).

Architecture (Yang et al. 2024): NeRF positional encodings of xyz (10 frequencies) and t
(10, or 6 for Blender / D-NeRF scenes, which also pass the encoded time through a small
256 -> 30 network; ``time_frequencies`` overrides the count: fewer frequencies make the motion
smoother in time, so held-out frames between training frames are interpolated rather than
guessed; ``time_network`` builds the small network or not, whatever the scene), D ReLU layers of
width W with the encoded inputs concatenated again after layer D // 2, and linear heads.
``scale_offsets=False`` zeroes the scale head's output (--deform_scale off).
Module names follow the public Deformable-3DGS release (``linear.i``, ``timenet``,
``gaussian_warp``, ``gaussian_rotation``, ``gaussian_scaling``, ``branch_w``, ``branch_v``) so its
``deform.pth`` files load here unchanged.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.rigid_utils import exp_twist

XYZ_FREQUENCIES = 10
TIME_FREQUENCIES = 10
TIME_FREQUENCIES_BLENDER = 6
TIMENET_WIDTH = 256
TIMENET_OUT = 30


class PositionalEncoding(nn.Module):
    """x [N, d] -> [x, sin(2^0 x), cos(2^0 x), ..., sin(2^(F-1) x), cos(2^(F-1) x)]: [N, d (1 + 2F)].

    One broadcast multiply and one sin over all frequencies (cos x = sin(x + π/2) would save the
    cos call but changes the rounding; two calls keep results identical to the usual encoding).
    """

    def __init__(self, input_dims: int, num_frequencies: int):
        super().__init__()
        self.input_dims = input_dims
        self.out_dims = input_dims * (1 + 2 * num_frequencies)
        self.register_buffer("frequencies", 2.0 ** torch.arange(num_frequencies, dtype=torch.float32),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scaled = x.unsqueeze(1) * self.frequencies.to(x.dtype)[None, :, None]   # [N, F, d]
        periodic = torch.stack([torch.sin(scaled), torch.cos(scaled)], dim=2)   # [N, F, 2, d]
        return torch.cat([x, periodic.flatten(1)], dim=1)


class DeformNetwork(nn.Module):
    def __init__(self, D: int = 8, W: int = 256, is_blender: bool = False, is_6dof: bool = False,
                 time_frequencies: int = -1, scale_offsets: bool = True, time_network: Optional[bool] = None):
        super().__init__()
        if D < 1 or W < 1:
            raise ValueError(f"DeformNetwork needs depth >= 1 and width >= 1 (got depth={D}, width={W}); "
                             "check --deform_depth / --deform_width.")
        self.D, self.W = D, W
        self.is_blender, self.is_6dof = is_blender, is_6dof
        self.scale_offsets = scale_offsets   # False: sizes fixed in time (--deform_scale off)
        self.skip_after = D // 2

        self.embed_xyz = PositionalEncoding(3, XYZ_FREQUENCIES)
        if time_frequencies < 0:  # upstream's choice
            time_frequencies = TIME_FREQUENCIES_BLENDER if is_blender else TIME_FREQUENCIES
        self.time_frequencies = time_frequencies
        self.embed_time = PositionalEncoding(1, time_frequencies)
        time_ch = self.embed_time.out_dims
        # time_network: the time encoding goes through a small MLP before the deformation MLP
        # (upstream builds it for Blender scenes only; None follows is_blender). Its learned time
        # features gave the held-out frames of the hand clips a better interpolation (README).
        self.time_network = is_blender if time_network is None else bool(time_network)
        if self.time_network:
            self.timenet = nn.Sequential(nn.Linear(time_ch, TIMENET_WIDTH), nn.ReLU(inplace=True),
                                         nn.Linear(TIMENET_WIDTH, TIMENET_OUT))
            time_ch = TIMENET_OUT
        self.input_ch = self.embed_xyz.out_dims + time_ch

        # Layer j takes the skip concatenation when the previous layer (j - 1) is the skip layer.
        self.linear = nn.ModuleList(
            [nn.Linear(self.input_ch, W)] +
            [nn.Linear(W + self.input_ch if j - 1 == self.skip_after else W, W) for j in range(1, D)])

        if is_6dof:
            self.branch_w = nn.Linear(W, 3)
            self.branch_v = nn.Linear(W, 3)
        else:
            self.gaussian_warp = nn.Linear(W, 3)
        self.gaussian_rotation = nn.Linear(W, 4)
        self.gaussian_scaling = nn.Linear(W, 3)

    def zero_heads_(self) -> "DeformNetwork":
        """Start as the identity deformation: output heads at zero, so the warm-up's scene is
        unchanged when deformation switches on (PyTorch's default init moves every Gaussian)."""
        heads = [self.gaussian_rotation, self.gaussian_scaling]
        heads += [self.branch_w, self.branch_v] if self.is_6dof else [self.gaussian_warp]
        for head in heads:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        return self

    def encode(self, xyz: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Network input [N, input_ch] from xyz [N, 3] and t [N, 1]."""
        t_emb = self.embed_time(t)
        if self.time_network:
            t_emb = self.timenet(t_emb)
        return torch.cat([self.embed_xyz(xyz), t_emb], dim=1)

    def trunk(self, inputs: torch.Tensor) -> torch.Tensor:
        """Hidden features [N, W] from encoded inputs [N, input_ch]."""
        h = inputs
        for j, layer in enumerate(self.linear):
            h = F.relu(layer(h), inplace=True)  # the linear output is not needed for backward
            if j == self.skip_after and j + 1 < self.D:
                h = torch.cat([inputs, h], dim=1)
        return h

    def forward(self, xyz: torch.Tensor, t: torch.Tensor, gate: Optional[torch.Tensor] = None):
        """xyz [N, 3], t [N, 1] -> d_xyz [N, 3] (or [N, 4, 4] with is_6dof), d_rotation [N, 4], d_scaling [N, 3].

        gate [N, 1] (optional) scales every head's output, so 0 is no motion and 1 the full one;
        with is_6dof it scales the twist before the exponential (a fraction of the same screw motion).
        """
        h = self.trunk(self.encode(xyz, t))
        scale = (lambda head: head) if gate is None else (lambda head: head * gate.to(head.dtype))
        if self.is_6dof:
            d_xyz = self._screw_motion(scale(self.branch_w(h)), scale(self.branch_v(h)))
        else:
            d_xyz = scale(self.gaussian_warp(h))
        d_scaling = scale(self.gaussian_scaling(h))
        if not self.scale_offsets:
            # Zero, yet still an output of the head: the head stays in the weights' layout (upstream's
            # deform.pth files load) and every output keeps a gradient path (recorded graphs need one).
            d_scaling = d_scaling * 0.0
        return d_xyz, scale(self.gaussian_rotation(h)), d_scaling

    @staticmethod
    def _screw_motion(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """exp of the predicted twist (w, v) as [N, 4, 4], always in fp32 (trig and small angles).

        Upstream divides w and v by θ = |w|, then adds 1e-5 (probably meant as θ + 1e-5 in the
        denominator), and applies the Modern Robotics screw formula: that is exp of the twist
        (w, v) up to O(1e-5) terms, and NaN at θ = 0. exp_twist computes it exactly and stably.
        """
        with torch.autocast(device_type=w.device.type, enabled=False):
            return exp_twist(w.float(), v.float())
