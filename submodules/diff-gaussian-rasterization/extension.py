"""How the compiled module ``diff_gaussian_rasterization._C`` is built, in one place: pip install
(setup.py, through ../extension_setup.py) and utils/cuda_ext.py (the just-in-time build) both
read this file, so the two builds compile the same sources with the same flags. Paths are
relative to this folder."""
MODULE = "diff_gaussian_rasterization._C"
SOURCES = ("csrc/ext.cpp", "csrc/rasterize.cu", "csrc/forward.cu", "csrc/backward.cu")
CXX_FLAGS = ("-O3",)
NVCC_FLAGS = ("-O3", "-lineinfo")   # line info: profilers and compute-sanitizer name source lines
DESCRIPTION = "EgoMask-GS tile-based differentiable Gaussian rasterizer (CUDA)"
