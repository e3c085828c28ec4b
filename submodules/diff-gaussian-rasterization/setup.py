"""pip install --no-build-isolation ./submodules/diff-gaussian-rasterization  (what is built: extension.py; how: ../extension_setup.py)"""
import os
import runpy

HERE = os.path.dirname(os.path.abspath(__file__))
runpy.run_path(os.path.join(HERE, os.pardir, "extension_setup.py"))["setup_extension"](HERE)
