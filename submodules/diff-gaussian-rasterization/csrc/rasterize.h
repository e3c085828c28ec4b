// Tensor-level entry points bound to Python (ext.cpp).
#pragma once
#include <ATen/ATen.h>

#include <vector>

namespace egorast {

// One draw's inputs, shared by the forward and the backward pass: the Gaussians, the camera and
// the background. Absent optional inputs (colors or shs, cov3D_precomp or scales + rotations,
// features, layer_weights) are empty tensors. ext.cpp builds it from Python's arguments, in this
// order. A layered draw (layer_weights [L, N]: each image sees opacity x its row) has bg [L, 3]
// and images with a leading layer axis; a plain one bg [3] and images [C, H, W].
struct RasterInputs {
    at::Tensor bg, means3D, colors, opacities, scales, rotations;
    double scale_modifier;
    at::Tensor cov3D_precomp, features, viewmatrix, projmatrix;
    double tan_fovx, tan_fovy;
    int64_t image_height, image_width;
    at::Tensor shs;
    int64_t sh_degree;
    at::Tensor campos;
    at::Tensor layer_weights;
};

// Returns color, depth, feature_map, alpha, then what the backward needs: radii, depths, means2d,
// conic_opacity, rgb, clamped, point_list, ranges, final_T, n_contrib ([L, H, W] both).
std::vector<at::Tensor> rasterize_forward(const RasterInputs& in, bool depth_first_sort, bool debug);

// Returns the gradients of means2D, colors_precomp, opacities, means3D, cov3D_precomp, shs, scales,
// rotations, mask_feature (empty where the input was absent).
std::vector<at::Tensor> rasterize_backward(const RasterInputs& in, const at::Tensor& grad_color,
                                           const at::Tensor& grad_depth, const at::Tensor& grad_feature,
                                           const at::Tensor& grad_alpha, const std::vector<at::Tensor>& saved,
                                           bool debug);

}  // namespace egorast
