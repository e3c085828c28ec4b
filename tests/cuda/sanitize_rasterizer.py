"""One small forward + backward of each extension, for compute-sanitizer (memcheck / initcheck):

    compute-sanitizer --tool initcheck python tests/cuda/sanitize_rasterizer.py

Not a pytest file: the sanitizer wraps the whole process.
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
# A plain script (run under compute-sanitizer, not pytest): it sets the paths pytest.ini gives tests.
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "gaussian_renderer"))

from cuda_parity import random_scene, run_backend  # noqa: E402
from utils.cuda_ext import load_knn, load_rasterizer  # noqa: E402

module = load_rasterizer()
for depth_first_from in (0, 1 << 40):  # both ways of building the tile lists
    module.DEPTH_FIRST_SORT_MIN_GAUSSIANS = depth_first_from
    for channels, kwargs in ((3, dict(sh_degree=3)), (0, dict(precomp_colors=True, precomp_cov=True)), (16, {}),
                             (1, dict(sh_degree=1, sh_coeffs=16)), (3, dict(sh_degree=3, sh_coeffs=40))):
        settings, inputs = random_scene(seed=21, n=500, width=45, height=37, channels=channels, **kwargs)
        out, grads = run_backend(module, settings, inputs)
        assert all(torch.isfinite(g).all() for g in grads.values())
print("distCUDA2:", load_knn()(torch.rand(5000, 3, device="cuda")).mean().item())
torch.cuda.synchronize()
print("sanitize run finished")
