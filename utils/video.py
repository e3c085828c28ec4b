"""Write a frame sequence as an mp4 (OpenCV's FFmpeg backend) or, failing that, an animated GIF."""
import os
from typing import List, Optional

import cv2
import numpy as np
from PIL import Image


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad to even height and width by repeating the last row/column (most codecs need even sizes)."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frame


def _write_mp4(frames: List[np.ndarray], path: str, fps: float) -> bool:
    height, width = _even(frames[0]).shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        return False
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(_even(frame)[:, :, ::-1]))  # OpenCV wants BGR
    finally:
        writer.release()
    return os.path.isfile(path) and os.path.getsize(path) > 0


def _write_gif(frames: List[np.ndarray], path: str, fps: float) -> bool:
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0)
    return os.path.isfile(path)


def write_video(frames: List[np.ndarray], path_without_extension: str, fps: float = 10.0) -> Optional[str]:
    """frames: [H, W, 3] uint8 RGB arrays of one size. Returns the file written (.mp4, else .gif),
    or None when there are no frames or no writer works."""
    if not frames:
        return None
    frames = [f if f.ndim == 3 else np.repeat(f[:, :, None], 3, axis=2) for f in frames]
    frames = [np.repeat(f, 3, axis=2) if f.shape[2] == 1 else f for f in frames]
    mp4 = path_without_extension + ".mp4"
    if _write_mp4(frames, mp4, fps):
        return mp4
    if os.path.exists(mp4):
        os.remove(mp4)
    gif = path_without_extension + ".gif"
    try:
        return gif if _write_gif(frames, gif, fps) else None
    except (OSError, ValueError):
        return None
