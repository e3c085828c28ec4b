"""The built-in synthetic egocentric scene: hands at a workbench, seen from a head-mounted camera.

``python -m scene.synthetic OUT_DIR [--frames N] [--width W] [--height H] [--seed S] [--depth_noise F]``
writes the EgoMask layout (see ``generate``). Everything is rendered by a small analytic ray
caster in numpy (``scene.synthetic.geometry``) with Lambertian + ambient shading and procedural
solid textures (``scene.synthetic.textures``); nothing here uses the Gaussian renderer, so the
frames are an independent ground truth.

World frame: metres, z up, the workbench top is the plane z = 0, the back wall faces -y at
y = 0.8, the viewer sits at y < 0. Cameras follow COLMAP / 3DGS: x right, y down, looking down +z.

Python API: ``generate(out_dir, ...) -> meta``; ``SyntheticScene(seed)`` with ``camera(fid)``,
``cast(origins, dirs, fid)`` (any rays at a time) and ``render(fid, width, height)``;
``cast_rays(origins, dirs, fid, seed)`` for one-off queries.
"""
import argparse
import json
import math
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Callable, List, NamedTuple, Optional, Tuple

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from scene.synthetic import textures as tex
from scene.readers.colmap import ColmapCamera, ColmapImage, ColmapPoint3D, rotmat2qvec, write_model
from scene.synthetic.geometry import (intersect_box, intersect_capsule, intersect_cylinder, intersect_ellipsoid,
                                      look_at_c2w, mul, ray_hits_sphere, rotation_about)

GENERATOR_VERSION = "1.0"
FOV_X_DEGREES = 70.0          # wide, like head-mounted cameras
LIGHT_DIRECTION = np.array([-0.35, -0.45, 1.0]) / np.linalg.norm([-0.35, -0.45, 1.0])  # towards the light
AMBIENT = 0.35
BACKGROUND = np.array([0.55, 0.62, 0.70])  # rays that hit nothing (rare: the room is closed)
RAY_CHUNK = 1 << 17  # rays cast at once: bounds memory (~100 MB of temporaries) at any resolution
LAYOUT = ("images", "masks", "depth_gt", "gt_static", "depth_metric", "sparse", "scene_meta.json")


# ----------------------------------------------------------------------------- primitives

@dataclass
class Primitive:
    """One solid. ``texture_frame`` (origin [3], rotation [3, 3]) maps hit points into the frame
    the material is evaluated in: the world for static things, the hand's own frame for hands."""
    name: str
    intersect: Callable        # (o [N, 3], d [N, 3]) -> (t [N], normal [N, 3])
    material: tex.Material
    bound: Tuple[np.ndarray, float]  # bounding sphere (centre, radius) for culling; radius inf = none
    texture_frame: Tuple[np.ndarray, np.ndarray] = (np.zeros(3), np.eye(3))
    group: Optional[Tuple[np.ndarray, float]] = None  # a sphere around several parts, culled first


def box(name, material, centre, half, yaw_degrees=0.0, cull=True) -> Primitive:
    rot = rotation_about([0, 0, 1], math.radians(yaw_degrees))
    centre, half = np.asarray(centre, float), np.asarray(half, float)
    return Primitive(name, lambda o, d: intersect_box(o, d, centre, half, rot), material,
                     (centre, float(np.linalg.norm(half)) if cull else np.inf))


def sphere(name, material, centre, radius) -> Primitive:
    centre = np.asarray(centre, float)
    return Primitive(name, lambda o, d: intersect_ellipsoid(o, d, centre, np.full(3, radius)), material,
                     (centre, radius))


def cylinder(name, material, centre, radius, half_height) -> Primitive:
    centre = np.asarray(centre, float)
    return Primitive(name, lambda o, d: intersect_cylinder(o, d, centre, radius, half_height), material,
                     (centre, math.hypot(radius, half_height)))


# ----------------------------------------------------------------------------- the static set

# Objects on the bench (centre, size): the hands' paths below are laid out around them.
BOX_A = dict(centre=(-0.19, 0.30, 0.06), half=(0.08, 0.06, 0.06), yaw_degrees=20.0)
BOOK = dict(centre=(0.02, 0.42, 0.025), half=(0.10, 0.07, 0.025), yaw_degrees=-12.0)
BALL = dict(centre=(0.17, 0.26, 0.05), radius=0.05)
CAN = dict(centre=(0.27, 0.45, 0.07), radius=0.04, half_height=0.07)
TABLE = dict(centre=(0.0, 0.15, -0.02), half=(0.8, 0.65, 0.02))
WALL_Y = 0.8


def independent_streams(seed_sequence: np.random.SeedSequence, count: int) -> List[np.random.Generator]:
    """``count`` independent generators (SeedSequence.spawn works on every numpy we support)."""
    return [np.random.default_rng(child) for child in seed_sequence.spawn(count)]


def build_static(seed_sequence: np.random.SeedSequence) -> List[Primitive]:
    """Floor, workbench, back wall and four textured objects; textures drawn from ``seed_sequence``."""
    streams = independent_streams(seed_sequence, 9)
    bench_decals = tex.Decals(streams[0], 22, axes=(0, 1), extent=((-0.7, 0.7), (-0.45, 0.75)))
    posters = tex.Decals(streams[1], 14, axes=(0, 2), extent=((-1.2, 1.2), (0.05, 0.9)), size=(0.05, 0.16))
    return [
        box("floor", tex.tiles(streams[2]), (0, 0.2, -0.775), (3.0, 3.0, 0.025), cull=False),
        box("workbench", tex.wood(streams[3], bench_decals), TABLE["centre"], TABLE["half"], cull=False),
        box("wall", tex.plaster_with_posters(streams[4], posters), (0, WALL_Y + 0.025, 0.5), (3.0, 0.025, 1.5),
            cull=False),
        box("box", tex.checker_print(streams[5], cell=0.03), **BOX_A),
        box("book", tex.checker_print(streams[6], cell=0.05), **BOOK),
        sphere("ball", tex.spotted(streams[7]), BALL["centre"], BALL["radius"]),
        cylinder("can", tex.banded(streams[8]), CAN["centre"], CAN["radius"], CAN["half_height"]),
    ]


# ----------------------------------------------------------------------------- smooth paths

def catmull_rom(keys: np.ndarray, fid: float) -> np.ndarray:
    """Value at time fid in [0, 1] of a Catmull-Rom spline through ``keys`` [K, D] at uniform times."""
    k = len(keys)
    s = float(np.clip(fid, 0.0, 1.0)) * (k - 1)
    i = min(int(s), k - 2)
    u = s - i
    p0, p1, p2, p3 = (keys[min(max(j, 0), k - 1)] for j in (i - 1, i, i + 1, i + 2))
    return 0.5 * (2 * p1 + (p2 - p0) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u ** 2
                  + (3 * p1 - p0 - 3 * p2 + p3) * u ** 3)


class HeadPath:
    """A head-mounted camera swaying and turning like a person at a bench: up to ~20 cm of
    translation and a few degrees. (A smaller sway makes the camera-centre radius, which 3DGS uses
    as the scene extent for densification and pruning, unrealistically small.)"""

    def __init__(self, rng: np.random.Generator):
        self.phases = rng.uniform(0, 2 * np.pi, size=6)
        self.centre = np.array([0.0, -0.18, 0.42])

    def pose(self, fid: float) -> Tuple[np.ndarray, np.ndarray]:
        """(c2w rotation [3, 3], camera centre [3]) at time fid."""
        p, w = self.phases, 2 * np.pi * fid
        centre = self.centre + np.array([0.16 * np.sin(0.8 * w + p[0]) + 0.02 * np.sin(2.3 * w + p[1]),
                                         0.06 * np.sin(0.6 * w + p[2]),
                                         0.04 * np.sin(1.1 * w + p[3])])
        yaw = math.radians(7.0 * np.sin(0.7 * w + p[4]))
        pitch = math.radians(42.0 + 3.0 * np.sin(0.9 * w + p[5]))
        roll = math.radians(2.0 * np.sin(1.3 * w + p[0]))
        forward = [math.sin(yaw) * math.cos(pitch), math.cos(yaw) * math.cos(pitch), -math.sin(pitch)]
        return look_at_c2w(forward) @ rotation_about([0, 0, 1], roll), centre


# ----------------------------------------------------------------------------- hands

# Keyframes per hand, one row each: wrist x, y, z (m), yaw, pitch, roll (degrees), grip (0 open .. 1 fist).
RIGHT_KEYS = np.array([
    [0.11, -0.07, 0.10, 10, -10, 0, 0.30],
    [0.16, 0.05, 0.14, 5, -20, -5, 0.15],
    [0.18, 0.10, 0.12, 0, -32, 0, 0.70],   # grips the ball
    [0.16, 0.08, 0.13, -10, -25, 5, 0.60],
    [0.14, 0.25, 0.16, 15, -30, 0, 0.40],  # reaches past the ball towards the can
    [0.13, 0.11, 0.14, 10, -20, 0, 0.35],
    [0.10, -0.02, 0.10, 5, -12, 0, 0.30],
])
LEFT_KEYS = np.array([
    [-0.14, -0.07, 0.10, -10, -10, 0, 0.30],
    [-0.18, 0.07, 0.19, -5, -25, 0, 0.20],
    [-0.19, 0.13, 0.18, 0, -38, 0, 0.50],  # fingers on the box
    [-0.09, 0.19, 0.11, -20, -15, 5, 0.20],
    [-0.01, 0.26, 0.085, -25, -8, 0, 0.15],  # palm on the book
    [-0.08, 0.12, 0.11, -15, -10, 0, 0.25],
    [-0.13, -0.04, 0.10, -5, -10, 0, 0.30],
])

# Hand geometry in the hand frame: x across the back of the hand, y from wrist to fingers, z out of
# the back of the hand. Finger order index..little; x offsets are for a hand whose thumb is at +x.
PALM = dict(centre=(0.0, 0.048, 0.0), radii=(0.043, 0.052, 0.016))
FINGER_X = (0.027, 0.009, -0.009, -0.027)
FINGER_SPLAY_DEGREES = (6.0, 1.0, -4.0, -10.0)
FINGER_LENGTHS = ((0.042, 0.036), (0.047, 0.040), (0.044, 0.036), (0.035, 0.029))
FINGER_RADII = (0.0085, 0.0088, 0.0084, 0.0075)
THUMB = dict(base=(0.033, 0.028, -0.006), direction=(0.75, 0.6, -0.25), lengths=(0.038, 0.032), radius=0.0095)
FOREARM_RADIUS = 0.027
FOREARM_LENGTH = 0.25
UPPER_ARM_RADIUS = 0.034
HAND_BOUND = dict(centre=(0.0, 0.075, 0.0), radius=0.135)  # encloses palm, thumb and fingers at any flex
HAND_PARTS = ("forearm", "upper_arm", "palm", "thumb_1", "thumb_2") + tuple(
    f"{finger}_{j}" for finger in ("index", "middle", "ring", "little") for j in (1, 2))


class Hand:
    """One hand: palm ellipsoid, five two-segment capsule fingers, forearm and upper-arm capsules.

    ``thumb_side`` is +1 for a left hand seen palm-down (thumb towards +x), -1 for a right hand.
    """

    def __init__(self, name: str, keys: np.ndarray, thumb_side: int, rng: np.random.Generator, material):
        self.name, self.thumb_side, self.material = name, thumb_side, material
        jitter = np.zeros_like(keys)
        jitter[:, :3] = rng.normal(0, 0.006, size=(len(keys), 3))
        jitter[:, 6] = rng.uniform(-0.08, 0.08, size=len(keys))
        self.keys = keys + jitter
        self.finger_phases = rng.uniform(0, 2 * np.pi, size=5)
        self.elbow_towards = np.array([0.22 * -thumb_side, -0.35, -0.05])  # below and beside the head
        self.shoulder = np.array([0.19 * -thumb_side, -0.28, 0.18])

    def pose(self, fid: float):
        """(wrist [3], hand-to-world rotation [3, 3], per-finger flex angles [5] radians: thumb first)."""
        x, y, z, yaw, pitch, roll, grip = catmull_rom(self.keys, fid)
        rot = (rotation_about([0, 0, 1], math.radians(yaw)) @ rotation_about([1, 0, 0], math.radians(pitch))
               @ rotation_about([0, 1, 0], math.radians(roll) * self.thumb_side))
        wiggle = 0.25 * np.sin(2 * np.pi * 2.5 * fid + self.finger_phases)
        flex = np.clip(float(np.clip(grip, 0, 1)) * 1.3 + wiggle, 0.0, 1.6)
        return np.array([x, y, z]), rot, flex

    def primitives(self, fid: float) -> List[Primitive]:
        wrist, rot, flex = self.pose(fid)
        s = self.thumb_side
        to_world = lambda p: wrist + rot @ np.asarray(p, float)  # hand frame -> world
        frame = (wrist, rot)
        hand_bound = (to_world(HAND_BOUND["centre"]), HAND_BOUND["radius"])  # palm and fingers
        parts = []

        def capsule(part, a, b, radius, group=hand_bound):
            mid = 0.5 * (a + b)
            parts.append(Primitive(f"{self.name}_{part}", lambda o, d: intersect_capsule(o, d, a, b, radius),
                                   self.material, (mid, 0.5 * float(np.linalg.norm(b - a)) + radius), frame,
                                   group))

        to_elbow = self.elbow_towards - wrist  # a forearm of fixed length, pointing back to the body
        elbow = wrist + FOREARM_LENGTH * to_elbow / np.linalg.norm(to_elbow)
        capsule("forearm", to_world([0, -0.01, 0]), elbow, FOREARM_RADIUS, group=None)
        capsule("upper_arm", elbow, self.shoulder, UPPER_ARM_RADIUS, group=None)
        palm_centre = to_world(PALM["centre"])
        parts.append(Primitive(f"{self.name}_palm",
                               lambda o, d: intersect_ellipsoid(o, d, palm_centre, np.array(PALM["radii"]), rot),
                               self.material, (palm_centre, max(PALM["radii"])), frame, hand_bound))

        def finger(part, base, direction, lengths, radius, bend_axis, angles):
            joint = np.asarray(base, float)
            for j, (length, angle) in enumerate(zip(lengths, angles)):
                tip = joint + length * (rotation_about(bend_axis, angle) @ direction)
                capsule(f"{part}_{j + 1}", to_world(joint), to_world(tip), radius)
                joint = tip

        # Thumb: swings across the palm (about z) and curls down as it flexes.
        thumb_dir = rotation_about([0, 0, 1], s * 0.5 * flex[0]) @ (np.array(THUMB["direction"]) * [s, 1, 1])
        thumb_dir /= np.linalg.norm(thumb_dir)
        finger("thumb", np.array(THUMB["base"]) * [s, 1, 1], thumb_dir, THUMB["lengths"], THUMB["radius"],
               np.cross(thumb_dir, [0, 0, 1]), (-0.4 * flex[0], -0.9 * flex[0]))
        for k, name in enumerate(("index", "middle", "ring", "little")):
            direction = rotation_about([0, 0, 1], math.radians(FINGER_SPLAY_DEGREES[k]) * s) @ np.array([0, 1.0, 0])
            # Fingers curl towards the palm (-z): rotate about (direction x z); the tip bends more.
            finger(name, (s * FINGER_X[k], 0.088, 0.0), direction, FINGER_LENGTHS[k], FINGER_RADII[k],
                   np.cross(direction, [0, 0, 1]), (-flex[k + 1], -2.1 * flex[k + 1]))
        return parts


# ----------------------------------------------------------------------------- ray casting

class Hits(NamedTuple):
    """Per-ray result: colour [N, 3] in [0, 1], ray parameter t [N] (view-space z for camera rays
    whose camera-frame direction has z = 1; inf = no hit), primitive id [N] (-1 = none)."""
    rgb: np.ndarray
    depth: np.ndarray
    hit_id: np.ndarray


class _Culler:
    """Bounding-sphere culling for one batch of rays; cheap when they share one origin (a camera)."""

    def __init__(self, o: np.ndarray, d: np.ndarray):
        self.o, self.d = o, d
        self.all = np.arange(len(o))
        self.unit = d / np.linalg.norm(d, axis=1, keepdims=True)
        self.origin = o[0] if len(o) and (o == o[0]).all() else None

    def rows_meeting(self, rows: np.ndarray, sphere) -> np.ndarray:
        """The subset of ``rows`` whose rays pass through ``sphere`` (centre, radius); all if radius is inf."""
        centre, radius = sphere
        if np.isinf(radius) or len(rows) == 0:
            return rows
        radius = radius * 1.001  # never cull a grazing hit
        if self.origin is None:
            return rows[ray_hits_sphere(self.o[rows], self.d[rows], centre, radius)]
        oc = centre - self.origin
        along = mul(self.unit if rows is self.all else self.unit[rows], oc)
        dist2 = float(oc @ oc)
        return rows[(dist2 - along * along <= radius * radius) & ((along > 0) | (dist2 <= radius * radius))]


def _nearest(prims: List[Primitive], first_id: int, o, d):
    """Nearest hit among ``prims``: (t [N], id [N], normal [N, 3]); ids count from ``first_id``."""
    n = len(o)
    t, ids, normal = np.full(n, np.inf), np.full(n, -1), np.zeros((n, 3))
    culler = _Culler(o, d)
    group_rows = {}  # rows whose ray meets a group's sphere, computed once per group
    for k, prim in enumerate(prims):
        rows = culler.all
        if prim.group is not None:
            key = id(prim.group)
            if key not in group_rows:
                group_rows[key] = culler.rows_meeting(rows, prim.group)
            rows = group_rows[key]
        rows = culler.rows_meeting(rows, prim.bound)
        if len(rows) == 0:
            continue
        tk, nk = prim.intersect(o, d) if rows is culler.all else prim.intersect(o[rows], d[rows])
        closer = tk < t[rows]
        rows = rows[closer]
        t[rows], ids[rows], normal[rows] = tk[closer], first_id + k, nk[closer]
    return t, ids, normal


def _shade(prims: List[Primitive], first_id: int, t, ids, normal, o, d) -> np.ndarray:
    """Lambertian + ambient colour [N, 3] of the hits; background where nothing was hit."""
    rgb = np.tile(BACKGROUND, (len(t), 1))
    facing = np.where((np.einsum("ij,ij->i", normal, d) > 0)[:, None], -normal, normal)
    light = AMBIENT + (1 - AMBIENT) * np.clip(mul(facing, LIGHT_DIRECTION), 0, 1)
    for k in np.unique(ids[ids >= 0]):
        prim, rows = prims[k - first_id], ids == k
        points = o[rows] + t[rows, None] * d[rows]
        origin, rotation = prim.texture_frame
        rgb[rows] = prim.material(mul(points - origin, rotation)) * light[rows, None]
    return rgb


class SyntheticScene:
    """The whole deterministic scene for one seed: static set, head path and two moving hands."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        static_seeds, *streams = np.random.SeedSequence(self.seed).spawn(5)
        head_rng, left_rng, right_rng, skin_rng = (np.random.default_rng(s) for s in streams)
        self.static = build_static(static_seeds)
        self.head = HeadPath(head_rng)
        skin = tex.skin(skin_rng)
        self.hands = [Hand("left", LEFT_KEYS, +1, left_rng, skin), Hand("right", RIGHT_KEYS, -1, right_rng, skin)]
        self.names = [p.name for p in self.static] + [f"{h.name}_{part}" for h in self.hands for part in HAND_PARTS]
        self.first_hand_id = len(self.static)

    def is_hand(self, hit_id: np.ndarray) -> np.ndarray:
        return np.asarray(hit_id) >= self.first_hand_id

    def camera(self, fid: float) -> Tuple[np.ndarray, np.ndarray]:
        """(c2w rotation [3, 3], camera centre [3]) at time fid."""
        return self.head.pose(fid)

    def hand_primitives(self, fid: float) -> List[Primitive]:
        return [p for hand in self.hands for p in hand.primitives(fid)]

    def cast_layers(self, o: np.ndarray, d: np.ndarray, fid: float, shade: bool = True) -> Tuple[Hits, Hits]:
        """The static set and the hands cast separately: (static hits, hand hits), each a ``Hits``
        (with rgb None when ``shade`` is False: geometry only). Large batches go in chunks of
        ``RAY_CHUNK`` rays so memory stays bounded at any resolution."""
        groups = ((self.static, 0), (self.hand_primitives(fid), self.first_hand_id))
        chunks = []
        for start in range(0, max(len(o), 1), RAY_CHUNK):
            co, cd = o[start:start + RAY_CHUNK], d[start:start + RAY_CHUNK]
            layers = []
            for prims, first in groups:
                t, ids, normal = _nearest(prims, first, co, cd)
                layers.append(Hits(_shade(prims, first, t, ids, normal, co, cd) if shade else None, t, ids))
            chunks.append(layers)
        if len(chunks) == 1:
            return tuple(chunks[0])
        join = lambda parts: None if parts[0] is None else np.concatenate(parts)
        return tuple(Hits(*(join([c[layer][f] for c in chunks]) for f in range(3))) for layer in range(2))

    def cast(self, origins: np.ndarray, dirs: np.ndarray, fid: float, hands: bool = True) -> Hits:
        """Cast rays origins/dirs [N, 3] at time fid; ``hands=False`` shows the static set alone."""
        o, d = np.asarray(origins, np.float64).reshape(-1, 3), np.asarray(dirs, np.float64).reshape(-1, 3)
        static, hand = self.cast_layers(o, d, fid)
        if not hands:
            return static
        return _composite(static, hand)

    def render(self, fid: float, width: int, height: int, supersample: int = 2) -> "FrameRender":
        return render_frame(self, fid, width, height, supersample)


def _composite(static: Hits, hand: Hits) -> Hits:
    front = hand.depth < static.depth
    return Hits(np.where(front[:, None], hand.rgb, static.rgb), np.where(front, hand.depth, static.depth),
                np.where(front, hand.hit_id, static.hit_id))


def cast_rays(origins: np.ndarray, dirs: np.ndarray, fid: float, seed: int = 0, hands: bool = True) -> Hits:
    """One-off ray query at time fid of the scene for ``seed`` (builds the scene each call)."""
    return SyntheticScene(seed).cast(origins, dirs, fid, hands)


# ----------------------------------------------------------------------------- cameras and frames

def intrinsics(width: int, height: int) -> dict:
    """PINHOLE intrinsics: fx = fy from the horizontal field of view, principal point at the centre."""
    focal = width / (2.0 * math.tan(math.radians(FOV_X_DEGREES) / 2.0))
    return dict(fx=focal, fy=focal, cx=width / 2.0, cy=height / 2.0)


def pixel_rays(c2w, centre, width, height, offsets=((0.5, 0.5),)) -> Tuple[np.ndarray, np.ndarray]:
    """Rays through points (x + ox, y + oy) of every pixel, for each offset: o, d [S*H*W, 3], ordered
    (offset, row, column). Camera-frame directions have z = 1, so the hit's t is view-space z."""
    k = intrinsics(width, height)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    dirs = [np.stack([(xs + ox - k["cx"]) / k["fx"], (ys + oy - k["cy"]) / k["fy"], np.ones_like(xs)], -1)
            for ox, oy in offsets]
    d = mul(np.concatenate([v.reshape(-1, 3) for v in dirs]), c2w.T)
    return np.broadcast_to(centre, d.shape).copy(), d


class FrameRender(NamedTuple):
    image: np.ndarray          # [H, W, 3] float in [0, 1], hands included, supersampled
    static: np.ndarray         # [H, W, 3] the same frame without hands
    hand_fraction: np.ndarray  # [H, W] fraction of subsamples that hit a hand
    depth: np.ndarray          # [H, W] float32 view-space z at pixel centres (hands included), inf = nothing
    static_depth: np.ndarray   # [H, W] float64 the same without hands (exact, for the sparse points)


def render_frame(scene: SyntheticScene, fid: float, width: int, height: int, supersample: int = 2) -> FrameRender:
    """Render one frame: an s x s grid of subsamples per pixel for colour and mask, and the exact
    pixel centre for depth, so depth and projections agree at pixel centres."""
    grid = (np.arange(supersample) + 0.5) / supersample
    c2w, centre = scene.camera(fid)
    o, d = pixel_rays(c2w, centre, width, height, [(ox, oy) for oy in grid for ox in grid])
    static, hand = scene.cast_layers(o, d, fid)
    full = _composite(static, hand)
    per_pixel_mean = lambda a: a.reshape(supersample ** 2, height, width, *a.shape[1:]).mean(axis=0)

    o, d = pixel_rays(c2w, centre, width, height)
    static_c, hand_c = scene.cast_layers(o, d, fid, shade=False)
    as_image = lambda depth: depth.reshape(height, width)
    return FrameRender(
        image=per_pixel_mean(full.rgb), static=per_pixel_mean(static.rgb),
        hand_fraction=per_pixel_mean((hand.depth < static.depth).astype(np.float64)),
        depth=as_image(np.minimum(static_c.depth, hand_c.depth)).astype(np.float32),
        static_depth=as_image(static_c.depth))


# ----------------------------------------------------------------------------- the sparse model

def world_to_camera(c2w: np.ndarray, centre: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """COLMAP pose (R_w2c [3, 3], t_w2c [3]) of a camera with rotation c2w at ``centre``."""
    R = c2w.T
    return R, -R @ centre


def project(points: np.ndarray, c2w: np.ndarray, centre: np.ndarray, k: dict) -> Tuple[np.ndarray, np.ndarray]:
    """(uv [N, 2] in COLMAP continuous pixel coordinates (pixel x spans [x, x + 1)), view z [N])."""
    cam = mul(points - centre, c2w)
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = np.stack([k["fx"] * cam[:, 0] / z + k["cx"], k["fy"] * cam[:, 1] / z + k["cy"]], axis=1)
    return uv, z


def sample_surface_points(frames: List[FrameRender], poses, k: dict, count: int, noise: float,
                          rng: np.random.Generator, hand_points: float = 0.0):
    """``count`` points on surfaces seen in some frame, as SfM would find: mostly static surfaces
    (not behind a hand), and a fraction ``hand_points`` on the hands where they are in that frame
    (SfM triangulates a few points on hands while they pause).

    Returns (true points [P, 3], noisy points [P, 3], colors [P, 3] uint8): a pixel centre is
    picked at random per point, its hit is the point and the image its colour.
    """
    height, width = frames[0].depth.shape
    per_frame = np.diff(np.linspace(0, count, len(frames) + 1).round().astype(int))
    truth, colors = [], []
    for frame, (c2w, centre), n in zip(frames, poses, per_frame):
        static_depth = frame.static_depth.astype(np.float32)  # compare at the precision depth is kept
        _, d = pixel_rays(c2w, centre, width, height)
        static_pixels = np.flatnonzero(np.isfinite(static_depth) & (static_depth <= frame.depth))
        hand_pixels = np.flatnonzero((frame.depth < static_depth).reshape(-1))
        n_hand = min(int(round(n * hand_points)), len(hand_pixels))
        for pixels, m, depth, image in ((static_pixels, n - n_hand, frame.static_depth, frame.static),
                                        (hand_pixels, n_hand, frame.depth, frame.image)):
            pick = rng.choice(pixels, size=min(m, len(pixels)), replace=False)
            y, x = np.divmod(pick, width)
            truth.append(centre + depth.reshape(-1)[pick, None].astype(np.float64) * d[pick])
            colors.append(np.round(image[y, x] * 255).astype(np.uint8))
    truth = np.concatenate(truth)
    return truth, truth + rng.normal(0.0, noise, size=truth.shape), np.concatenate(colors)


def visible_tracks(scene: "SyntheticScene", points: np.ndarray, poses, fids, k: dict, width: int, height: int):
    """Per frame, (indices of the points visible there, their exact uv [M, 2]).

    Exact visibility: the point projects inside the image and the ray from the camera centre to
    it meets the point itself first (hands included), so hand points are seen only where the hand is.
    """
    tracks = []
    for (c2w, centre), fid in zip(poses, fids):
        uv, z = project(points, c2w, centre, k)
        inside = np.isfinite(uv).all(axis=1) & (z > 0)
        inside &= (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
        idx = np.flatnonzero(inside)
        first_hit = scene.cast(np.broadcast_to(centre, (len(idx), 3)), points[idx] - centre, fid).depth
        # t = 1 is the point itself; a hand point elsewhere in time is passed by (t > 1), not seen
        seen = idx[np.abs(first_hit - 1.0) <= 1e-6]
        tracks.append((seen, uv[seen]))
    return tracks


def build_colmap_model(scene, frames, poses, fids, k, width, height, num_points, point_noise, rng, hand_points=0.0):
    """(cameras, images, points3D) of the scene.readers.colmap types: exact poses, a noisy sparse cloud."""
    truth, noisy, colors = sample_surface_points(frames, poses, k, num_points, point_noise, rng, hand_points)
    tracks = visible_tracks(scene, truth, poses, fids, k, width, height)
    cameras = {1: ColmapCamera(1, "PINHOLE", width, height, np.array([k["fx"], k["fy"], k["cx"], k["cy"]]))}
    images, track_of = {}, [[] for _ in range(len(truth))]  # point -> [(image id, keypoint index)]
    error_sum, error_count = np.zeros(len(truth)), np.zeros(len(truth))
    for i, ((c2w, centre), (idx, uv)) in enumerate(zip(poses, tracks)):
        R, t = world_to_camera(c2w, centre)
        images[i + 1] = ColmapImage(i + 1, rotmat2qvec(R), t, 1, frame_name(i) + ".png", uv,
                                    idx.astype(np.int64) + 1)
        for keypoint, p in enumerate(idx):
            track_of[p].append((i + 1, keypoint))
        # reprojection error of the noisy point against its exact observation
        np.add.at(error_sum, idx, np.linalg.norm(project(noisy[idx], c2w, centre, k)[0] - uv, axis=1))
        np.add.at(error_count, idx, 1)
    points3D = {}
    for p, track in enumerate(track_of):
        if not track:  # seen nowhere once hands are considered: SfM would not have it either
            continue
        points3D[p + 1] = ColmapPoint3D(p + 1, noisy[p], colors[p], float(error_sum[p] / error_count[p]),
                                        np.array([a for a, _ in track], dtype=np.int32),
                                        np.array([j for _, j in track], dtype=np.int32))
    return cameras, images, points3D


# ----------------------------------------------------------------------------- files

def frame_name(index: int) -> str:
    return f"{index:05d}"


def depth_prior(depth: np.ndarray, blur: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Relative inverse depth [H, W] in [0, 1] (1 = nearest) from metric depth [H, W] (inf = nothing),
    degraded like a monocular estimator: a smooth relative error of std ``noise`` and a Gaussian
    blur of ``blur`` pixels; min-max normalized per frame after both."""
    disparity = np.where(np.isfinite(depth), 1.0 / np.where(np.isfinite(depth), depth, 1.0), 0.0)
    if noise > 0:
        error = gaussian_filter(rng.normal(size=depth.shape), sigma=max(depth.shape) / 8.0)
        disparity = disparity * (1.0 + noise * error / max(error.std(), 1e-12))
    if blur > 0:
        disparity = gaussian_filter(disparity, sigma=blur, mode="nearest")
    low, high = disparity.min(), disparity.max()
    return (disparity - low) / (high - low) if high > low else np.zeros_like(disparity)


def _save_png(path: str, array: np.ndarray) -> None:
    Image.fromarray(array).save(path)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def _write_frame(out_dir: str, name: str, render: FrameRender, mask: np.ndarray, prior: np.ndarray) -> None:
    _save_png(os.path.join(out_dir, "images", name + ".png"), _to_uint8(render.image))
    _save_png(os.path.join(out_dir, "gt_static", name + ".png"), _to_uint8(render.static))
    _save_png(os.path.join(out_dir, "masks", name + ".png"), mask.astype(np.uint8) * 255)
    _save_png(os.path.join(out_dir, "depth_gt", name + ".png"), np.round(prior * 65535).astype(np.uint16))
    np.save(os.path.join(out_dir, "depth_metric", name + ".npy"), render.depth)


def _prepare_output(out_dir: str, overwrite: bool) -> None:
    """Create ``out_dir``; refuse to mix with existing files unless ``overwrite`` (which removes
    only what this generator writes, so stale frames of a longer earlier run cannot linger)."""
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        if not overwrite:
            raise FileExistsError(f"Output folder {out_dir} is not empty: choose a new folder, or pass "
                                  "--overwrite (overwrite=True) to replace a scene generated there before.")
        for entry in LAYOUT:
            path = os.path.join(out_dir, entry)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    elif os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError(f"Output path {out_dir} exists and is a file: choose a folder path.")
    for sub in ("images", "masks", "depth_gt", "gt_static", "depth_metric", os.path.join("sparse", "0")):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)


def _check_arguments(frames, width, height, supersample, depth_noise, depth_blur, num_points, point_noise, seed):
    def need(ok, flag, value, what):
        if not ok:
            raise ValueError(f"--{flag} {value!r}: must be {what}.")
    need(isinstance(frames, int) and frames >= 1, "frames", frames, "a whole number >= 1")
    need(isinstance(width, int) and width >= 8, "width", width, "a whole number of pixels >= 8")
    need(isinstance(height, int) and height >= 8, "height", height, "a whole number of pixels >= 8")
    need(isinstance(supersample, int) and 1 <= supersample <= 8, "supersample", supersample, "a whole number in 1..8")
    need(isinstance(seed, int) and seed >= 0, "seed", seed, "a whole number >= 0")
    need(isinstance(num_points, int) and num_points >= 0, "points", num_points, "a whole number >= 0")
    for flag, value in (("depth_noise", depth_noise), ("depth_blur", depth_blur), ("point_noise", point_noise)):
        need(math.isfinite(value) and value >= 0, flag, value, "a finite number >= 0")


def generate(out_dir: str, frames: int = 40, width: int = 160, height: int = 120, seed: int = 0,
             depth_noise: float = 0.0, depth_blur: float = 1.0, supersample: int = 2, num_points: int = 3000,
             point_noise: float = 0.002, hand_points: float = 0.1, overwrite: bool = False,
             verbose: bool = False) -> dict:
    """Render the scene for ``seed`` into ``out_dir`` in the EgoMask layout; returns scene_meta.json's dict.

    Frame i is at time fid = i / (frames - 1). Deterministic: the same arguments give identical files.
    """
    _check_arguments(frames, width, height, supersample, depth_noise, depth_blur, num_points, point_noise, seed)
    if not (math.isfinite(hand_points) and 0.0 <= hand_points <= 1.0):
        raise ValueError(f"--hand_points {hand_points!r}: must be a fraction in [0, 1].")
    _prepare_output(out_dir, overwrite)
    scene, k = SyntheticScene(seed), intrinsics(width, height)
    depth_rng, points_rng = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2])
    fids = [i / (frames - 1) if frames > 1 else 0.0 for i in range(frames)]  # the ARCHITECTURE time rule
    renders, poses, hand_fractions = [], [], []
    for i, fid in enumerate(fids):
        r = scene.render(fid, width, height, supersample)
        mask = r.hand_fraction >= 0.5
        _write_frame(out_dir, frame_name(i), r, mask, depth_prior(r.depth, depth_blur, depth_noise, depth_rng))
        renders.append(r)
        poses.append(scene.camera(fid))
        hand_fractions.append(round(float(mask.mean()), 6))
        if verbose:
            print(f"\rframe {i + 1}/{frames}", end="", flush=True)
    if verbose:
        print()
    cameras, images, points3D = build_colmap_model(scene, renders, poses, fids, k, width, height, num_points,
                                                   point_noise, points_rng, hand_points)
    write_model(os.path.join(out_dir, "sparse", "0"), cameras, images, points3D, ext=".txt")
    meta = _scene_meta(scene, poses, k, frames, width, height, seed, supersample, depth_blur, depth_noise,
                       point_noise, len(points3D), hand_fractions)
    meta["sparse"]["hand_point_fraction"] = hand_points
    with open(os.path.join(out_dir, "scene_meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    return meta


def objects_bounds() -> Tuple[np.ndarray, np.ndarray]:
    """Axis-aligned (min [3], max [3]) around the objects on the bench."""
    corners = []
    for b in (BOX_A, BOOK):
        rot = rotation_about([0, 0, 1], math.radians(b["yaw_degrees"]))
        signs = np.array(list(np.ndindex(2, 2, 2))) * 2 - 1
        corners.append(np.asarray(b["centre"]) + (signs * b["half"]) @ rot.T)
    corners.append(np.asarray(BALL["centre"]) + BALL["radius"] * np.array([[-1, -1, -1], [1, 1, 1]]))
    corners.append(np.asarray(CAN["centre"]) + np.array([[-CAN["radius"], -CAN["radius"], -CAN["half_height"]],
                                                         [CAN["radius"], CAN["radius"], CAN["half_height"]]]))
    corners = np.concatenate(corners)
    return corners.min(axis=0), corners.max(axis=0)


def _scene_meta(scene, poses, k, frames, width, height, seed, supersample, depth_blur, depth_noise, point_noise,
                num_points, hand_fractions) -> dict:
    table_lo = np.subtract(TABLE["centre"], TABLE["half"])
    table_hi = np.add(TABLE["centre"], TABLE["half"])
    centres = np.array([c for _, c in poses])
    as_list = lambda a: [round(float(v), 6) for v in a]
    return {
        "generator": "scene.synthetic", "generator_version": GENERATOR_VERSION, "seed": seed,
        "frames": frames, "width": width, "height": height,
        "fx": k["fx"], "fy": k["fy"], "cx": k["cx"], "cy": k["cy"], "fov_x_degrees": FOV_X_DEGREES,
        "time": "frame i has fid = i / (frames - 1)",
        "units": "metres",
        "world": f"z up; workbench top is the plane z = 0; back wall at y = {WALL_Y} facing -y; viewer at y < 0",
        "bounds": {
            "workbench_top": [as_list([table_lo[0], table_lo[1], 0.0]), as_list([table_hi[0], table_hi[1], 0.0])],
            "objects": [as_list(v) for v in objects_bounds()],
            "camera_centres": [as_list(centres.min(axis=0)), as_list(centres.max(axis=0))],
        },
        "primitives": scene.names,
        "hands": {
            "count": len(scene.hands), "names": [h.name for h in scene.hands], "parts": list(HAND_PARTS),
            "model": "palm ellipsoid, five two-segment capsule fingers (thumb included), forearm and upper-arm "
                     "capsules per hand; skin-coloured Lambertian; arms count as hand in the masks",
        },
        "masks": f"8-bit, 255 = hand: at least half of the {supersample}x{supersample} subsamples of the pixel "
                 "hit a hand (binary, from the ray caster's hit ids)",
        "depth_gt": {"kind": "disparity", "bit_depth": 16,
                     "normalization": "per-frame min-max of inverse depth, 65535 = nearest",
                     "blur_sigma_pixels": depth_blur, "relative_noise": depth_noise},
        "depth_metric": "float32 [H, W] view-space z at pixel centres, hands included; inf where nothing is hit",
        "gt_static": "the same frames rendered without the hands (no shadows anywhere, so identical outside hands)",
        "shading": {"model": "Lambertian + ambient, no shadows", "light_direction": as_list(LIGHT_DIRECTION),
                    "ambient": AMBIENT},
        "supersample": supersample,
        "sparse": {"points3D": num_points, "point_noise_metres": point_noise,
                   "poses": "exact; qvec/tvec are world-to-camera, as COLMAP"},
        "hand_pixel_fraction": hand_fractions,
    }


# ----------------------------------------------------------------------------- command line

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scene.synthetic",
        description="Render the built-in synthetic egocentric scene (hands at a workbench) in the EgoMask layout.")
    parser.add_argument("out_dir", help="folder to write (created; must be empty unless --overwrite)")
    parser.add_argument("--frames", type=int, default=40, help="frames; frame i is at time i / (frames - 1)")
    parser.add_argument("--width", type=int, default=160, help="image width in pixels (horizontal FoV 70 deg)")
    parser.add_argument("--height", type=int, default=120, help="image height in pixels")
    parser.add_argument("--seed", type=int, default=0, help="textures, head path and hand jitter; same seed = same files")
    parser.add_argument("--depth_noise", type=float, default=0.0,
                        help="std of a smooth relative error on the disparity prior (0 = none)")
    parser.add_argument("--depth_blur", type=float, default=1.0, help="Gaussian blur of the prior in pixels")
    parser.add_argument("--supersample", type=int, default=2, help="s x s rays per pixel for anti-aliasing")
    parser.add_argument("--points", type=int, default=3000, help="sparse points sampled on visible surfaces")
    parser.add_argument("--hand_points", type=float, default=0.1,
                        help="fraction of them on the hands in their frame, as SfM triangulates some (0 = none)")
    parser.add_argument("--point_noise", type=float, default=0.002, help="their position noise in metres")
    parser.add_argument("--overwrite", action="store_true", help="replace a scene generated in out_dir before")
    args = parser.parse_args(argv)
    try:
        meta = generate(args.out_dir, args.frames, args.width, args.height, args.seed, args.depth_noise,
                        args.depth_blur, args.supersample, args.points, args.point_noise,
                        hand_points=args.hand_points, overwrite=args.overwrite, verbose=sys.stdout.isatty())
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    mean_hand = float(np.mean(meta["hand_pixel_fraction"]))
    print(f"Wrote {meta['frames']} frame(s) of {meta['width']}x{meta['height']} and "
          f"{meta['sparse']['points3D']} sparse points to {args.out_dir} (hands cover {100 * mean_hand:.1f} % "
          "of pixels on average).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
