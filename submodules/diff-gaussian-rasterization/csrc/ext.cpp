// Python bindings of the rasterizer (module diff_gaussian_rasterization._C).
#include <torch/extension.h>

#include "rasterize.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("rasterize_forward", &egorast::rasterize_forward, "Rasterize Gaussians (forward)");
    m.def("rasterize_backward", &egorast::rasterize_backward, "Rasterize Gaussians (backward)");
}
