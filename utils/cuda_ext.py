"""Our CUDA extensions, loaded once per process: installed package first, else a cached JIT build.

``load_rasterizer()`` returns the ``diff_gaussian_rasterization`` module (GaussianRasterizationSettings,
GaussianRasterizer); ``load_knn()`` returns ``dist_cuda2(points [N,3]) -> [N]``. Either raises
RuntimeError with a message saying why (no GPU, no nvcc, or the compiler's own error), so that
``--rasterizer cuda`` fails clearly and ``auto`` can fall back to the reference in one line.

The JIT build goes to ``$EGOMASK_EXT_DIR`` (default ``~/.cache/egomask_gs/extensions``), one folder
per extension, torch and CUDA version; torch rebuilds it only when a source file changes.
"""
import importlib
import os
import runpy
import sys
import threading
from types import ModuleType
from typing import Callable, Dict

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RASTERIZER_DIR = os.path.join(ROOT, "submodules", "diff-gaussian-rasterization")
KNN_DIR = os.path.join(ROOT, "submodules", "simple-knn")

_cache: Dict[str, object] = {}
_lock = threading.Lock()


def load_rasterizer() -> ModuleType:
    """The CUDA rasterizer package, with its compiled part ready."""
    with _lock:
        if "rasterizer" not in _cache:
            _cache["rasterizer"] = _load_rasterizer()
        return _cache["rasterizer"]


def load_knn() -> Callable[[torch.Tensor], torch.Tensor]:
    """``dist_cuda2(points [N,3] float32 CUDA) -> [N]``: mean squared distance to the 3 nearest others."""
    with _lock:
        if "knn" not in _cache:
            _cache["knn"] = _load_knn()
        return _cache["knn"]


def _load_rasterizer() -> ModuleType:
    _require_cuda("the CUDA rasterizer")
    try:
        package = importlib.import_module("diff_gaussian_rasterization")
        if package.has_extension():
            return package
    except ImportError:
        package = None
    compiled = _jit_build("diff_gaussian_rasterization_C", RASTERIZER_DIR, "CUDA rasterizer")
    if package is None:  # the Python half comes from the source tree
        if RASTERIZER_DIR not in sys.path:
            sys.path.insert(0, RASTERIZER_DIR)
        package = importlib.import_module("diff_gaussian_rasterization")
    package.set_extension(compiled)
    return package


def _load_knn() -> Callable[[torch.Tensor], torch.Tensor]:
    _require_cuda("the CUDA kNN")
    try:
        return importlib.import_module("simple_knn._C").distCUDA2
    except ImportError:
        pass
    return _jit_build("simple_knn_C", KNN_DIR, "CUDA kNN").distCUDA2


def _require_cuda(what: str) -> None:
    if not torch.cuda.is_available():
        raise RuntimeError(f"{what} needs a CUDA GPU, and torch.cuda.is_available() is False "
                           f"(torch {torch.__version__}).")


def build_directory(name: str) -> str:
    base = os.environ.get("EGOMASK_EXT_DIR", os.path.join(os.path.expanduser("~"), ".cache", "egomask_gs", "extensions"))
    tag = f"{name}-torch{torch.__version__.split('+')[0]}-cuda{torch.version.cuda}"
    return os.path.join(base, tag)


def extension_build(folder: str) -> dict:
    """An extension package's build description (its extension.py: MODULE, SOURCES, CXX_FLAGS,
    NVCC_FLAGS, DESCRIPTION), the one pip's build reads too (submodules/extension_setup.py)."""
    return runpy.run_path(os.path.join(folder, "extension.py"))


def _jit_build(name: str, folder: str, what: str) -> ModuleType:
    from torch.utils import cpp_extension

    if cpp_extension.CUDA_HOME is None:
        raise RuntimeError(f"Cannot build the {what}: no CUDA toolkit found (nvcc). Install the CUDA toolkit "
                           "matching torch.version.cuda and set CUDA_HOME, or pip install ./submodules/... "
                           "on a machine that has one.")
    build_dir = build_directory(name)
    os.makedirs(build_dir, exist_ok=True)
    if not os.path.exists(os.path.join(build_dir, name + ".so")):
        print(f"Building the {what} (first run only, ~1 min)…", flush=True)
    build = extension_build(folder)
    try:
        return cpp_extension.load(
            name=name, sources=[os.path.join(folder, s) for s in build["SOURCES"]], build_directory=build_dir,
            extra_cflags=list(build["CXX_FLAGS"]), extra_cuda_cflags=list(build["NVCC_FLAGS"]), verbose=False)
    except Exception as err:  # torch puts the compiler's output in the message
        raise RuntimeError(f"Building the {what} from {folder} failed (build folder {build_dir}):\n{err}") from err
