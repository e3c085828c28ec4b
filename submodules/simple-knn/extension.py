"""How the compiled module ``simple_knn._C`` is built, in one place: pip install (setup.py,
through ../extension_setup.py) and utils/cuda_ext.py (the just-in-time build) both read this
file. Paths are relative to this folder."""
MODULE = "simple_knn._C"
SOURCES = ("csrc/ext.cpp", "csrc/knn.cu")
CXX_FLAGS = ("-O3",)
NVCC_FLAGS = ("-O3",)
DESCRIPTION = "EgoMask-GS exact 3-NN mean squared distance (CUDA)"
