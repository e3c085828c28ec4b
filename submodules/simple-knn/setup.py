"""pip install --no-build-isolation ./submodules/simple-knn

Needs nvcc and a CUDA build of PyTorch already installed (hence --no-build-isolation: the build
imports torch). Without installing, utils.cuda_ext builds the same sources just in time.
"""
import os

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

HERE = os.path.dirname(os.path.abspath(__file__))

setup(
    name="simple_knn",
    version="1.0.0",
    description="EgoMask-GS exact 3-NN mean squared distance (CUDA)",
    packages=["simple_knn"],
    ext_modules=[CUDAExtension(
        name="simple_knn._C",
        sources=[os.path.join(HERE, "csrc", f) for f in ("ext.cpp", "knn.cu")],
        extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3"]},
    )],
    cmdclass={"build_ext": BuildExtension},
)
