// Tensor-level entry points bound to Python (ext.cpp).
#pragma once
#include <ATen/ATen.h>

#include <vector>

namespace egorast {

// Returns color, depth, feature_map, alpha, then what the backward needs: radii, depths, means2d,
// conic_opacity, rgb, clamped, point_list, ranges, final_T, n_contrib. Absent optional inputs
// are empty tensors.
std::vector<at::Tensor> rasterize_forward(
    const at::Tensor& bg, const at::Tensor& means3D, const at::Tensor& colors, const at::Tensor& opacities,
    const at::Tensor& scales, const at::Tensor& rotations, double scale_modifier, const at::Tensor& cov3D_precomp,
    const at::Tensor& features, const at::Tensor& viewmatrix, const at::Tensor& projmatrix, double tan_fovx,
    double tan_fovy, int64_t image_height, int64_t image_width, const at::Tensor& shs, int64_t sh_degree,
    const at::Tensor& campos, bool depth_first_sort, bool debug);

// Returns the gradients of means2D, colors_precomp, opacities, means3D, cov3D_precomp, shs, scales,
// rotations, mask_feature (empty where the input was absent).
std::vector<at::Tensor> rasterize_backward(
    const at::Tensor& bg, const at::Tensor& means3D, const at::Tensor& colors, const at::Tensor& opacities,
    const at::Tensor& scales, const at::Tensor& rotations, double scale_modifier, const at::Tensor& cov3D_precomp,
    const at::Tensor& features, const at::Tensor& viewmatrix, const at::Tensor& projmatrix, double tan_fovx,
    double tan_fovy, const at::Tensor& shs, int64_t sh_degree, const at::Tensor& campos,
    const at::Tensor& grad_color, const at::Tensor& grad_depth, const at::Tensor& grad_feature,
    const at::Tensor& grad_alpha, const std::vector<at::Tensor>& saved, bool debug);

}  // namespace egorast
