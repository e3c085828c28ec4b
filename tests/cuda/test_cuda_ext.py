"""utils.cuda_ext: cached loading, and clear errors where the extensions cannot be had."""
import os
import shutil

import pytest

from utils import cuda_ext


@pytest.mark.cuda
def test_loaders_are_cached_per_process():
    assert cuda_ext.load_rasterizer() is cuda_ext.load_rasterizer()
    assert cuda_ext.load_knn() is cuda_ext.load_knn()
    module = cuda_ext.load_rasterizer()
    assert hasattr(module, "GaussianRasterizationSettings") and hasattr(module, "GaussianRasterizer")


@pytest.mark.cuda
def test_a_failing_build_raises_with_the_compiler_error(tmp_path, monkeypatch):
    source = tmp_path / "src"
    shutil.copytree(cuda_ext.KNN_DIR, source)
    with open(source / "csrc" / "knn.cu", "a") as f:
        f.write("\nthis_is_not_cuda_code;\n")
    monkeypatch.setenv("EGOMASK_EXT_DIR", str(tmp_path / "build"))
    with pytest.raises(RuntimeError) as info:
        cuda_ext._jit_build("broken_knn_C", str(source), "CUDA kNN")
    message = str(info.value)
    assert "Building the CUDA kNN" in message and "this_is_not_cuda_code" in message
