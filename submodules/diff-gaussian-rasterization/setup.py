"""pip install --no-build-isolation ./submodules/diff-gaussian-rasterization

Needs nvcc and a CUDA build of PyTorch already installed (hence --no-build-isolation: the build
imports torch). Without installing, utils.cuda_ext builds the same sources just in time.
"""
import os

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ["csrc/ext.cpp", "csrc/rasterize.cu", "csrc/forward.cu", "csrc/backward.cu"]

setup(
    name="diff_gaussian_rasterization",
    version="1.0.0",
    description="EgoMask-GS tile-based differentiable Gaussian rasterizer (CUDA)",
    packages=["diff_gaussian_rasterization"],
    ext_modules=[CUDAExtension(
        name="diff_gaussian_rasterization._C",
        sources=[os.path.join(HERE, s) for s in SOURCES],
        extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3", "-lineinfo"]},
    )],
    cmdclass={"build_ext": BuildExtension},
)
