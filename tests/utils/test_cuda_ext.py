"""The CUDA packages' build descriptions: pip's setup (submodules/extension_setup.py, reached from
each setup.py) and the just-in-time build (utils/cuda_ext.py) read the same extension.py."""
import os
import runpy

import pytest

from utils.cuda_ext import KNN_DIR, RASTERIZER_DIR, extension_build

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
