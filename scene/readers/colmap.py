"""COLMAP sparse models: read and write cameras / images / points3D, binary and text.

Formats follow the COLMAP documentation ("Output format"): binary files are little-endian,
each starts with a uint64 record count. Image poses are world-to-camera, quaternions (w, x, y, z).
Any malformed file raises ``DatasetError`` naming the file.
"""
import os
import struct
from typing import Dict, NamedTuple, Tuple

import numpy as np

from scene.readers.dataset_types import DatasetError


class ColmapCamera(NamedTuple):
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray  # [P] float64, meaning depends on the model


class ColmapImage(NamedTuple):
    id: int
    qvec: np.ndarray         # [4] (w, x, y, z), world-to-camera rotation
    tvec: np.ndarray         # [3] world-to-camera translation
    camera_id: int
    name: str
    xys: np.ndarray          # [K, 2] keypoint positions in pixels
    point3D_ids: np.ndarray  # [K] int64, -1 where the keypoint has no 3D point


class ColmapPoint3D(NamedTuple):
    id: int
    xyz: np.ndarray           # [3] float64
    rgb: np.ndarray           # [3] uint8
    error: float
    image_ids: np.ndarray     # [T] int32, track: images seeing the point
    point2D_idxs: np.ndarray  # [T] int32, track: keypoint index in each image


# Model name -> (COLMAP model id, number of parameters).
CAMERA_MODELS = {
    "SIMPLE_PINHOLE": (0, 3),
    "PINHOLE": (1, 4),
    "SIMPLE_RADIAL": (2, 4),
    "RADIAL": (3, 5),
    "OPENCV": (4, 8),
    "OPENCV_FISHEYE": (5, 8),
    "FULL_OPENCV": (6, 12),
    "FOV": (7, 5),
    "SIMPLE_RADIAL_FISHEYE": (8, 4),
    "RADIAL_FISHEYE": (9, 5),
    "THIN_PRISM_FISHEYE": (10, 12),
}
CAMERA_MODEL_NAMES = {model_id: name for name, (model_id, _) in CAMERA_MODELS.items()}

Cameras = Dict[int, ColmapCamera]
Images = Dict[int, ColmapImage]
Points3D = Dict[int, ColmapPoint3D]

# Binary record layout of one keypoint (x, y, point3D_id) and one track element.
_POINT2D_DTYPE = np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")])
_TRACK_DTYPE = np.dtype([("image_id", "<i4"), ("point2D_idx", "<i4")])


# ----------------------------------------------------------------------------- rotations

def qvec2rotmat(qvec: np.ndarray) -> np.ndarray:
    """[4] quaternion (w, x, y, z) -> [3, 3] rotation matrix (normalizes the quaternion)."""
    w, x, y, z = np.asarray(qvec, dtype=np.float64) / np.linalg.norm(qvec)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def rotmat2qvec(R: np.ndarray) -> np.ndarray:
    """[3, 3] rotation matrix -> [4] unit quaternion (w, x, y, z) with w >= 0.

    Shepperd's method: divide by the largest of the four squared components for stability.
    """
    R = np.asarray(R, dtype=np.float64)
    trace = np.trace(R)
    diag = np.diag(R)
    squares = np.array([1 + trace, 1 + 2 * diag[0] - trace, 1 + 2 * diag[1] - trace, 1 + 2 * diag[2] - trace])
    k = int(np.argmax(squares))
    s = 2.0 * np.sqrt(squares[k])  # = 4 * |q_k|
    if k == 0:
        q = [s / 4, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    elif k == 1:
        q = [(R[2, 1] - R[1, 2]) / s, s / 4, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s]
    elif k == 2:
        q = [(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, s / 4, (R[1, 2] + R[2, 1]) / s]
    else:
        q = [(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, s / 4]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


# ----------------------------------------------------------------------------- binary

class _BinaryReader:
    """Cursor over a whole file's bytes; every short read is a truncation error naming the file."""

    def __init__(self, path: str):
        self.path = path
        try:
            with open(path, "rb") as f:
                self.data = f.read()
        except OSError as err:
            raise DatasetError(f"Cannot read COLMAP file {path}: {err.strerror}.") from None
        self.pos = 0

    def bytes(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise DatasetError(
                f"{self.path} is truncated or corrupt (needed {n} bytes at offset {self.pos}, "
                f"file has {len(self.data)}). Re-export the model from COLMAP "
                "(or convert it to text with `colmap model_converter`).")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.bytes(struct.calcsize("<" + fmt)))

    def array(self, dtype: np.dtype, count: int) -> np.ndarray:
        return np.frombuffer(self.bytes(dtype.itemsize * count), dtype=dtype, count=count)

    def c_string(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            self.bytes(len(self.data) + 1)  # raises the truncation error
        raw = self.bytes(end - self.pos + 1)[:-1]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DatasetError(f"{self.path} is corrupt: an image name is not valid UTF-8.") from None

    def finish(self) -> None:
        extra = len(self.data) - self.pos
        if extra:
            raise DatasetError(f"{self.path} is corrupt: {extra} unexpected bytes after the last record. "
                               "Re-export the model from COLMAP.")


def read_cameras_binary(path: str) -> Cameras:
    def camera(reader: _BinaryReader) -> Tuple[int, ColmapCamera]:
        camera_id, model_id, width, height = reader.unpack("iiQQ")
        if model_id not in CAMERA_MODEL_NAMES:
            raise DatasetError(f"{path} is corrupt: unknown camera model id {model_id} for camera {camera_id} "
                               f"(known ids 0-{len(CAMERA_MODELS) - 1}).")
        model = CAMERA_MODEL_NAMES[model_id]
        params = np.array(reader.unpack("d" * CAMERA_MODELS[model][1]))
        return camera_id, ColmapCamera(camera_id, model, int(width), int(height), params)
    return _read_binary_records(path, camera)


def read_images_binary(path: str) -> Images:
    def image(reader: _BinaryReader) -> Tuple[int, ColmapImage]:
        image_id, qw, qx, qy, qz, tx, ty, tz, camera_id = reader.unpack("idddddddi")
        name = reader.c_string()
        (num_points2D,) = reader.unpack("Q")
        points = reader.array(_POINT2D_DTYPE, num_points2D)
        xys = np.stack([points["x"], points["y"]], axis=1).astype(np.float64)
        return image_id, ColmapImage(image_id, np.array([qw, qx, qy, qz]), np.array([tx, ty, tz]),
                                     camera_id, name, xys, points["id"].astype(np.int64))
    return _read_binary_records(path, image)


def read_points3D_binary(path: str) -> Points3D:
    def point(reader: _BinaryReader) -> Tuple[int, ColmapPoint3D]:
        point_id, x, y, z, r, g, b, error, track_length = reader.unpack("QdddBBBdQ")
        track = reader.array(_TRACK_DTYPE, track_length)
        return point_id, ColmapPoint3D(point_id, np.array([x, y, z]), np.array([r, g, b], dtype=np.uint8),
                                       float(error), track["image_id"].astype(np.int32),
                                       track["point2D_idx"].astype(np.int32))
    return _read_binary_records(path, point)


def _read_binary_records(path: str, read_record) -> dict:
    """COLMAP's three binary files are a uint64 count and that many records: {id: record}, with
    read_record(reader) -> (id, record). _BinaryReader names the file when it is short or long."""
    reader = _BinaryReader(path)
    (count,) = reader.unpack("Q")
    records = dict(read_record(reader) for _ in range(count))
    reader.finish()
    return records


def write_cameras_binary(cameras: Cameras, path: str) -> None:
    chunks = [struct.pack("<Q", len(cameras))]
    for cam in cameras.values():
        model_id, num_params = _model_id_and_params(cam)
        chunks.append(struct.pack("<iiQQ", cam.id, model_id, cam.width, cam.height))
        chunks.append(np.asarray(cam.params, dtype="<f8").tobytes())
    _write_bytes(path, chunks)


def write_images_binary(images: Images, path: str) -> None:
    chunks = [struct.pack("<Q", len(images))]
    for img in images.values():
        chunks.append(struct.pack("<i7di", img.id, *np.asarray(img.qvec, float), *np.asarray(img.tvec, float),
                                  img.camera_id))
        chunks.append(img.name.encode("utf-8") + b"\x00")
        points = np.empty(len(img.xys), dtype=_POINT2D_DTYPE)
        xys = np.asarray(img.xys, dtype=np.float64).reshape(-1, 2)
        points["x"], points["y"], points["id"] = xys[:, 0], xys[:, 1], img.point3D_ids
        chunks.append(struct.pack("<Q", len(points)) + points.tobytes())
    _write_bytes(path, chunks)


def write_points3D_binary(points3D: Points3D, path: str) -> None:
    chunks = [struct.pack("<Q", len(points3D))]
    for pt in points3D.values():
        track = np.empty(len(pt.image_ids), dtype=_TRACK_DTYPE)
        track["image_id"], track["point2D_idx"] = pt.image_ids, pt.point2D_idxs
        chunks.append(struct.pack("<Q3d3BdQ", pt.id, *np.asarray(pt.xyz, float), *np.asarray(pt.rgb, np.uint8).tolist(),
                                  float(pt.error), len(track)))
        chunks.append(track.tobytes())
    _write_bytes(path, chunks)


def _model_id_and_params(cam: ColmapCamera) -> Tuple[int, int]:
    if cam.model not in CAMERA_MODELS:
        raise ValueError(f"Camera {cam.id}: unknown COLMAP camera model {cam.model!r}; "
                         f"known: {', '.join(CAMERA_MODELS)}.")
    model_id, num_params = CAMERA_MODELS[cam.model]
    if len(cam.params) != num_params:
        raise ValueError(f"Camera {cam.id}: model {cam.model} takes {num_params} parameters, got {len(cam.params)}.")
    return model_id, num_params


def _write_bytes(path: str, chunks) -> None:
    with open(path, "wb") as f:
        f.write(b"".join(chunks))


# ----------------------------------------------------------------------------- text

def _data_lines(path: str):
    """(line number, stripped line) of every non-comment line, blank lines included."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise DatasetError(f"{path} is not a COLMAP text file (not valid UTF-8 text).") from None
    except OSError as err:
        raise DatasetError(f"Cannot read COLMAP file {path}: {err.strerror}.") from None
    return [(number, line.strip()) for number, line in enumerate(lines, start=1)
            if not line.lstrip().startswith("#")]


def _data_fields(path: str):
    """(line number, fields) of each non-blank data line: one record per line (cameras, points)."""
    return [(number, line.split()) for number, line in _data_lines(path) if line]


def _text_error(path: str, number: int, what: str) -> DatasetError:
    return DatasetError(f"{path}, line {number}: {what}. Fix the line or re-export the model from COLMAP.")


def read_cameras_text(path: str) -> Cameras:
    cameras = {}
    for number, fields in _data_fields(path):
        try:
            camera_id, model, width, height = int(fields[0]), fields[1], int(fields[2]), int(fields[3])
            params = np.array([float(v) for v in fields[4:]])
        except (ValueError, IndexError):
            raise _text_error(path, number, "expected `CAMERA_ID MODEL WIDTH HEIGHT PARAMS...`") from None
        if model not in CAMERA_MODELS:
            raise _text_error(path, number, f"unknown camera model {model!r}")
        if len(params) != CAMERA_MODELS[model][1]:
            raise _text_error(path, number, f"model {model} takes {CAMERA_MODELS[model][1]} parameters, "
                                            f"found {len(params)}")
        cameras[camera_id] = ColmapCamera(camera_id, model, width, height, params)
    return cameras


def read_images_text(path: str) -> Images:
    """Two lines per image: the pose line, then its keypoints `X Y POINT3D_ID ...` (may be blank)."""
    images = {}
    lines = _data_lines(path)
    i = 0
    while i < len(lines):
        number, line = lines[i]
        if not line:
            i += 1
            continue
        fields = line.split()
        try:
            image_id = int(fields[0])
            qvec = np.array([float(v) for v in fields[1:5]])
            tvec = np.array([float(v) for v in fields[5:8]])
            camera_id = int(fields[8])
            name = " ".join(fields[9:])
            if len(qvec) != 4 or len(tvec) != 3 or not name:
                raise ValueError
        except (ValueError, IndexError):
            raise _text_error(path, number, "expected `IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`") from None
        points_line = lines[i + 1][1] if i + 1 < len(lines) else ""
        xys, point3D_ids = _parse_keypoints(path, number + 1, points_line)
        images[image_id] = ColmapImage(image_id, qvec, tvec, camera_id, name, xys, point3D_ids)
        i += 2
    return images


def _parse_keypoints(path: str, number: int, line: str) -> Tuple[np.ndarray, np.ndarray]:
    fields = line.split()
    if len(fields) % 3:
        raise _text_error(path, number, "keypoints must come in triples `X Y POINT3D_ID`")
    try:
        values = np.array(fields, dtype=np.float64).reshape(-1, 3)
    except ValueError:
        raise _text_error(path, number, "keypoints must be numbers") from None
    return values[:, :2].copy(), values[:, 2].astype(np.int64)


def read_points3D_text(path: str) -> Points3D:
    points = {}
    for number, fields in _data_fields(path):
        try:
            point_id = int(fields[0])
            xyz = np.array([float(v) for v in fields[1:4]])
            rgb = np.array([int(v) for v in fields[4:7]], dtype=np.uint8)
            error = float(fields[7])
            track = np.array([int(v) for v in fields[8:]], dtype=np.int32).reshape(-1, 2)
            if len(xyz) != 3 or len(rgb) != 3:
                raise ValueError
        except (ValueError, IndexError, OverflowError):
            raise _text_error(path, number, "expected `POINT3D_ID X Y Z R G B ERROR (IMAGE_ID POINT2D_IDX)...`") from None
        points[point_id] = ColmapPoint3D(point_id, xyz, rgb, error, track[:, 0].copy(), track[:, 1].copy())
    return points


def write_cameras_text(cameras: Cameras, path: str) -> None:
    lines = ["# Camera list with one line of data per camera:",
             "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
             f"# Number of cameras: {len(cameras)}"]
    for cam in cameras.values():
        _model_id_and_params(cam)
        lines.append(" ".join([str(cam.id), cam.model, str(cam.width), str(cam.height)] +
                              [repr(float(p)) for p in cam.params]))
    _write_lines(path, lines)


def write_images_text(images: Images, path: str) -> None:
    lines = ["# Image list with two lines of data per image:",
             "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
             "#   POINTS2D[] as (X, Y, POINT3D_ID)",
             f"# Number of images: {len(images)}"]
    for img in images.values():
        pose = [repr(float(v)) for v in list(img.qvec) + list(img.tvec)]
        lines.append(" ".join([str(img.id)] + pose + [str(img.camera_id), img.name]))
        xys = np.asarray(img.xys, dtype=np.float64).reshape(-1, 2)
        lines.append(" ".join(f"{x!r} {y!r} {int(pid)}" for (x, y), pid in zip(xys.tolist(), img.point3D_ids)))
    _write_lines(path, lines)


def write_points3D_text(points3D: Points3D, path: str) -> None:
    lines = ["# 3D point list with one line of data per point:",
             "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
             f"# Number of points: {len(points3D)}"]
    for pt in points3D.values():
        fields = [str(pt.id)] + [repr(float(v)) for v in pt.xyz] + [str(int(c)) for c in pt.rgb]
        fields.append(repr(float(pt.error)))
        fields += [f"{int(i)} {int(j)}" for i, j in zip(pt.image_ids, pt.point2D_idxs)]
        lines.append(" ".join(fields))
    _write_lines(path, lines)


def _write_lines(path: str, lines) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- whole model

_FILES = ("cameras", "images", "points3D")
_READERS = {
    ".bin": (read_cameras_binary, read_images_binary, read_points3D_binary),
    ".txt": (read_cameras_text, read_images_text, read_points3D_text),
}
_WRITERS = {
    ".bin": (write_cameras_binary, write_images_binary, write_points3D_binary),
    ".txt": (write_cameras_text, write_images_text, write_points3D_text),
}


def detect_model_format(path: str) -> str:
    """'.bin' or '.txt': the format whose three files are all in folder ``path`` (binary first)."""
    for ext in (".bin", ".txt"):
        if all(os.path.isfile(os.path.join(path, name + ext)) for name in _FILES):
            return ext
    present = sorted(f for f in (os.listdir(path) if os.path.isdir(path) else []))
    raise DatasetError(
        f"No COLMAP model in {path}: expected cameras, images and points3D as all .bin or all .txt "
        f"(found: {', '.join(present) or 'nothing'}). Run COLMAP (e.g. `python convert.py -s SCENE`) "
        "or point -s at the scene folder that contains sparse/0.")


def read_model(path: str, ext: str = None) -> Tuple[Cameras, Images, Points3D]:
    """Read (cameras, images, points3D) from folder ``path``; ``ext`` None detects .bin or .txt."""
    ext = ext or detect_model_format(path)
    read_cameras, read_images, read_points = _READERS[ext]
    return (read_cameras(os.path.join(path, "cameras" + ext)),
            read_images(os.path.join(path, "images" + ext)),
            read_points(os.path.join(path, "points3D" + ext)))


def write_model(path: str, cameras: Cameras, images: Images, points3D: Points3D, ext: str = ".bin") -> None:
    """Write the three model files into folder ``path`` (created if needed)."""
    if ext not in _WRITERS:
        raise ValueError(f"ext must be '.bin' or '.txt', got {ext!r}")
    os.makedirs(path, exist_ok=True)
    write_cameras, write_images, write_points = _WRITERS[ext]
    write_cameras(cameras, os.path.join(path, "cameras" + ext))
    write_images(images, os.path.join(path, "images" + ext))
    write_points(points3D, os.path.join(path, "points3D" + ext))
