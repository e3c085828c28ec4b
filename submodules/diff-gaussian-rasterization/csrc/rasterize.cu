// Host side: validates tensors, allocates buffers through PyTorch's allocator, runs the passes
// in order on the current stream. Sorting uses CUB's radix sort over only the key bits in use.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <cub/device/device_radix_sort.cuh>

#include <cmath>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "config.h"
#include "rasterize.h"
#include "rasterizer.h"

namespace egorast {
namespace {

void check_kernel(const char* step, bool debug) {
    cudaError_t err = debug ? cudaDeviceSynchronize() : cudaSuccess;
    if (err == cudaSuccess) err = cudaGetLastError();
    if (err != cudaSuccess)
        throw std::runtime_error(std::string("diff_gaussian_rasterization: CUDA error in ") + step + ": " +
                                 cudaGetErrorString(err));
}

// Shape as text, built by hand: nvcc-compiled host code crashed formatting IntArrayRef.
std::string shape_of(const at::Tensor& t) {
    std::string text = "[";
    for (int64_t d = 0; d < t.dim(); d++) text += (d ? ", " : "") + std::to_string(t.size(d));
    return text + "]";
}

void check_tensor(const at::Tensor& t, const char* name, int64_t n, int64_t width) {
    TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
    TORCH_CHECK(t.scalar_type() == at::kFloat, name, " must be float32, got ", c10::toString(t.scalar_type()));
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
    TORCH_CHECK(t.numel() == n * width, name, " must hold ", n, " x ", width, " values, got shape ", shape_of(t));
}

// A draw's layer count and how its images are shaped: [L, C, H, W] when layered, else [C, H, W].
struct Layered {
    int64_t count;
    bool layered;
    std::vector<int64_t> image(int64_t channels, int64_t H, int64_t W) const {
        if (layered) return {count, channels, H, W};
        return {channels, H, W};
    }
    std::string describe(int64_t channels, int H, int W) const {
        return "[" + (layered ? std::to_string(count) + ", " : std::string()) + std::to_string(channels) + ", " +
               std::to_string(H) + ", " + std::to_string(W) + "]";
    }
};

// An upstream image gradient with whatever strides autograd gave it: [layers, channels, H, W] for
// a layered draw, [channels, H, W] for a plain one.
ImageGrad image_grad(const at::Tensor& t, const char* name, const Layered& shape, int64_t channels, int H, int W) {
    if (channels == 0) return ImageGrad{nullptr, 0, 0, 0, 0};
    TORCH_CHECK(t.is_cuda() && t.scalar_type() == at::kFloat, name, " must be a float32 CUDA tensor");
    const at::Tensor v = shape.layered ? t : t.unsqueeze(0);
    TORCH_CHECK(v.dim() == 4 && v.size(0) == shape.count && v.size(1) == channels && v.size(2) == H && v.size(3) == W,
                name, " must be ", shape.describe(channels, H, W), ", got ", shape_of(t));
    return ImageGrad{v.data_ptr<float>(), v.stride(0), v.stride(1), v.stride(2), v.stride(3)};
}

const float* optional_ptr(const at::Tensor& t, const char* name, int64_t n, int64_t width) {
    if (t.numel() == 0) return nullptr;
    check_tensor(t, name, n, width);
    return t.data_ptr<float>();
}

// The layers of a draw from its inputs (checked): layer_weights [L, N] or empty (one layer), bg [L, 3] or [3].
Layers make_layers(const RasterInputs& in, int64_t n, Layered* shape) {
    const at::Tensor& w = in.layer_weights;
    shape->layered = w.numel() > 0 || w.dim() == 2;
    shape->count = shape->layered ? w.size(0) : 1;
    TORCH_CHECK(shape->count >= 1 && shape->count <= MAX_LAYERS, "a layered draw holds 1 to ", MAX_LAYERS,
                " layers, got ", shape->count);
    Layers layers{(int)shape->count, (int)n, nullptr, nullptr};
    if (shape->layered) {
        check_tensor(w, "layer_weights", shape->count, n);
        layers.weights = w.data_ptr<float>();
    }
    check_tensor(in.bg, "bg", shape->count, 3);
    layers.bg = in.bg.data_ptr<float>();
    return layers;
}

Camera make_camera(const RasterInputs& in, int H, int W) {
    const at::Tensor &view = in.viewmatrix, &proj = in.projmatrix, &campos = in.campos;
    const float tan_fovx = (float)in.tan_fovx, tan_fovy = (float)in.tan_fovy;
    check_tensor(view, "viewmatrix", 4, 4);
    check_tensor(proj, "projmatrix", 4, 4);
    check_tensor(campos, "campos", 1, 3);
    Camera cam;
    cam.view = view.data_ptr<float>();
    cam.proj = proj.data_ptr<float>();
    cam.campos = campos.data_ptr<float>();
    cam.width = W;
    cam.height = H;
    cam.tan_fovx = tan_fovx;
    cam.tan_fovy = tan_fovy;
    cam.focal_x = W / (2.f * tan_fovx);
    cam.focal_y = H / (2.f * tan_fovy);
    cam.tiles_x = (W + TILE - 1) / TILE;
    cam.tiles_y = (H + TILE - 1) / TILE;
    return cam;
}

Gaussians make_gaussians(const RasterInputs& in) {
    const at::Tensor &means = in.means3D, &opacities = in.opacities, &shs = in.shs;
    const int sh_degree = (int)in.sh_degree;
    const int64_t n = means.size(0);
    check_tensor(means, "means3D", n, 3);
    check_tensor(opacities, "opacities", n, 1);
    Gaussians g;
    g.count = (int)n;
    g.means = means.data_ptr<float>();
    g.opacities = opacities.data_ptr<float>();
    g.scale_modifier = (float)in.scale_modifier;
    g.cov3d = optional_ptr(in.cov3D_precomp, "cov3D_precomp", n, 6);
    g.scales = g.cov3d ? nullptr : optional_ptr(in.scales, "scales", n, 3);
    g.rotations = g.cov3d ? nullptr : optional_ptr(in.rotations, "rotations", n, 4);
    TORCH_CHECK(g.cov3d || (g.scales && g.rotations), "give cov3D_precomp or both scales and rotations");
    g.colors = optional_ptr(in.colors, "colors_precomp", n, 3);
    g.shs = nullptr;
    g.sh_degree = sh_degree;
    g.sh_stride = 0;
    if (!g.colors) {
        TORCH_CHECK(shs.dim() == 3 && shs.size(0) == n && shs.size(2) == 3, "shs must be [N, M, 3], got ", shape_of(shs));
        TORCH_CHECK(sh_degree >= 0 && sh_degree <= 3, "sh_degree must be 0..3, got ", sh_degree);
        g.sh_stride = (int)shs.size(1);
        TORCH_CHECK(g.sh_stride >= (sh_degree + 1) * (sh_degree + 1), "SH degree ", sh_degree, " needs ",
                    (sh_degree + 1) * (sh_degree + 1), " coefficients, shs has ", g.sh_stride);
        g.shs = optional_ptr(shs, "shs", n, 3 * g.sh_stride);
    }
    return g;
}

Projected view_projected(const std::vector<at::Tensor>& t) {
    // order: radii, depths, means2d, conic_opacity, rgb, clamped
    Projected p{};
    p.radii = t[0].data_ptr<int>();
    p.depths = t[1].data_ptr<float>();
    p.means2d = reinterpret_cast<float2*>(t[2].data_ptr<float>());
    p.conic_opacity = reinterpret_cast<float4*>(t[3].data_ptr<float>());
    p.rgb = t[4].data_ptr<float>();
    p.clamped = t[5].data_ptr<uint8_t>();
    return p;
}

int bits_for(int n_tiles) {
    int bits = 1;
    while ((int64_t(1) << bits) < n_tiles) bits++;
    return bits;
}

// Stable LSD radix sort of (key, value) pairs on bits [0, end_bit) of the keys.
template <typename Key>
void sort_pairs(const Key* keys_in, Key* keys_out, const int* values_in, int* values_out, int count, int end_bit,
                const at::TensorOptions& options, cudaStream_t stream) {
    size_t temp_bytes = 0;
    cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, keys_out, values_in, values_out, count, 0, end_bit,
                                    stream);
    at::Tensor temp = at::empty({(int64_t)temp_bytes}, options.dtype(at::kByte));
    cub::DeviceRadixSort::SortPairs(temp.data_ptr(), temp_bytes, keys_in, keys_out, values_in, values_out, count, 0,
                                    end_bit, stream);
}

// Each tile's Gaussians front to back: the point list (Gaussian indices, grouped by tile, front to
// back within a tile) and each tile's [start, end) in `ranges`. Two ways, same result:
//  - uint64_t: one stable radix sort of (tile << 32 | depth bits) keys, one per (tile, Gaussian);
//  - uint32_t (depth-first): a stable sort of all Gaussians by depth (32-bit keys over N), then
//    tile-only keys emitted in that order and stably sorted on the tile bits alone. Fewer passes
//    over the long key list, but more launches: it pays for large N (the caller decides).
// Either way equal depths keep index order. Culled Gaussians emit no keys.
template <typename Key>
at::Tensor tile_lists(const Projected& p, const at::Tensor& touched, const Camera& cam, int layers, at::Tensor& ranges,
                      cudaStream_t stream, bool debug) {
    constexpr bool depth_first = sizeof(Key) == 4;
    const int64_t n = touched.size(0);
    const auto i32 = touched.options().dtype(at::kInt);
    const auto key_type = touched.options().dtype(depth_first ? at::kInt : at::kLong);
    if (n == 0) return at::empty({0}, i32);
    at::Tensor order, offsets;
    if (depth_first) {
        at::Tensor depth_bits_sorted = at::empty({n}, i32), index = at::arange(n, i32);
        order = at::empty({n}, i32);
        sort_pairs(reinterpret_cast<const uint32_t*>(p.depths), reinterpret_cast<uint32_t*>(depth_bits_sorted.data_ptr<int>()),
                   index.data_ptr<int>(), order.data_ptr<int>(), (int)n, 32, i32, stream);
        check_kernel("depth sort", debug);
        offsets = at::cumsum(touched.index_select(0, order), 0);
    } else {
        offsets = at::cumsum(touched, 0);
    }
    const int64_t n_keys = offsets[n - 1].item<int64_t>();
    TORCH_CHECK(n_keys < (int64_t(1) << 31), "too many (tile, Gaussian) pairs: ", n_keys);
    at::Tensor point_list = at::empty({n_keys}, i32);
    if (n_keys == 0) return point_list;
    at::Tensor keys = at::empty({n_keys}, key_type), keys_sorted = at::empty({n_keys}, key_type);
    at::Tensor values = at::empty({n_keys}, i32);
    Key* k_in = reinterpret_cast<Key*>(keys.data_ptr());
    Key* k_out = reinterpret_cast<Key*>(keys_sorted.data_ptr());
    launch_emit_keys<Key>((int)n, layers, p, depth_first ? order.data_ptr<int>() : nullptr,
                          offsets.data_ptr<int64_t>(), cam, k_in, values.data_ptr<int>(), stream);
    check_kernel("emit_keys", debug);
    const int tile_bits = bits_for(layers * cam.tiles_x * cam.tiles_y);
    sort_pairs(k_in, k_out, values.data_ptr<int>(), point_list.data_ptr<int>(), (int)n_keys,
               depth_first ? tile_bits : 32 + tile_bits, i32, stream);
    check_kernel("tile sort", debug);
    launch_tile_ranges<Key>((int)n_keys, k_out, reinterpret_cast<int2*>(ranges.data_ptr<int>()), stream);
    check_kernel("tile_ranges", debug);
    return point_list;
}

}  // namespace

std::vector<at::Tensor> rasterize_forward(const RasterInputs& in, bool depth_first_sort, bool debug) {
    const int64_t image_height = in.image_height, image_width = in.image_width;
    const at::Tensor &means3D = in.means3D, &features = in.features;
    TORCH_CHECK(image_height > 0 && image_width > 0, "image size must be positive, got ", image_width, "x", image_height);
    TORCH_CHECK(image_width <= TILE * 65535 && image_height <= TILE * 65535, "image too large");
    const c10::cuda::CUDAGuard guard(means3D.device());
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const int H = (int)image_height, W = (int)image_width;
    const int64_t n = means3D.size(0);
    const Camera cam = make_camera(in, H, W);
    const Gaussians g = make_gaussians(in);
    Layered shape;
    const Layers layers = make_layers(in, n, &shape);
    const int L = layers.count;
    const int K = features.dim() == 2 ? (int)features.size(1) : 0;
    if (n * K > 0) check_tensor(features, "mask_feature", n, K);
    TORCH_CHECK(feature_capacity(K) >= 0, "mask_feature has ", K, " channels; at most ", MAX_FEATURES,
                " are supported");

    auto f32 = means3D.options().dtype(at::kFloat);
    auto i32 = means3D.options().dtype(at::kInt);
    auto i64 = means3D.options().dtype(at::kLong);
    std::vector<at::Tensor> projected = {at::empty({n}, i32), at::empty({n}, f32), at::empty({n, 2}, f32),
                                         at::empty({n, 4}, f32), at::empty({n, 3}, f32),
                                         at::empty({n}, means3D.options().dtype(at::kByte))};
    Projected p = view_projected(projected);
    at::Tensor rects = at::empty({L, n, 4}, means3D.options().dtype(at::kShort));
    at::Tensor touched = at::empty({n}, i64);
    p.tile_rects = reinterpret_cast<ushort4*>(rects.data_ptr<int16_t>());
    p.tiles_touched = touched.data_ptr<int64_t>();
    launch_preprocess(g, layers, cam, p, stream);
    check_kernel("preprocess", debug);

    const int n_tiles = cam.tiles_x * cam.tiles_y;
    at::Tensor ranges = at::zeros({L * n_tiles, 2}, i32);
    const at::Tensor point_list = depth_first_sort ? tile_lists<uint32_t>(p, touched, cam, L, ranges, stream, debug)
                                                   : tile_lists<uint64_t>(p, touched, cam, L, ranges, stream, debug);

    at::Tensor color = at::empty(shape.image(3, H, W), f32), depth = at::empty(shape.image(1, H, W), f32);
    at::Tensor feature_map = at::empty(shape.image(K, H, W), f32), alpha = at::empty(shape.image(1, H, W), f32);
    at::Tensor final_T = at::empty({L, H, W}, f32), n_contrib = at::empty({L, H, W}, i32);
    const TileLists lists{reinterpret_cast<const int2*>(ranges.data_ptr<int>()), point_list.data_ptr<int>()};
    launch_render(K, lists, cam, p, layers, K > 0 ? features.data_ptr<float>() : nullptr, color.data_ptr<float>(),
                  depth.data_ptr<float>(), K > 0 ? feature_map.data_ptr<float>() : nullptr, alpha.data_ptr<float>(),
                  final_T.data_ptr<float>(), n_contrib.data_ptr<int>(), stream);
    check_kernel("render", debug);

    // outputs, then what the backward needs
    return {color, depth, feature_map, alpha, projected[0], projected[1], projected[2], projected[3],
            projected[4], projected[5], point_list, ranges, final_T, n_contrib};
}

std::vector<at::Tensor> rasterize_backward(const RasterInputs& in, const at::Tensor& grad_color,
                                           const at::Tensor& grad_depth, const at::Tensor& grad_feature,
                                           const at::Tensor& grad_alpha, const std::vector<at::Tensor>& saved,
                                           bool debug) {
    const at::Tensor &means3D = in.means3D, &features = in.features;
    // saved: radii, depths, means2d, conic_opacity, rgb, clamped, point_list, ranges, final_T, n_contrib
    TORCH_CHECK(saved.size() == 10, "rasterize_backward: expected 10 saved tensors");
    const c10::cuda::CUDAGuard guard(means3D.device());
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const at::Tensor& final_T = saved[8];
    const int H = (int)final_T.size(1), W = (int)final_T.size(2);
    const int64_t n = means3D.size(0);
    const Camera cam = make_camera(in, H, W);
    const Gaussians g = make_gaussians(in);
    Layered shape;
    const Layers layers = make_layers(in, n, &shape);
    const int K = features.dim() == 2 ? (int)features.size(1) : 0;
    const ImageGrad gc = image_grad(grad_color, "grad of color", shape, 3, H, W);
    const ImageGrad gd = image_grad(grad_depth, "grad of depth", shape, 1, H, W);
    const ImageGrad ga = image_grad(grad_alpha, "grad of alpha", shape, 1, H, W);
    const ImageGrad gf = image_grad(grad_feature, "grad of feature_map", shape, K, H, W);

    Projected p = view_projected(saved);
    const TileLists lists{reinterpret_cast<const int2*>(saved[7].data_ptr<int>()), saved[6].data_ptr<int>()};
    auto f32 = means3D.options().dtype(at::kFloat);
    const at::Tensor none = at::empty({0}, f32);

    const ScreenGrads layout{nullptr, K, shape.layered};
    at::Tensor screen_rows = at::zeros({n, layout.row_length()}, f32);  // see ScreenGrads
    const ScreenGrads screen{screen_rows.data_ptr<float>(), K, shape.layered};
    launch_render_backward(K, lists, cam, p, layers, K > 0 ? features.data_ptr<float>() : nullptr,
                           final_T.data_ptr<float>(), saved[9].data_ptr<int>(), gc, gd, gf, ga, screen, stream);
    check_kernel("render_backward", debug);

    // Zeroed where culled Gaussians get no write; the rest is written for every Gaussian (InputGrads).
    at::Tensor g_means3d = at::zeros({n, 3}, f32);
    at::Tensor g_scales = g.scales ? at::zeros({n, 3}, f32) : none;
    at::Tensor g_rotations = g.rotations ? at::zeros({n, 4}, f32) : none;
    at::Tensor g_cov3d = g.cov3d ? at::zeros({n, 6}, f32) : none;
    at::Tensor g_shs = g.shs ? at::empty_like(in.shs) : none;
    at::Tensor g_means2d = at::empty({n, 3}, f32), g_opacities = at::empty({n, 1}, f32);
    at::Tensor g_features = at::empty({n, K}, f32);
    at::Tensor g_colors = g.colors ? at::empty({n, 3}, f32) : none;
    InputGrads out{g_means3d.data_ptr<float>(), g.scales ? g_scales.data_ptr<float>() : nullptr,
                   g.rotations ? g_rotations.data_ptr<float>() : nullptr, g.cov3d ? g_cov3d.data_ptr<float>() : nullptr,
                   g.shs ? g_shs.data_ptr<float>() : nullptr, g_means2d.data_ptr<float>(),
                   g_opacities.data_ptr<float>(), g.colors ? g_colors.data_ptr<float>() : nullptr,
                   K > 0 ? g_features.data_ptr<float>() : nullptr};
    launch_preprocess_backward(g, cam, p, screen, out, stream);
    check_kernel("preprocess_backward", debug);
    return {g_means2d, g_colors, g_opacities, g_means3d, g_cov3d, g_shs, g_scales, g_rotations, g_features};
}

}  // namespace egorast
