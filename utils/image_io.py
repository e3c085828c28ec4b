"""Reading and writing images, with clear errors for bad files.

``read_pixels`` keeps what the file holds (gray, RGB, RGBA; uint8, uint16 or float) in RGB(A) order,
``read_image`` is the same as float32 in [0, 1]; ``to_rgb`` / ``to_gray`` turn either into what a
reader needs. Dataset readers keep frames compact (``read_pixels``): 8-bit frames take a quarter of
the memory of float ones, and ``normalize_pixels`` gives the float values when the camera is built.
"""
import os
from typing import Optional, Sequence, Union

import cv2
import numpy as np
import torch

from utils.errors import DatasetError

_INTEGER_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def read_raw(path: str) -> np.ndarray:
    """The file's pixels as cv2 decodes them (channel order BGR[A]), any dtype; DatasetError if
    the file is missing or cannot be decoded."""
    if not os.path.isfile(path):
        raise DatasetError(f"Image file not found: {path}. Add the file or fix the path that refers to it.")
    try:
        buffer = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise DatasetError(f"Cannot read image file {path}: {err.strerror}.") from None
    pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    if pixels is None:
        raise DatasetError(f"Image file {path} is corrupt or not an image format OpenCV can decode. "
                           "Re-export it (PNG or JPEG) or remove it from the dataset.")
    return pixels


def normalize_pixels(pixels: np.ndarray, path: str = "<array>") -> np.ndarray:
    """Integer pixels divided by their dtype's maximum (8 or 16 bit); float pixels kept as they are."""
    if pixels.dtype in _INTEGER_MAX:
        return pixels.astype(np.float32) / _INTEGER_MAX[pixels.dtype]
    if np.issubdtype(pixels.dtype, np.floating):
        return pixels.astype(np.float32, copy=False)
    raise DatasetError(f"Image file {path} has unsupported pixel type {pixels.dtype}: "
                       "use 8- or 16-bit PNG/JPEG (or float EXR/TIFF).")


def read_pixels(path: str) -> np.ndarray:
    """[H, W, C] in the file's own dtype (uint8, uint16 or float32), C = 1 (gray), 3 (RGB) or 4 (RGBA)."""
    pixels = read_raw(path)
    if pixels.dtype not in _INTEGER_MAX:
        pixels = normalize_pixels(pixels, path)  # float kept (as float32); other types refused
    if pixels.ndim == 2:
        return pixels[:, :, None]
    if pixels.shape[2] == 3:
        return np.ascontiguousarray(pixels[:, :, ::-1])
    if pixels.shape[2] == 4:
        return np.ascontiguousarray(pixels[:, :, [2, 1, 0, 3]])
    raise DatasetError(f"Image file {path} has {pixels.shape[2]} channels; expected gray, RGB or RGBA.")


MASK_COLOUR_BLACK = 0.1  # a coloured / palette mask pixel is hand when a channel exceeds this


def read_mask(path: str):
    """A hand mask as (pixels [H, W] in the file's dtype, how it was read), white = hand.

    how: "grey" (a grey image, or RGB with equal channels: its value); "alpha" (an RGBA file whose
    colour is constant and whose alpha varies: the mask is the alpha channel); "colour" (colour or
    palette masks, as Track-Anything and many tools write: any pixel with a channel above
    MASK_COLOUR_BLACK of full scale is hand, the rest is not)."""
    pixels = read_pixels(path)
    if pixels.shape[2] == 4:
        colour, alpha = pixels[:, :, :3], pixels[:, :, 3]
        if alpha.min() != alpha.max() and colour.min() == colour.max():
            return np.ascontiguousarray(alpha), "alpha"
        pixels = colour
    if pixels.shape[2] == 3 and not (np.array_equal(pixels[:, :, 0], pixels[:, :, 1])
                                     and np.array_equal(pixels[:, :, 0], pixels[:, :, 2])):
        top = _INTEGER_MAX.get(pixels.dtype, 1.0)
        hand = pixels.max(axis=2) > MASK_COLOUR_BLACK * top
        return (hand * top).astype(pixels.dtype), "colour"
    return np.ascontiguousarray(pixels[:, :, 0]), "grey"


def check_same_aspect(path: str, what: str, size, frame_size) -> None:
    """DatasetError unless an image of size (width, height) has the aspect ratio of its frame's
    (width, height) within one pixel (masks and priors may be stored at another scale, not stretched)."""
    (width, height), (frame_width, frame_height) = size, frame_size
    if abs(height * frame_width / width - frame_height) > 1.0:
        raise DatasetError(f"{what} {path} is {width}x{height} but its frame is {frame_width}x{frame_height} "
                           "(another aspect ratio, it would be stretched): make it from the frame itself, at "
                           "the frame's size.")


def read_image(path: str) -> np.ndarray:
    """[H, W, C] float32 in [0, 1], C = 1 (gray), 3 (RGB) or 4 (RGBA), from an 8/16-bit or float file."""
    return normalize_pixels(read_pixels(path), path)


def to_rgb(image: np.ndarray, background: Optional[Sequence[float]] = None) -> np.ndarray:
    """[H, W, C] -> [H, W, 3], in the input's dtype. Gray is repeated; RGBA is composited
    ``rgb * a + bg * (1 - a)`` as float32 in [0, 1] (exactly as from ``read_image``), except that
    alpha is dropped (dtype kept) when ``background`` is None or alpha is opaque everywhere."""
    channels = image.shape[2]
    if channels == 1:
        return np.repeat(image, 3, axis=2)
    if channels == 3:
        return image
    rgb, alpha = image[:, :, :3], image[:, :, 3:4]
    if background is None or (alpha == _INTEGER_MAX.get(alpha.dtype, 1.0)).all():
        return np.ascontiguousarray(rgb)
    rgb, alpha = normalize_pixels(rgb), normalize_pixels(alpha)
    bg = np.asarray(background, dtype=np.float32).reshape(1, 1, 3)
    return rgb * alpha + bg * (1.0 - alpha)


def to_gray(image: np.ndarray) -> np.ndarray:
    """[H, W, C] -> [H, W]: the single channel, or the luma of RGB(A) (alpha ignored). Integer
    pixels keep their dtype when the colour channels are equal (grey saved as RGB); any other
    colour gives float32 luma in [0, 1]."""
    if image.shape[2] == 1:
        return image[:, :, 0]
    rgb = image[:, :, :3]
    if rgb.dtype in _INTEGER_MAX and (rgb == rgb[:, :, :1]).all():
        return np.ascontiguousarray(rgb[:, :, 0])
    return cv2.cvtColor(np.ascontiguousarray(normalize_pixels(rgb)), cv2.COLOR_RGB2GRAY)


def read_rgb(path: str, background: Optional[Sequence[float]] = None) -> np.ndarray:
    """[H, W, 3] float32 in [0, 1]; RGBA composited on ``background`` (see ``to_rgb``)."""
    return normalize_pixels(to_rgb(read_pixels(path), background), path)


def read_rgb_compact(path: str, background: Optional[Sequence[float]] = None) -> np.ndarray:
    """[H, W, 3] as ``read_rgb`` but in the file's dtype (uint8 / uint16) where that is exact;
    float32 in [0, 1] for float files and for RGBA composited on a translucent alpha."""
    return to_rgb(read_pixels(path), background)


def write_image(path: str, image: Union[np.ndarray, torch.Tensor], bit_depth: int = 8) -> None:
    """Write a PNG (or any format cv2 knows by the extension).

    ``image``: a torch tensor [C, H, W] or [H, W], or a numpy array [H, W, C] or [H, W], C in {1, 3, 4}
    (RGB order). Floats are taken in [0, 1] (clipped) and stored with ``bit_depth`` 8 or 16;
    uint8 / uint16 arrays are written unchanged. Parent folders are created.
    """
    pixels = _as_hwc_numpy(image)
    if np.issubdtype(pixels.dtype, np.floating):
        if bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
        dtype = np.uint8 if bit_depth == 8 else np.uint16
        scale = 255.0 if bit_depth == 8 else 65535.0
        pixels = np.round(np.clip(pixels, 0.0, 1.0) * scale).astype(dtype)
    elif pixels.dtype not in _INTEGER_MAX:
        raise ValueError(f"Cannot write pixels of type {pixels.dtype} to {path}: use float, uint8 or uint16.")
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        pixels = pixels[:, :, [2, 1, 0, 3][:pixels.shape[2]]]  # cv2 writes BGR(A)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    if not cv2.imwrite(path, np.ascontiguousarray(pixels)):
        raise OSError(f"Could not write image {path}: check the folder is writable and the extension "
                      "is an image format (e.g. .png).")


def _as_hwc_numpy(image: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.is_floating_point():
            image = image.float()  # bf16 / fp16 have no numpy twin
        if image.dim() == 3:
            image = image.permute(1, 2, 0)
        image = image.numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(f"Expected an image [H, W], [H, W, C] (numpy) or [C, H, W] (torch), "
                         f"C in 1/3/4; got shape {tuple(image.shape)}")
    return image


def resize(array: np.ndarray, width: int, height: int, nearest: bool = False) -> np.ndarray:
    """[H, W] or [H, W, C] array to [height, width(, C)], same dtype (interpolate floats: integer
    pixels are rounded to their own levels; ``nearest`` is exact in any dtype).

    Shrinking averages over the covered area (cv2 INTER_AREA, no aliasing), enlarging is bilinear;
    ``nearest`` keeps the original values (used for masks so they stay 0/1).
    """
    if array.shape[0] == height and array.shape[1] == width:
        return array
    if nearest:
        interpolation = cv2.INTER_NEAREST
    elif width <= array.shape[1] and height <= array.shape[0]:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(array), (width, height), interpolation=interpolation)
    if array.ndim == 3 and resized.ndim == 2:  # cv2 drops a single channel axis
        resized = resized[:, :, None]
    return resized
