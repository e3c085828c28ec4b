// Forward pass: per-Gaussian preprocessing, (tile, depth) keys, tile ranges, per-tile blending.
#include <cstdint>

#include "blend.cuh"
#include "config.h"
#include "gaussian.cuh"
#include "maths.cuh"
#include "rasterizer.h"

namespace egorast {

__device__ __forceinline__ int clamp_int(int v, int lo, int hi) { return min(hi, max(lo, v)); }

__device__ __forceinline__ int tile_floor(float v, int tiles) {
    return clamp_int((int)fminf(1e7f, fmaxf(-1e7f, floorf(v / TILE))), 0, tiles);
}

// Tiles the square of side 2 radius around `center` reaches, [x0, x1) x [y0, y1), clamped to the
// grid: the reference's rule (gaussian_renderer/projection.py).
__device__ inline int4 radius_tile_rect(float2 center, int radius, int tiles_x, int tiles_y) {
    const float r = (float)radius;
    return make_int4(tile_floor(center.x - r, tiles_x), tile_floor(center.y - r, tiles_y),
                     tile_floor(center.x + r + TILE - 1, tiles_x), tile_floor(center.y + r + TILE - 1, tiles_y));
}

// Tiles holding a pixel centre where this Gaussian's alpha can reach ALPHA_MIN: outside the
// ellipse d^T conic d <= 2 ln(opacity / ALPHA_MIN) every pixel skips it, so dropping those
// tiles changes no output. Margins cover float rounding; very large or degenerate footprints
// keep the full rectangle.
__device__ inline int4 opacity_tile_rect(float2 center, float3 cov2d, float det, float opacity,
                                         int4 rect) {
    const bool well_posed = det > 0.f && cov2d.x > 0.f && cov2d.z > 0.f && cov2d.x + cov2d.z < 2e4f;
    if (!well_posed) return rect;
    const float level = 2.f * logf(opacity / ALPHA_MIN) + 0.05f;
    if (!(level > 0.f)) return make_int4(rect.x, rect.y, rect.x, rect.y);  // never visible
    const float hx = 1.02f * sqrtf(level * cov2d.x) + 0.1f;
    const float hy = 1.02f * sqrtf(level * cov2d.z) + 0.1f;
    // pixel centres are integers: tile of the first/last pixel inside [c - h, c + h]
    const float lo_x = fmaxf(-1.f, floorf((center.x - hx) / TILE)), hi_x = fminf(1e6f, floorf((center.x + hx) / TILE));
    const float lo_y = fmaxf(-1.f, floorf((center.y - hy) / TILE)), hi_y = fminf(1e6f, floorf((center.y + hy) / TILE));
    int4 tight = make_int4(max(rect.x, (int)lo_x), max(rect.y, (int)lo_y),
                           min(rect.z, (int)hi_x + 1), min(rect.w, (int)hi_y + 1));
    if (tight.z < tight.x) tight.z = tight.x;
    if (tight.w < tight.y) tight.w = tight.y;
    return tight;
}

__device__ inline float3 sh_colour(const Gaussians& g, int i, float3 mean, const float* campos, uint8_t* clamped) {
    float3 dir = make_float3(mean.x - campos[0], mean.y - campos[1], mean.z - campos[2]);
    const float len2 = dir.x * dir.x + dir.y * dir.y + dir.z * dir.z;
    const float inv_len = rsqrtf(len2);
    dir = len2 > 1e-24f ? make_float3(dir.x * inv_len, dir.y * inv_len, dir.z * inv_len) : make_float3(0.f, 0.f, 1.f);
    float basis[16];
    sh_basis<false>(g.sh_degree, dir.x, dir.y, dir.z, basis, nullptr);
    const float* sh = g.shs + (int64_t)i * g.sh_stride * 3;
    float c[3] = {0.f, 0.f, 0.f};
    const int count = sh_count(g.sh_degree);
#pragma unroll
    for (int k = 0; k < 16; k++) {  // unrolled so that basis[] stays in registers
        if (k >= count) break;
        c[0] += basis[k] * sh[3 * k];
        c[1] += basis[k] * sh[3 * k + 1];
        c[2] += basis[k] * sh[3 * k + 2];
    }
    uint8_t bits = 0;
#pragma unroll
    for (int ch = 0; ch < 3; ch++) {
        c[ch] += 0.5f;
        if (c[ch] < 0.f) { bits |= 1 << ch; c[ch] = 0.f; }
    }
    *clamped = bits;
    return make_float3(c[0], c[1], c[2]);
}

__global__ void preprocess_kernel(Gaussians g, Layers layers, Camera cam, Projected out) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= g.count) return;
    out.radii[i] = 0;
    out.tiles_touched[i] = 0;
    const float3 mean = make_float3(g.means[3 * i], g.means[3 * i + 1], g.means[3 * i + 2]);
    const float3 t = transform_point(cam.view, mean);
    out.depths[i] = t.z;
    const float4 hom = transform_point_hom(cam.proj, mean);
    if (!(t.z > NEAR_CULL_Z && hom.w > 0.f)) return;
    const float2 ndc = make_float2(hom.x / hom.w, hom.y / hom.w);
    // No test of the centre against the frustum: the tile rectangle below decides (footprint culling).

    float cov3d[6];
    load_cov3d(g, i, cov3d);
    const Projection2D jac = projection_jacobian(t, cam.focal_x, cam.focal_y, cam.tan_fovx, cam.tan_fovy, cam.view);
    const float3 cov2d = covariance_2d(jac, cov3d);
    const float det = cov2d.x * cov2d.z - cov2d.y * cov2d.y;
    if (!(det > 0.f && cov2d.x > 0.f)) return;  // not positive definite: invisible
    const float inv_det = 1.f / det;
    const float mid = 0.5f * (cov2d.x + cov2d.z);
    const float lambda_max = mid + sqrtf(fmaxf(0.f, mid * mid - det));
    const float radius_f = ceilf(3.f * sqrtf(fmaxf(0.f, lambda_max)));
    if (!(radius_f > 0.f && radius_f < 1e9f)) return;
    const int radius = (int)radius_f;

    const float2 center = make_float2(ndc_to_pixel(ndc.x, cam.width), ndc_to_pixel(ndc.y, cam.height));
    const int4 rect = radius_tile_rect(center, radius, cam.tiles_x, cam.tiles_y);
    if (rect.z <= rect.x || rect.w <= rect.y) return;

    // Each layer lists the Gaussian in the tiles its own opacity (times the layer's weight) reaches.
    const float opacity = g.opacities[i];
    int64_t touched = 0;
    for (int l = 0; l < layers.count; l++) {
        const int4 tight = opacity_tile_rect(center, cov2d, det, opacity * layers.weight(l, i), rect);
        out.tile_rects[(int64_t)l * g.count + i] = make_ushort4(tight.x, tight.y, tight.z, tight.w);
        touched += (int64_t)(tight.z - tight.x) * (tight.w - tight.y);
    }
    float3 rgb;
    if (g.colors != nullptr) {
        rgb = make_float3(g.colors[3 * i], g.colors[3 * i + 1], g.colors[3 * i + 2]);
        out.clamped[i] = 0;
    } else {
        rgb = sh_colour(g, i, mean, cam.campos, &out.clamped[i]);
    }
    out.radii[i] = radius;
    out.means2d[i] = center;
    out.conic_opacity[i] = make_float4(cov2d.z * inv_det, -cov2d.y * inv_det, cov2d.x * inv_det, opacity);
    out.rgb[3 * i] = rgb.x; out.rgb[3 * i + 1] = rgb.y; out.rgb[3 * i + 2] = rgb.z;
    out.tiles_touched[i] = touched;
}

// One key per (layer, tile, Gaussian), written by the j-th Gaussian of `order` (nullptr: index
// order). The tile of layer l is numbered l * tiles + (its index in the image), so one sort makes
// every layer's lists. 64-bit keys are (tile << 32 | depth bits): positive floats order like
// their bit patterns, so one sort groups by tile, then depth. 32-bit keys are the tile alone, for
// Gaussians already visited front to back (order = depth order): a stable sort by tile then keeps
// each tile front to back.
template <typename Key>
__global__ void emit_keys_kernel(int n, int layers, Projected p, const int* order, const int64_t* offsets,
                                 int tiles_x, int tiles, Key* keys, int* values) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n) return;
    const int i = order != nullptr ? order[j] : j;
    const int64_t count = p.tiles_touched[i];
    if (count == 0) return;
    int64_t slot = offsets[j] - count;  // offsets: inclusive prefix sum of the counts in visiting order
    const uint64_t depth_bits = __float_as_uint(p.depths[i]);
    for (int l = 0; l < layers; l++) {
        const ushort4 r = p.tile_rects[(int64_t)l * n + i];
        for (int ty = r.y; ty < r.w; ty++)
            for (int tx = r.x; tx < r.z; tx++) {
                const uint64_t tile = (uint64_t)l * tiles + (uint64_t)(ty * tiles_x + tx);
                keys[slot] = (Key)(sizeof(Key) == 8 ? (tile << 32) | depth_bits : tile);
                values[slot] = i;
                slot++;
            }
    }
}

template <typename Key>
__global__ void tile_ranges_kernel(int n_keys, const Key* keys, int2* ranges) {
    constexpr int shift = sizeof(Key) == 8 ? 32 : 0;
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= n_keys) return;
    const int tile = (int)(keys[k] >> shift);
    if (k == 0 || (int)(keys[k - 1] >> shift) != tile) ranges[tile].x = k;
    if (k == n_keys - 1 || (int)(keys[k + 1] >> shift) != tile) ranges[tile].y = k + 1;
}

// One block per tile (blockIdx.z: the layer), one thread per pixel. Gaussians of the tile
// (geometry and payload) are staged in shared memory in batches of BLOCK_SIZE and blended front
// to back.
template <int KCAP>
__global__ void __launch_bounds__(BLOCK_SIZE) render_kernel(
    TileLists lists, Camera cam, Projected p, Layers layers, const float* __restrict__ features, int K,
    float* color, float* depth, float* feature_map, float* alpha_map, float* final_T, int* n_contrib) {
    const int layer = blockIdx.z;
    const int tile = (layer * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    const int rank = threadIdx.y * TILE + threadIdx.x;
    const int px = blockIdx.x * TILE + threadIdx.x, py = blockIdx.y * TILE + threadIdx.y;
    const bool inside = px < cam.width && py < cam.height;
    const float2 pixel = make_float2((float)px, (float)py);
    const int2 range = lists.ranges[tile];

    __shared__ float2 s_xy[BLOCK_SIZE];
    __shared__ float4 s_conic[BLOCK_SIZE];
    __shared__ float4 s_rgbd[BLOCK_SIZE];              // colour and view depth
    __shared__ float s_feat[KCAP > 0 ? KCAP * BLOCK_SIZE : 1];  // [k][j]: conflict-free staging

    float T = 1.f, acc_c[3] = {0.f, 0.f, 0.f}, acc_d = 0.f, acc_f[KCAP > 0 ? KCAP : 1];
#pragma unroll
    for (int k = 0; k < KCAP; k++) acc_f[k] = 0.f;
    int seen = 0, last = 0;
    bool done = !inside;

    for (int base = range.x; base < range.y; base += BLOCK_SIZE) {
        if (__syncthreads_count(done) == BLOCK_SIZE) break;
        if (base + rank < range.y) {
            const int id = lists.point_list[base + rank];
            stage_gaussian<KCAP>(p, layers, layer, features, K, id, rank, s_xy, s_conic, s_rgbd, s_feat);
        }
        __syncthreads();
        const int batch = min(BLOCK_SIZE, range.y - base);
        for (int j = 0; !done && j < batch; j++) {
            seen++;
            const float a = evaluate_alpha(s_xy[j], s_conic[j], pixel).alpha;
            if (a < ALPHA_MIN) continue;
            const float next_T = T * (1.f - a);
            if (next_T < T_MIN) { done = true; break; }
            const float w = a * T;
            const float4 rgbd = s_rgbd[j];
            acc_c[0] += w * rgbd.x;
            acc_c[1] += w * rgbd.y;
            acc_c[2] += w * rgbd.z;
            acc_d += w * rgbd.w;
#pragma unroll
            for (int k = 0; k < KCAP; k++)
                if (k < K) acc_f[k] += w * s_feat[k * BLOCK_SIZE + j];
            T = next_T;
            last = seen;
        }
    }
    if (!inside) return;
    const int64_t plane = (int64_t)cam.width * cam.height;
    const int64_t pix = (int64_t)py * cam.width + px, layer_pix = layer * plane + pix;
    const float* bg = layers.bg + 3 * layer;
#pragma unroll
    for (int c = 0; c < 3; c++) color[(3 * layer + c) * plane + pix] = acc_c[c] + T * bg[c];
    depth[layer_pix] = acc_d;
#pragma unroll
    for (int k = 0; k < KCAP; k++)
        if (k < K) feature_map[((int64_t)K * layer + k) * plane + pix] = acc_f[k];
    alpha_map[layer_pix] = 1.f - T;
    final_T[layer_pix] = T;
    n_contrib[layer_pix] = last;
}

static inline int blocks_for(int64_t n, int threads) { return (int)((n + threads - 1) / threads); }

void launch_preprocess(const Gaussians& g, const Layers& layers, const Camera& cam, const Projected& out,
                       cudaStream_t stream) {
    if (g.count == 0) return;
    preprocess_kernel<<<blocks_for(g.count, 256), 256, 0, stream>>>(g, layers, cam, out);
}

template <typename Key>
void launch_emit_keys(int n, int layers, const Projected& p, const int* order, const int64_t* offsets,
                      const Camera& cam, Key* keys, int* values, cudaStream_t stream) {
    if (n == 0) return;
    emit_keys_kernel<Key><<<blocks_for(n, 256), 256, 0, stream>>>(n, layers, p, order, offsets, cam.tiles_x,
                                                                  cam.tiles_x * cam.tiles_y, keys, values);
}

template <typename Key>
void launch_tile_ranges(int n_keys, const Key* keys, int2* ranges, cudaStream_t stream) {
    if (n_keys == 0) return;
    tile_ranges_kernel<Key><<<blocks_for(n_keys, 256), 256, 0, stream>>>(n_keys, keys, ranges);
}

template void launch_emit_keys<uint32_t>(int, int, const Projected&, const int*, const int64_t*, const Camera&,
                                         uint32_t*, int*, cudaStream_t);
template void launch_emit_keys<uint64_t>(int, int, const Projected&, const int*, const int64_t*, const Camera&,
                                         uint64_t*, int*, cudaStream_t);
template void launch_tile_ranges<uint32_t>(int, const uint32_t*, int2*, cudaStream_t);
template void launch_tile_ranges<uint64_t>(int, const uint64_t*, int2*, cudaStream_t);

int feature_capacity(int k) {
    for (int cap : {0, 1, 3, 8, 16, MAX_FEATURES})  // the channel counts the render kernel is compiled for
        if (k <= cap) return cap;
    return -1;
}

void launch_render(int k_features, const TileLists& lists, const Camera& cam, const Projected& p,
                   const Layers& layers, const float* features, float* color, float* depth, float* feature_map,
                   float* alpha, float* final_T, int* n_contrib, cudaStream_t stream) {
    const dim3 grid(cam.tiles_x, cam.tiles_y, layers.count), block(TILE, TILE);
#define EGORAST_RENDER(CAP)                                                                              \
    case CAP:                                                                                             \
        render_kernel<CAP><<<grid, block, 0, stream>>>(lists, cam, p, layers, features, k_features, color, \
                                                       depth, feature_map, alpha, final_T, n_contrib);      \
        break;
    switch (feature_capacity(k_features)) {
        EGORAST_RENDER(0) EGORAST_RENDER(1) EGORAST_RENDER(3) EGORAST_RENDER(8) EGORAST_RENDER(16) EGORAST_RENDER(32)
        default: break;  // the caller validated k_features
    }
#undef EGORAST_RENDER
}

}  // namespace egorast
