// Kernel-level interface of the rasterizer: parameter structs and launchers (forward.cu,
// backward.cu). rasterize.cu owns the tensors and calls these in order.
#pragma once
#include <cstdint>

#include <cuda_runtime.h>

namespace egorast {

struct Camera {
    const float* view;     // [4,4] row-vector world->view (world_view_transform)
    const float* proj;     // [4,4] row-vector world->clip (full_proj_transform)
    const float* campos;   // [3]
    int width, height;
    float tan_fovx, tan_fovy, focal_x, focal_y;
    int tiles_x, tiles_y;
};

// Per-Gaussian inputs; the optional ones are nullptr when absent.
struct Gaussians {
    int count;
    const float* means;           // [N,3]
    const float* scales;          // [N,3] activated (with rotations) or nullptr
    const float* rotations;       // [N,4] (w, x, y, z), any norm
    float scale_modifier;
    const float* cov3d;           // [N,6] precomputed upper triangle or nullptr
    const float* opacities;       // [N]
    const float* shs;             // [N, sh_stride, 3] or nullptr
    int sh_degree, sh_stride;
    const float* colors;          // [N,3] precomputed colours or nullptr
};

// The images one pass draws from the same Gaussians (a "layered" draw): layer l sees every
// Gaussian's opacity times weights[l][i] over its own background; geometry, colour and sorting
// work are shared. Layer 0's screen-space gradient is reported apart (means2D's gradient).
struct Layers {
    int count;                    // 1 .. MAX_LAYERS
    int n;                        // Gaussians
    const float* weights;         // [count, n] opacity factors, or nullptr: 1 everywhere (count 1)
    const float* bg;              // [count, 3] background colours
    __host__ __device__ float weight(int layer, int i) const {
        return weights != nullptr ? weights[(int64_t)layer * n + i] : 1.f;
    }
};

// What preprocessing writes per Gaussian (valid where radii > 0).
struct Projected {
    int* radii;                   // [N] 0 = not rendered
    float* depths;                // [N] view z
    float2* means2d;              // [N] pixel-index centre
    float4* conic_opacity;        // [N] inverse 2D covariance (a, b, c) and opacity
    float* rgb;                   // [N,3] colour (SH evaluated, clamped at 0)
    uint8_t* clamped;             // [N] bit c set where colour channel c was clamped
    ushort4* tile_rects;          // [layers, N] tiles [x0, x1) x [y0, y1) the Gaussian is listed in, per layer
    int64_t* tiles_touched;       // [N] sum over layers of (x1 - x0) (y1 - y0)
};

// Blending inputs shared by forward and backward render.
struct TileLists {
    const int2* ranges;           // [layers * tiles] [start, end) into point_list (layer-major)
    const int* point_list;        // [L] Gaussian index, sorted by tile then depth
};

// Per-Gaussian screen-space gradients the backward render accumulates, one row of 10 + K floats
// per Gaussian so that the atomics for one Gaussian land in one or two 32-byte sectors, not in
// five arrays. Row layout (SCREEN_*): dL/d(NDC centre x, y), dL/d(view depth), dL/d(conic a, b,
// c), dL/d(opacity), dL/d(rgb), dL/d(K features); a layered draw appends the NDC centre gradient
// of its layers after the first (so that layer 0's can be reported alone). The opacity
// gradient is w.r.t. the Gaussian's own opacity (the layer weights applied). Zero-initialised by
// the caller.
constexpr int SCREEN_MEAN = 0, SCREEN_DEPTH = 2, SCREEN_CONIC = 3, SCREEN_OPACITY = 6, SCREEN_RGB = 7,
              SCREEN_FEATURES = 10;
struct ScreenGrads {
    float* rows;                  // [N, 10 + K (+ 2 when layered)]
    int K;
    bool layered;
    __host__ __device__ int values() const { return SCREEN_FEATURES + K; }   // accumulated per (Gaussian, pixel)
    __host__ __device__ int other_layers_mean() const { return SCREEN_FEATURES + K; }
    __host__ __device__ int row_length() const { return SCREEN_FEATURES + K + (layered ? 2 : 0); }
};

// Strided view of an upstream image gradient [layers, C, H, W] (any strides: expanded ones need no copy).
struct ImageGrad {
    const float* data;
    int64_t stride_l, stride_c, stride_y, stride_x;
};

// Gradients w.r.t. the inputs (nullptr where the input is absent). means, scales, rotations and
// cov3d are zero-initialised by the caller (culled Gaussians get no write); the rest are written
// for every Gaussian by the kernel: shs, and means2d (dL/d(NDC centre), column 2 zero), opacities,
// colors (precomputed colours) and features, copied out of the ScreenGrads rows.
struct InputGrads {
    float* means;                 // [N,3]
    float* scales;                // [N,3]
    float* rotations;             // [N,4]
    float* cov3d;                 // [N,6]
    float* shs;                   // [N, sh_stride, 3]
    float* means2d;               // [N,3]
    float* opacities;             // [N]
    float* colors;                // [N,3]
    float* features;              // [N,K]
};

void launch_preprocess(const Gaussians& g, const Layers& layers, const Camera& cam, const Projected& out,
                       cudaStream_t stream);
// Key = uint64_t (tile << 32 | depth bits, order = nullptr) or uint32_t (tile; order = depth order);
// the tile of layer l is l * tiles + (its index in the image).
template <typename Key>
void launch_emit_keys(int n, int layers, const Projected& p, const int* order, const int64_t* offsets,
                      const Camera& cam, Key* keys, int* values, cudaStream_t stream);
template <typename Key>
void launch_tile_ranges(int n_keys, const Key* keys, int2* ranges, cudaStream_t stream);
// Images are [layers, C, H, W] (final_T and n_contrib [layers, H, W]), one grid slice per layer.
void launch_render(int k_features, const TileLists& lists, const Camera& cam, const Projected& p,
                   const Layers& layers, const float* features, float* color, float* depth, float* feature_map,
                   float* alpha, float* final_T, int* n_contrib, cudaStream_t stream);

void launch_render_backward(int k_features, const TileLists& lists, const Camera& cam, const Projected& p,
                            const Layers& layers, const float* features, const float* final_T, const int* n_contrib,
                            const ImageGrad& grad_color, const ImageGrad& grad_depth, const ImageGrad& grad_feature,
                            const ImageGrad& grad_alpha, const ScreenGrads& out, cudaStream_t stream);
void launch_preprocess_backward(const Gaussians& g, const Camera& cam, const Projected& p,
                                const ScreenGrads& screen, const InputGrads& out, cudaStream_t stream);

// Smallest compiled feature-channel capacity >= k (templates exist for these), or -1.
int feature_capacity(int k);

}  // namespace egorast
