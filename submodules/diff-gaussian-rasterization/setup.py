"""pip install --no-build-isolation ./submodules/diff-gaussian-rasterization

Needs nvcc and a CUDA build of PyTorch already installed (hence --no-build-isolation: the build
imports torch). Without installing, utils.cuda_ext builds the same sources just in time.
"""
import os
import runpy

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = runpy.run_path(os.path.join(HERE, "extension.py"))   # sources and flags, shared with the JIT build

setup(
    name="diff_gaussian_rasterization",
    version="1.0.0",
    description="EgoMask-GS tile-based differentiable Gaussian rasterizer (CUDA)",
    packages=["diff_gaussian_rasterization"],
    ext_modules=[CUDAExtension(
        name=BUILD["MODULE"],
        sources=[os.path.join(HERE, s) for s in BUILD["SOURCES"]],
        extra_compile_args={"cxx": list(BUILD["CXX_FLAGS"]), "nvcc": list(BUILD["NVCC_FLAGS"])},
    )],
    cmdclass={"build_ext": BuildExtension},
)
