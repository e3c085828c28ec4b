"""Ray-primitive intersections and rotations for the synthetic scene's ray caster (numpy).

Every ``intersect_*`` function takes ray origins ``o`` [N, 3] and directions ``d`` [N, 3] (any
length, not necessarily unit) and returns ``(t [N], normal [N, 3])``: the ray parameter of the
first hit in front of the origin (``inf`` where the ray misses) and the outward unit normal
there (zeros where it misses). Because directions need not be unit length, a camera ray
``d = R_c2w @ (x, y, 1)`` gives ``t`` = view-space z directly.

All solids are convex or a union of convex pieces, and rays start outside them (the camera is
never inside an object), so the first hit is always an entry point.
"""
import numpy as np

T_MIN = 1e-7   # hits closer than this to the origin are ignored
_TINY = 1e-12  # stands in for a zero direction component in the slab test


# ----------------------------------------------------------------------------- rotations

def rotation_about(axis, angle: float) -> np.ndarray:
    """[3, 3] rotation by ``angle`` radians about ``axis`` (right-hand rule, Rodrigues' formula)."""
    k = np.asarray(axis, dtype=np.float64)
    k = k / np.linalg.norm(k)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * (K @ K)


def look_at_c2w(forward, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """[3, 3] camera-to-world rotation of a camera looking along ``forward`` with ``up`` above it.

    Columns are the camera's x (right), y (down) and z (forward) axes in world coordinates, the
    COLMAP / 3DGS camera convention.
    """
    f = np.asarray(forward, dtype=np.float64)
    f = f / np.linalg.norm(f)
    right = np.cross(f, up)
    right = right / np.linalg.norm(right)
    down = np.cross(f, right)
    return np.stack([right, down, f], axis=1)


# ----------------------------------------------------------------------------- helpers

def mul(v: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Row vectors v [N, k] times a small matrix m [k, j] (or vector [k]) without BLAS.

    numpy sends ``v @ m`` to multi-threaded BLAS, which is slow for an inner size of 3 and much
    slower still on a busy shared machine; k broadcast multiply-adds are fast everywhere.
    """
    out = v[:, 0:1] * m[0] if m.ndim == 2 else v[:, 0] * m[0]
    for j in range(1, m.shape[0]):
        out = out + (v[:, j:j + 1] * m[j] if m.ndim == 2 else v[:, j] * m[j])
    return out


def _no_hit(n: int):
    return np.full(n, np.inf), np.zeros((n, 3))


def _to_local(o, d, center, rotation):
    """Ray in a primitive's frame: ``p_local = R^T (p - c)``, written for row vectors."""
    if np.array_equal(rotation, np.eye(3)):
        return o - center, d
    return mul(o - center, rotation), mul(d, rotation)


def _entry_root(a, b, c):
    """Smaller root t of ``a t^2 + 2 b t + c = 0`` where it exists, else inf. a [N] > 0."""
    disc = b * b - a * c
    hit = disc >= 0
    t = np.full(a.shape, np.inf)
    t[hit] = (-b[hit] - np.sqrt(disc[hit])) / a[hit]
    return t


def _unit(v):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), _TINY)


def ray_hits_sphere(o, d, center, radius) -> np.ndarray:
    """[N] bool: does the ray's forward half pass within ``radius`` of ``center``? (cheap culling)"""
    oc = np.asarray(center, dtype=np.float64) - o
    along = np.einsum("ij,ij->i", oc, d)
    dist2 = np.einsum("ij,ij->i", oc, oc)
    perp2 = dist2 - along * along / np.einsum("ij,ij->i", d, d)
    return (perp2 <= radius * radius) & ((along > 0) | (dist2 <= radius * radius))


# ----------------------------------------------------------------------------- primitives

def intersect_box(o, d, center, half_extents, rotation=np.eye(3)):
    """Oriented box: slab test in the box frame; the normal is the face of entry."""
    lo, ld = _to_local(o, d, center, rotation)
    ld = np.where(np.abs(ld) < _TINY, _TINY, ld)
    t1 = (-half_extents - lo) / ld
    t2 = (half_extents - lo) / ld
    t_near = np.minimum(t1, t2)
    t_far = np.maximum(t1, t2).min(axis=1)
    entry_axis = t_near.argmax(axis=1)
    t_entry = t_near.max(axis=1)
    hit = (t_entry <= t_far) & (t_entry > T_MIN)
    t, normal = _no_hit(len(o))
    t[hit] = t_entry[hit]
    rows = np.nonzero(hit)[0]
    local_n = np.zeros((len(rows), 3))
    local_n[np.arange(len(rows)), entry_axis[rows]] = -np.sign(ld[rows, entry_axis[rows]])
    normal[rows] = mul(local_n, rotation.T)
    return t, normal


def intersect_ellipsoid(o, d, center, radii, rotation=np.eye(3)):
    """Ellipsoid with semi-axes ``radii`` along the columns of ``rotation`` (a sphere if equal)."""
    lo, ld = _to_local(o, d, center, rotation)
    so, sd = lo / radii, ld / radii  # unit-sphere space
    t = _entry_root(np.einsum("ij,ij->i", sd, sd), np.einsum("ij,ij->i", so, sd),
                    np.einsum("ij,ij->i", so, so) - 1.0)
    t[t <= T_MIN] = np.inf
    normal = np.zeros((len(o), 3))
    hit = np.isfinite(t)
    local_p = lo[hit] + t[hit, None] * ld[hit]
    normal[hit] = _unit(mul(local_p / radii ** 2, rotation.T))  # gradient of the implicit function
    return t, normal


def intersect_sphere(o, d, center, radius):
    return intersect_ellipsoid(o, d, center, np.full(3, float(radius)))


def intersect_cylinder(o, d, center, radius, half_height, rotation=np.eye(3)):
    """Capped cylinder along the local z axis: the nearer of the side and the facing cap."""
    lo, ld = _to_local(o, d, center, rotation)
    a = ld[:, 0] ** 2 + ld[:, 1] ** 2
    a_safe = np.where(a < _TINY, 1.0, a)
    t_side = _entry_root(a_safe, lo[:, 0] * ld[:, 0] + lo[:, 1] * ld[:, 1],
                         lo[:, 0] ** 2 + lo[:, 1] ** 2 - radius ** 2)
    t_side[a < _TINY] = np.inf  # ray parallel to the axis never enters through the side
    z_side = lo[:, 2] + np.where(np.isfinite(t_side), t_side, 0.0) * ld[:, 2]
    t_side[(np.abs(z_side) > half_height) | (t_side <= T_MIN)] = np.inf

    cap_z = np.where(lo[:, 2] > 0, half_height, -half_height)  # the cap facing the origin
    dz = np.where(np.abs(ld[:, 2]) < _TINY, _TINY, ld[:, 2])
    t_cap = (cap_z - lo[:, 2]) / dz
    cap_xy = lo[:, :2] + t_cap[:, None] * ld[:, :2]
    t_cap[(np.einsum("ij,ij->i", cap_xy, cap_xy) > radius ** 2) | (t_cap <= T_MIN)
          | (np.abs(lo[:, 2]) <= half_height)] = np.inf

    t = np.minimum(t_side, t_cap)
    normal = np.zeros((len(o), 3))
    side = np.isfinite(t_side) & (t_side <= t_cap)
    cap = np.isfinite(t_cap) & ~side
    p_side = lo[side] + t_side[side, None] * ld[side]
    normal[side] = mul(_unit(np.stack([p_side[:, 0], p_side[:, 1], np.zeros(side.sum())], axis=1)), rotation.T)
    normal[cap] = np.outer(np.sign(cap_z[cap]), rotation[:, 2])
    return t, normal


def intersect_capsule(o, d, a, b, radius):
    """Capsule = segment a-b swept by a ball: the union of two balls and the finite tube.

    Entering the finite cylinder through a flat end means already being inside an end ball,
    so the first entry is the nearest of the two ball entries and the tube's side entry.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    length = np.linalg.norm(b - a)
    axis = (b - a) / length
    oa = o - a
    oa_along, d_along = mul(oa, axis), mul(d, axis)
    o_perp = oa - np.outer(oa_along, axis)
    d_perp = d - np.outer(d_along, axis)
    dd = np.einsum("ij,ij->i", d_perp, d_perp)
    dd_safe = np.where(dd < _TINY, 1.0, dd)
    t_tube = _entry_root(dd_safe, np.einsum("ij,ij->i", o_perp, d_perp),
                         np.einsum("ij,ij->i", o_perp, o_perp) - radius ** 2)
    t_tube[dd < _TINY] = np.inf
    s = oa_along + np.where(np.isfinite(t_tube), t_tube, 0.0) * d_along  # position along the axis
    t_tube[(s < 0) | (s > length) | (t_tube <= T_MIN)] = np.inf

    t_a, n_a = intersect_sphere(o, d, a, radius)
    t_b, n_b = intersect_sphere(o, d, b, radius)
    t = np.minimum(np.minimum(t_a, t_b), t_tube)
    normal = np.where((t == t_a)[:, None], n_a, n_b)
    tube = np.isfinite(t_tube) & (t_tube == t)
    p = o[tube] + t_tube[tube, None] * d[tube]
    normal[tube] = _unit(p - a - np.outer(s[tube], axis))
    normal[~np.isfinite(t)] = 0.0
    return t, normal
