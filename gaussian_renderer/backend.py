"""The one place that picks the rasterizer backend (--rasterizer auto|cuda|torch).

    module = get_rasterizer("auto", device)
    module.GaussianRasterizationSettings(...), module.GaussianRasterizer(settings)(...)

"torch" is the pure-PyTorch reference; "cuda" the compiled ``diff_gaussian_rasterization``
(loaded through ``utils.cuda_ext.load_rasterizer``) and fails clearly when it cannot be used;
"auto" takes CUDA when a GPU is present, the tensors are on it and the extension loads, else the
reference, saying why once. The choice is made once per (name, device type) and cached.
"""
import sys
from types import ModuleType

import torch

from gaussian_renderer import reference
from utils.cuda_ext import load_rasterizer

BACKEND_NAMES = ("auto", "cuda", "torch")

_cache = {}
_fallback_reported = False


def get_rasterizer(name: str, device) -> ModuleType:
    """Module exposing GaussianRasterizationSettings and GaussianRasterizer for tensors on device."""
    if name not in BACKEND_NAMES:
        raise ValueError(f"--rasterizer must be one of {', '.join(BACKEND_NAMES)}, got {name!r}")
    device = torch.device(device)
    key = (name, device.type)
    if key not in _cache:
        _cache[key] = _choose(name, device)
    return _cache[key]


def _choose(name: str, device: torch.device) -> ModuleType:
    if name == "torch":
        return reference
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--rasterizer cuda needs a CUDA GPU, but PyTorch sees none. "
                               "Use --rasterizer torch (or auto) on this machine.")
        if device.type != "cuda":
            raise RuntimeError(f"--rasterizer cuda needs the Gaussians on the GPU, they are on {device}. "
                               "Use --data_device cuda, or --rasterizer torch.")
        return _load_cuda()
    reason = _cuda_unusable_reason(device)
    if reason is None:
        module = _try_load_cuda()
        return reference if module is None else module
    _report_fallback(reason)
    return reference


def _load_cuda() -> ModuleType:
    try:
        return load_rasterizer()
    except RuntimeError as err:
        raise RuntimeError(f"the CUDA rasterizer could not be built or loaded: {err}\n"
                           "Fix the build, or use --rasterizer torch.") from err


_cuda_attempt = {}


def _try_load_cuda():
    """The CUDA module, or None after reporting why it failed (tried once)."""
    if "module" not in _cuda_attempt:
        try:
            _cuda_attempt["module"] = _load_cuda()
        except RuntimeError as err:
            _cuda_attempt["module"] = None
            _report_fallback(str(err).splitlines()[0])
    return _cuda_attempt["module"]


def _cuda_unusable_reason(device: torch.device):
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible"
    if device.type != "cuda":
        return f"the Gaussians are on {device}"
    return None


def _report_fallback(reason: str) -> None:
    global _fallback_reported
    if not _fallback_reported:
        _fallback_reported = True
        print(f"[rasterizer] using the PyTorch reference rasterizer ({reason}); "
              "it is much slower than the CUDA one.", file=sys.stderr)
