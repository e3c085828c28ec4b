// Python bindings of the rasterizer (module diff_gaussian_rasterization._C).
#include <torch/extension.h>

#include "rasterize.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    // Built once per draw from the Python side's named inputs (diff_gaussian_rasterization._draw_inputs),
    // then handed to both passes. Module-local: two builds of the rasterizer can live in one
    // process (benchmarks/rasterizer_ab.py loads a baseline build beside this one).
    pybind11::class_<egorast::RasterInputs>(m, "RasterInputs", pybind11::module_local())
        .def(pybind11::init([](at::Tensor bg, at::Tensor means3D, at::Tensor colors, at::Tensor opacities,
                               at::Tensor scales, at::Tensor rotations, double scale_modifier,
                               at::Tensor cov3D_precomp, at::Tensor features, at::Tensor viewmatrix,
                               at::Tensor projmatrix, double tan_fovx, double tan_fovy, int64_t image_height,
                               int64_t image_width, at::Tensor shs, int64_t sh_degree, at::Tensor campos,
                               at::Tensor layer_weights) {
            return egorast::RasterInputs{bg, means3D, colors, opacities, scales, rotations, scale_modifier,
                                         cov3D_precomp, features, viewmatrix, projmatrix, tan_fovx, tan_fovy,
                                         image_height, image_width, shs, sh_degree, campos, layer_weights};
        }));
    m.def("rasterize_forward", &egorast::rasterize_forward, "Rasterize Gaussians (forward)");
    m.def("rasterize_backward", &egorast::rasterize_backward, "Rasterize Gaussians (backward)");
}
