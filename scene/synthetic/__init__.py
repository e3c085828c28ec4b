"""The built-in synthetic egocentric scene, a ground truth for tests and benchmarks.

``generator`` builds the world (static set, head path, two moving hands), renders frames, hand
masks, hand-free frames and depth, and writes the EgoMask layout; ``geometry`` holds the analytic
ray-primitive intersections and ``textures`` the procedural materials. ``python -m scene.synthetic
OUT`` runs ``generator.main``.
"""
from scene.synthetic.generator import (BALL, HAND_PARTS, WALL_Y, FrameRender, SyntheticScene, cast_rays, generate,
                                       intrinsics, main, pixel_rays, render_frame)

__all__ = ["BALL", "HAND_PARTS", "WALL_Y", "FrameRender", "SyntheticScene", "cast_rays", "generate", "intrinsics",
           "main", "pixel_rays", "render_frame"]
