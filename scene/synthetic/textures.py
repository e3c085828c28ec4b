"""Procedural solid textures for the synthetic scene (numpy, deterministic for a seed).

Textures are functions of a 3D point, so they stick to static surfaces in world space and look
the same from every view: what SfM needs. They are rich and non-repetitive (value noise over
several octaves, wood grain, printed decals and posters) so feature matchers find unique
correspondences. Every material maps points [N, 3] (metres) to albedo [N, 3] in [0, 1].
"""
from typing import Callable

import numpy as np

Material = Callable[[np.ndarray], np.ndarray]  # points [N, 3] -> albedo [N, 3]

_LATTICE = 256  # value-noise lattice period in cells; far larger than any object at our scales


class ValueNoise:
    """Smooth 3D value noise in [0, 1]: random values on an integer lattice, smoothstep-blended."""

    def __init__(self, rng: np.random.Generator):
        perm = rng.permutation(_LATTICE)
        self._perm = np.concatenate([perm, perm])  # doubled so perm[perm[i] + j] needs no wrap
        self._values = rng.random(_LATTICE)[self._perm]  # value of a hashed lattice corner

    def __call__(self, points: np.ndarray) -> np.ndarray:
        cell = np.floor(points)
        f = points - cell
        w = f * f * (3 - 2 * f)  # smoothstep weights [N, 3]
        i = cell.astype(np.int64) % _LATTICE
        ix, iy, iz = i[:, 0], i[:, 1], i[:, 2]
        p, v = self._perm, self._values
        lerp = lambda a, b, t: a + (b - a) * t
        along_x = []
        for hx in (p[ix], p[ix + 1]):  # hash one axis at a time, then blend z, y, x
            along_y = [lerp(v[hy + iz], v[hy + iz + 1], w[:, 2]) for hy in (p[hx + iy], p[hx + iy + 1])]
            along_x.append(lerp(along_y[0], along_y[1], w[:, 1]))
        return lerp(along_x[0], along_x[1], w[:, 0])

    def fbm(self, points: np.ndarray, octaves: int = 4, gain: float = 0.5) -> np.ndarray:
        """Fractal sum of octaves at doubling frequency, normalized back to [0, 1]."""
        total, amplitude, norm = np.zeros(len(points)), 1.0, 0.0
        for octave in range(octaves):
            # a fixed shift per octave decorrelates the octaves' lattices
            total += amplitude * self(points * 2.0 ** octave + 17.31 * octave)
            norm += amplitude
            amplitude *= gain
        return total / norm


def _mix(a, b, t):
    """Blend colors a, b ([3] or [N, 3]) by weights t [N]."""
    return a + (b - a) * t[:, None]


def _random_color(rng: np.random.Generator, saturation=(0.4, 0.9), value=(0.35, 0.95)) -> np.ndarray:
    hue = rng.random()
    s, v = rng.uniform(*saturation), rng.uniform(*value)
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6) % 6  # HSV -> RGB without a library
    return v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)


class Decals:
    """Printed shapes (discs, rectangles, rings, stripes) on a flat surface, seeded.

    ``axes`` picks the two world coordinates spanning the surface; ``extent`` is the
    ((u_min, u_max), (v_min, v_max)) area where shapes are scattered.
    """

    def __init__(self, rng: np.random.Generator, count: int, axes, extent, size=(0.02, 0.07)):
        self.axes = list(axes)
        (u0, u1), (v0, v1) = extent
        self.shapes = []
        for _ in range(count):
            self.shapes.append(dict(
                kind=rng.choice(["disc", "rect", "ring", "stripes"]),
                centre=np.array([rng.uniform(u0, u1), rng.uniform(v0, v1)]),
                size=rng.uniform(*size), aspect=rng.uniform(0.5, 1.6), angle=rng.uniform(0, np.pi),
                color=_random_color(rng), second=_random_color(rng)))

    def apply(self, points: np.ndarray, albedo: np.ndarray) -> np.ndarray:
        albedo = albedo.copy()
        uv = points[:, self.axes]
        for s in self.shapes:
            reach = s["size"] * max(1.0, 1.0 / s["aspect"]) * 1.5  # covers the shape at any angle
            rows = np.nonzero((np.abs(uv[:, 0] - s["centre"][0]) < reach)
                              & (np.abs(uv[:, 1] - s["centre"][1]) < reach))[0]
            if len(rows) == 0:
                continue
            inside, second = self._shape_masks(s, uv[rows])
            albedo[rows[inside]] = s["color"]
            albedo[rows[second]] = s["second"]
        return albedo

    @staticmethod
    def _shape_masks(s, uv):
        """(inside the shape, inside its second color) for points uv [M, 2]."""
        c, sn = np.cos(s["angle"]), np.sin(s["angle"])
        rel = uv - s["centre"]
        local = np.stack([rel[:, 0] * c + rel[:, 1] * sn, rel[:, 1] * c - rel[:, 0] * sn], axis=1)
        local[:, 1] *= s["aspect"]
        r = np.linalg.norm(local, axis=1) / s["size"]
        box = np.abs(local).max(axis=1) / s["size"]
        if s["kind"] == "disc":
            return r < 1, r < 0.45
        if s["kind"] == "ring":
            return (r < 1) & (r > 0.6), np.zeros(len(r), bool)
        if s["kind"] == "rect":
            return box < 1, (np.abs(local[:, 0]) < 0.3 * s["size"]) & (box < 1)
        stripes = np.floor(local[:, 0] / (0.25 * s["size"])) % 2 == 0
        return box < 1, (box < 1) & stripes


# ----------------------------------------------------------------------------- materials

def wood(rng: np.random.Generator, decals: Decals = None) -> Material:
    """Wood grain along world x (bands in y warped by noise) with fibres, knots and decals."""
    noise = ValueNoise(rng)
    light, dark = np.array([0.80, 0.60, 0.38]), np.array([0.50, 0.31, 0.16])
    tint = np.array([rng.uniform(-0.05, 0.05), 0.0, rng.uniform(-0.05, 0.05)])

    def albedo(p):
        warp = 0.06 * noise.fbm(p * np.array([3.0, 9.0, 9.0]), 3)
        rings = np.sin((p[:, 1] + warp) * 2 * np.pi * 18.0) * 0.5 + 0.5
        fibres = noise(p * np.array([6.0, 180.0, 180.0]))
        blotches = noise.fbm(p * 12.0 + 5.0, 3)
        t = np.clip(0.55 * rings + 0.25 * fibres + 0.4 * blotches - 0.1, 0, 1)
        color = _mix(light + tint, dark, t)
        color *= (0.85 + 0.3 * noise(p * 60.0 + 9.0))[:, None]  # fine speckle for matching
        if decals is not None:
            color = decals.apply(p, color)
        return np.clip(color, 0, 1)

    return albedo


def plaster_with_posters(rng: np.random.Generator, posters: Decals) -> Material:
    """A painted wall: color-varying plaster, faint tiles, and printed posters."""
    noise = ValueNoise(rng)
    base = _random_color(rng, saturation=(0.1, 0.3), value=(0.7, 0.85))
    accent = _random_color(rng, saturation=(0.3, 0.6), value=(0.5, 0.8))

    def albedo(p):
        t = noise.fbm(p * 5.0, 5)
        color = _mix(base, accent, np.clip(1.6 * t - 0.4, 0, 1))
        grout = (np.abs(((p[:, 0] / 0.15) % 1) - 0.5) > 0.47) | (np.abs(((p[:, 2] / 0.1) % 1) - 0.5) > 0.46)
        color = np.where(grout[:, None], color * 0.7, color)
        color *= (0.85 + 0.3 * noise(p * 80.0))[:, None]
        return np.clip(posters.apply(p, color), 0, 1)

    return albedo


def checker_print(rng: np.random.Generator, cell: float) -> Material:
    """Two seeded colors in a 3D checker of ``cell`` metres, broken up by noise (boxes)."""
    noise = ValueNoise(rng)
    a, b = _random_color(rng), _random_color(rng)

    def albedo(p):
        checker = (np.floor(p / cell).sum(axis=1) % 2).astype(float)
        t = np.clip(0.7 * checker + 0.5 * noise.fbm(p * 30.0, 4) - 0.1, 0, 1)
        color = _mix(a, b, t) * (0.8 + 0.4 * noise(p * 120.0))[:, None]
        return np.clip(color, 0, 1)

    return albedo


def spotted(rng: np.random.Generator) -> Material:
    """Base color with irregular dark spots (balls)."""
    noise = ValueNoise(rng)
    base, spot = _random_color(rng, value=(0.7, 0.95)), _random_color(rng, value=(0.2, 0.45))

    def albedo(p):
        spots = np.clip((noise.fbm(p * 40.0, 3) - 0.55) * 8, 0, 1)
        return np.clip(_mix(base, spot, spots) * (0.9 + 0.2 * noise(p * 150.0))[:, None], 0, 1)

    return albedo


def banded(rng: np.random.Generator, axis: int = 2) -> Material:
    """Horizontal color bands with a noisy edge and speckle (cans, mugs)."""
    noise = ValueNoise(rng)
    colors = np.stack([_random_color(rng) for _ in range(4)])

    def albedo(p):
        band = np.floor((p[:, axis] + 0.01 * noise(p * 50.0)) / 0.025).astype(np.int64) % len(colors)
        return np.clip(colors[band] * (0.8 + 0.4 * noise.fbm(p * 90.0, 2))[:, None], 0, 1)

    return albedo


def tiles(rng: np.random.Generator) -> Material:
    """Grey floor tiles with noise."""
    noise = ValueNoise(rng)

    def albedo(p):
        grout = (np.abs(((p[:, 0] / 0.3) % 1) - 0.5) > 0.48) | (np.abs(((p[:, 1] / 0.3) % 1) - 0.5) > 0.48)
        g = 0.45 + 0.25 * noise.fbm(p * 8.0, 4)
        g = np.where(grout, 0.25, g)
        return np.clip(np.stack([g, g * 0.97, g * 0.93], axis=1), 0, 1)

    return albedo


def skin(rng: np.random.Generator) -> Material:
    """Skin tone with faint blotches; evaluated in the hand's own frame so it moves with the hand."""
    noise = ValueNoise(rng)
    tone = np.array([0.88, 0.66, 0.54]) * rng.uniform(0.9, 1.05)

    def albedo(p):
        return np.clip(tone * (0.93 + 0.12 * noise.fbm(p * 60.0, 2))[:, None], 0, 1)

    return albedo
