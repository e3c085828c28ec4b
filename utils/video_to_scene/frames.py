"""Frames for structure-from-motion: list a folder of frames in time order, or cut them from a video.

COLMAP's sequential matcher and our readers both order frames by file name, so names must
sort in time order: extracted frames get zero-padded numbers, and a folder whose numbers are
not zero-padded is refused rather than silently matched out of order.
"""
import math
import os
import re
from typing import Callable, List, Optional, Tuple

import cv2
from PIL import Image

from utils.errors import DatasetError

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def _natural_key(name: str):
    """'frame_10.png' -> ['frame_', 10, '.png']: numbers compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_frames(folder: str) -> List[str]:
    """Image file names in ``folder``, in time (= lexicographic) order.

    Raises DatasetError when there are none, or when their numbers are not zero-padded
    (lexicographic order would then differ from time order)."""
    if not os.path.isdir(folder):
        raise DatasetError(f"No frame folder {folder!r}: put the frames in SCENE/input/ "
                           "or pass a video with --video FILE.")
    names = sorted(n for n in os.listdir(folder)
                   if n.lower().endswith(FRAME_EXTENSIONS) and os.path.isfile(os.path.join(folder, n)))
    if not names:
        raise DatasetError(f"No frames in {folder!r} (looked for {', '.join(FRAME_EXTENSIONS)}): "
                           "copy the frames there or pass a video with --video FILE.")
    natural = sorted(names, key=_natural_key)
    if natural != names:
        first = next(i for i, (a, b) in enumerate(zip(names, natural)) if a != b)
        raise DatasetError(
            f"Frame names in {folder!r} are not zero-padded: {names[first]!r} sorts before "
            f"{natural[first]!r}, so name order is not time order. Rename them with zero-padded "
            "numbers (e.g. 00002.jpg, 00010.jpg).")
    return names


def check_frame_sizes(folder: str, names: List[str]) -> Tuple[int, int]:
    """(width, height) shared by all frames; reads headers only. One camera needs one size."""
    size = first = None
    for name in names:
        path = os.path.join(folder, name)
        try:
            with Image.open(path) as image:
                this = image.size
        except Exception as err:  # PIL raises several types for broken files
            raise DatasetError(f"Cannot read frame {path!r} ({err}): replace or delete it.") from err
        if size is None:
            size, first = this, name
        elif this != size:
            raise DatasetError(
                f"Frame {path!r} is {this[0]}x{this[1]} but {first!r} is {size[0]}x{size[1]}: "
                "all frames of one video must have the same size; resize or remove the odd ones.")
    return size


def frame_name(index: int, digits: int) -> str:
    return f"{index:0{digits}d}.png"


def extract_video_frames(video_path: str, out_dir: str, fps: Optional[float] = None,
                         progress: Optional[Callable[[int, int], None]] = None) -> int:
    """Write frames of ``video_path`` as ``out_dir/00000.png, 00001.png, ...``; returns their count.

    ``fps`` keeps about that many frames per second of video (None keeps every frame). PNG is
    lossless, so the frames are exactly what the decoder gave. ``progress(decoded, total)`` is
    called as frames are kept (total is the container's estimate, 0 if unknown)."""
    if not os.path.isfile(video_path):
        raise DatasetError(f"Video {video_path!r} does not exist: check the path given to --video.")
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise DatasetError(f"--fps {fps} is not a positive number of frames per second.")
    capture = cv2.VideoCapture(video_path)
    try:
        if not capture.isOpened():
            raise DatasetError(_unreadable(video_path, "OpenCV cannot open it"))
        step = _frame_step(capture.get(cv2.CAP_PROP_FPS), fps)
        total = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        digits = max(5, len(str(total)))
        os.makedirs(out_dir, exist_ok=True)
        kept = decoded = 0
        next_keep = 0.0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if decoded >= next_keep - 1e-6:
                path = os.path.join(out_dir, frame_name(kept, digits))
                if not cv2.imwrite(path, frame):
                    raise DatasetError(f"Cannot write frame {path!r}: check free disk space and permissions.")
                kept += 1
                next_keep += step
                if progress is not None:
                    progress(decoded + 1, total)
            decoded += 1
    finally:
        capture.release()
    if kept == 0:
        raise DatasetError(_unreadable(video_path, "no frame could be decoded"))
    return kept


def _frame_step(video_fps: float, wanted_fps: Optional[float]) -> float:
    """Keep one decoded frame every ``step`` frames (fractional steps keep the average rate)."""
    if wanted_fps is None or not video_fps or video_fps <= 0 or wanted_fps >= video_fps:
        return 1.0
    return video_fps / wanted_fps


def _unreadable(video_path: str, why: str) -> str:
    return (f"Cannot read video {video_path!r}: {why}. Check that it is a video file (mp4, mov, avi, ...) "
            "that plays elsewhere; if its codec is unsupported, convert it "
            "(e.g. ffmpeg -i IN -c:v libx264 OUT.mp4) or extract the frames into SCENE/input/ yourself.")
