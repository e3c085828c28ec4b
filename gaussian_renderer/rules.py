"""The rasterization rule's constants, the settings type and the module interface, shared with
the CUDA rasterizer.

All are defined once, in the CUDA package's settings.py (the Python side of its csrc/config.h),
and loaded here from the source tree by file, so the reference has them even where that package
is not installed (settings.py has no compiled part). Import them from here in gaussian_renderer.
"""
import importlib.util
import os
import sys

SETTINGS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "submodules",
                             "diff-gaussian-rasterization", "diff_gaussian_rasterization", "settings.py")
_MODULE_NAME = "egomask_rasterizer_settings"


def _load():
    if _MODULE_NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(_MODULE_NAME, SETTINGS_FILE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[_MODULE_NAME] = module   # so that settings objects pickle
        spec.loader.exec_module(module)
    return sys.modules[_MODULE_NAME]


_shared = _load()
GaussianRasterizationSettings = _shared.GaussianRasterizationSettings
RasterizerModule = _shared.RasterizerModule
check_layers = _shared.check_layers
TILE = _shared.TILE
NEAR_CULL_Z = _shared.NEAR_CULL_Z
FRUSTUM_GUARD = _shared.FRUSTUM_GUARD
COV2D_BLUR = _shared.COV2D_BLUR
ALPHA_MAX = _shared.ALPHA_MAX
ALPHA_MIN = _shared.ALPHA_MIN
T_MIN = _shared.T_MIN
MAX_FEATURES = _shared.MAX_FEATURES
MAX_LAYERS = _shared.MAX_LAYERS
