"""Local rigidity of the moving Gaussians (``--rigidity_weight``, off by default).

What it is for: on fast hand motion the deformation network can fit each training frame with a
different subset of the hand Gaussians, the others parked out of sight, instead of moving one
hand. At a held-out time between two such frames both subsets show: two ghost copies of an arm,
half opaque, which the hand mask then half misses (README, "Hands decomposition").

The prior (after the isometry loss of Luiten et al., "Dynamic 3D Gaussians", 2024): neighbours
keep their distance. ``NeighbourDistances.refresh`` picks up to ``anchors`` of the Gaussians that
may move (gate > 0) and pairs each with its ``neighbours`` nearest moving Gaussians in the
canonical space, remembering each pair's canonical distance. ``loss`` is then, at the time a
training step renders, the mean change of those distances, weighted by the smaller gate of the
pair and divided by the mean canonical distance (so it has no unit: the same weight suits metric
and COLMAP scenes). A subset that parks away from its neighbours pays for it; a hand that moves as
a whole does not.

The pairs are refreshed when the Gaussians change (densification) and kept in checkpoints, so a
resumed run continues with the same pairs.
"""
from typing import Dict, Optional

import torch

BLOCK_DISTANCES = 1 << 24   # distances computed at once (64 MB in fp32): anchors per block = this / moving Gaussians


class NeighbourDistances:
    def __init__(self, anchors: int = 4096, neighbours: int = 4):
        if anchors < 1 or neighbours < 1:
            raise ValueError(f"anchors and neighbours must be >= 1 (got {anchors}, {neighbours}).")
        self.anchors, self.neighbours = anchors, neighbours
        self.first: Optional[torch.Tensor] = None    # [P] long: one end of each pair
        self.second: Optional[torch.Tensor] = None   # [P] long: the other end
        self.rest: Optional[torch.Tensor] = None     # [P] the pair's canonical distance
        self.scale: Optional[torch.Tensor] = None    # 0-d: the mean canonical distance
        self.count = -1                              # Gaussians when the pairs were made

    @property
    def ready(self) -> bool:
        return self.first is not None

    def stale(self, count: int) -> bool:
        """True when the pairs must be made again before use: never made, or the Gaussians
        changed in number since (their indices would point at other Gaussians)."""
        return count != self.count

    @torch.no_grad()
    def refresh(self, xyz: torch.Tensor, gate: Optional[torch.Tensor], seed: int) -> None:
        """Pairs among the Gaussians whose gate [N] is > 0 (every Gaussian when gate is None),
        from the canonical centres xyz [N, 3]. seed picks the anchors (a run's seed and the
        iteration give the same pairs again). With too few moving Gaussians there are no pairs
        and loss() is zero."""
        n = xyz.shape[0]
        self.count = n
        moving = torch.arange(n, device=xyz.device) if gate is None else torch.nonzero(gate > 0).squeeze(1)
        if moving.numel() <= self.neighbours:
            self.first = self.second = self.rest = self.scale = None
            return
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(moving.numel(), generator=generator)[:self.anchors].to(xyz.device)
        points = xyz[moving].detach()
        firsts, seconds, rests = [], [], []
        for chunk in order.split(max(1, BLOCK_DISTANCES // points.shape[0])):
            distance = torch.cdist(points[chunk], points)                  # [c, M]
            distance[torch.arange(chunk.numel(), device=xyz.device), chunk] = float("inf")   # not itself
            rest, nearest = distance.topk(self.neighbours, dim=1, largest=False)
            firsts.append(moving[chunk].repeat_interleave(self.neighbours))
            seconds.append(moving[nearest.reshape(-1)])
            rests.append(rest.reshape(-1))
        self.first, self.second, self.rest = torch.cat(firsts), torch.cat(seconds), torch.cat(rests)
        self.scale = self.rest.mean().clamp_min(torch.finfo(self.rest.dtype).tiny)

    def loss(self, deformed_xyz: torch.Tensor, gate: Optional[torch.Tensor]) -> torch.Tensor:
        """0-d: Σ w |d_t − d_rest| / (Σ w · mean d_rest) over the pairs, d_t the pair's distance in
        deformed_xyz [N, 3], w the smaller gate of the two (1 without a gate). Zero without pairs."""
        if not self.ready:
            return deformed_xyz.new_zeros(())
        offset = deformed_xyz[self.first] - deformed_xyz[self.second]
        # sqrt with a floor: a pair at one place (a fresh clone) has a gradient, not NaN
        length = (offset.square().sum(dim=1) + (1e-6 * self.scale) ** 2).sqrt()
        change = (length - self.rest).abs()
        if gate is None:
            return change.mean() / self.scale
        weight = torch.minimum(gate[self.first], gate[self.second]).detach()
        return (weight * change).sum() / ((weight.sum() + 1e-12) * self.scale)

    def state_dict(self) -> Dict:
        return {"first": self.first, "second": self.second, "rest": self.rest, "scale": self.scale,
                "count": self.count}

    def load_state_dict(self, state: Dict, device) -> None:
        def moved(tensor):
            return None if tensor is None else tensor.to(device)
        self.first, self.second = moved(state["first"]), moved(state["second"])
        self.rest, self.scale = moved(state["rest"]), moved(state["scale"])
        self.count = int(state["count"])
