"""The one setup() of the project's CUDA packages. Each package's setup.py hands its folder to
``setup_extension``; what differs between the packages (compiled module, sources, flags,
description) lives in that folder's extension.py, which utils/cuda_ext.py's just-in-time build
reads too, so ``pip install`` and the JIT build compile the same thing.

Needs nvcc and a CUDA build of PyTorch already installed: hence ``pip install
--no-build-isolation``, since the build imports torch.
"""
import os
import runpy

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

VERSION = "1.0.0"


def setup_extension(folder: str) -> None:
    """setup() for the package in ``folder`` (its extension.py: MODULE, SOURCES, CXX_FLAGS,
    NVCC_FLAGS, DESCRIPTION). The Python package is MODULE's first part."""
    build = runpy.run_path(os.path.join(folder, "extension.py"))
    package = build["MODULE"].split(".")[0]
    setup(
        name=package,
        version=VERSION,
        description=build["DESCRIPTION"],
        packages=[package],
        ext_modules=[CUDAExtension(
            name=build["MODULE"],
            sources=[os.path.join(folder, source) for source in build["SOURCES"]],
            extra_compile_args={"cxx": list(build["CXX_FLAGS"]), "nvcc": list(build["NVCC_FLAGS"])},
        )],
        cmdclass={"build_ext": BuildExtension},
    )
