"""utils.cuda_ext: cached loading, and clear errors where the extensions cannot be had; the
build descriptions that pip's setup (submodules/extension_setup.py, reached from each setup.py)
and the just-in-time build both read (these run without a GPU)."""
import os
import runpy
import shutil

import pytest

from utils import cuda_ext
from utils.cuda_ext import KNN_DIR, RASTERIZER_DIR, extension_build


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


PACKAGES = [(RASTERIZER_DIR, "diff_gaussian_rasterization"), (KNN_DIR, "simple_knn")]


@pytest.mark.parametrize("folder, package", PACKAGES)
def test_extension_py_names_sources_that_exist(folder, package):
    build = extension_build(folder)
    assert build["MODULE"] == f"{package}._C"
    assert build["SOURCES"] and all(os.path.isfile(os.path.join(folder, s)) for s in build["SOURCES"])
    assert all(isinstance(flag, str) for flag in build["CXX_FLAGS"] + build["NVCC_FLAGS"])


@pytest.mark.parametrize("folder, package", PACKAGES)
def test_setup_py_builds_what_extension_py_describes(folder, package, monkeypatch):
    """Run the package's real setup.py with setuptools' setup() replaced by a recorder (nothing is
    compiled): the package, the compiled module, its sources and flags are extension.py's."""
    calls = []
    real_run_path = runpy.run_path

    def run_path_recording(path, *args, **kwargs):
        namespace = real_run_path(path, *args, **kwargs)
        if os.path.basename(path) == "extension_setup.py":
            namespace["setup_extension"].__globals__["setup"] = lambda **kw: calls.append(kw)
        return namespace

    monkeypatch.setattr(runpy, "run_path", run_path_recording)
    monkeypatch.chdir(folder)   # pip runs setup.py from the package folder
    real_run_path(os.path.join(folder, "setup.py"), run_name="__main__")
    assert len(calls) == 1
    kwargs, build = calls[0], extension_build(folder)
    assert kwargs["name"] == package and kwargs["packages"] == [package]
    assert kwargs["description"] == build["DESCRIPTION"]
    (extension,) = kwargs["ext_modules"]
    assert extension.name == build["MODULE"]
    assert extension.sources == [os.path.join(folder, s) for s in build["SOURCES"]]
    assert all(os.path.isfile(s) for s in extension.sources)
    compile_args = extension.extra_compile_args
    assert compile_args["cxx"] == list(build["CXX_FLAGS"]) and compile_args["nvcc"] == list(build["NVCC_FLAGS"])
