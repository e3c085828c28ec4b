// Backward pass: per-tile back-to-front replay of the blend (gradients w.r.t. each Gaussian's
// screen-space quantities, reduced per warp so that each lane adds one of the sums), then the
// per-Gaussian chain rule back to the inputs (position, covariance / scale / rotation, SH or colours).
#include <cstdint>

#include "blend.cuh"
#include "config.h"
#include "gaussian.cuh"
#include "maths.cuh"
#include "rasterizer.h"

namespace egorast {

constexpr int PREPROCESS_BW_THREADS = 128;

static inline int blocks_for(int64_t n, int threads) { return (int)((n + threads - 1) / threads); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float read_grad(const ImageGrad& g, int layer, int c, int x, int y) {
    return g.data[layer * g.stride_l + c * g.stride_c + y * g.stride_y + x * g.stride_x];
}

// Values per Gaussian the render backward accumulates (a ScreenGrads row) with KCAP channels.
template <int KCAP>
constexpr int SCREEN_VALUES = SCREEN_FEATURES + KCAP;

// One level of warp_reduce_scatter: swap half of the HALF * 2 values still held with the lane
// OFFSET away, keeping the upper half where this lane's OFFSET bit is set, and add.
template <int HALF, int OFFSET, int S>
__device__ __forceinline__ void reduce_scatter_level(float (&v)[S], int lane) {
    const bool upper = (lane & OFFSET) != 0;
#pragma unroll
    for (int m = 0; m < HALF; m++) {
        const float send = upper ? v[m] : v[m + HALF];
        const float keep = upper ? v[m + HALF] : v[m];
        v[m] = keep + __shfl_xor_sync(0xffffffffu, send, OFFSET);
    }
}

// Warp reduce-scatter of S (16 or 32) values per lane: S - 1 shuffles in all, not 5 per value.
// Returns the warp's sum of value (S == 32 ? lane : lane >> 1); for S == 16 the two lanes of a
// pair hold the same sum. v is overwritten.
template <int S>
__device__ __forceinline__ float warp_reduce_scatter(float (&v)[S], int lane) {
    static_assert(S == 16 || S == 32, "warp_reduce_scatter: 16 or 32 values");
    reduce_scatter_level<S / 2, 16>(v, lane);
    reduce_scatter_level<S / 4, 8>(v, lane);
    reduce_scatter_level<S / 8, 4>(v, lane);
    reduce_scatter_level<S / 16, 2>(v, lane);
    if constexpr (S == 32) reduce_scatter_level<1, 1>(v, lane);
    else v[0] += __shfl_xor_sync(0xffffffffu, v[0], 1);
    return v[0];
}

// One thread per pixel, as in the forward (blockIdx.z: the layer); every thread visits every
// Gaussian of the batch in the same order so that warps stay converged for the reductions. Each
// batch stages the Gaussians' geometry and payload (colour, depth, features) in shared memory.
template <int KCAP>
__global__ void __launch_bounds__(BLOCK_SIZE) render_backward_kernel(
    TileLists lists, Camera cam, Projected p, Layers layers, const float* __restrict__ features, int K,
    const float* __restrict__ final_T, const int* __restrict__ n_contrib, ImageGrad grad_color,
    ImageGrad grad_depth, ImageGrad grad_feature, ImageGrad grad_alpha, ScreenGrads out) {
    constexpr int KA = KCAP > 0 ? KCAP : 1;
    const int layer = blockIdx.z;
    const int tile = (layer * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    const int rank = threadIdx.y * TILE + threadIdx.x, lane = rank & 31;
    const int px = blockIdx.x * TILE + threadIdx.x, py = blockIdx.y * TILE + threadIdx.y;
    const bool inside = px < cam.width && py < cam.height;
    const float2 pixel = make_float2((float)px, (float)py);
    const int2 range = lists.ranges[tile];
    const float ndc_scale_x = 0.5f * cam.width, ndc_scale_y = 0.5f * cam.height;

    // Per-pixel state: transmittance walked backwards from its final value, the upstream
    // gradients, and the normalized colour / depth / features of everything behind.
    const int64_t pix = inside ? layer * (int64_t)cam.width * cam.height + (int64_t)py * cam.width + px : 0;
    float T = inside ? final_T[pix] : 1.f;
    const float T_final = T;
    const int last = inside ? n_contrib[pix] : 0;
    float g_c[3], g_d = 0.f, g_a = 0.f, g_f[KA], acc_c[3], acc_d = 0.f, acc_f[KA];
#pragma unroll
    for (int c = 0; c < 3; c++) {
        g_c[c] = inside ? read_grad(grad_color, layer, c, px, py) : 0.f;
        acc_c[c] = layers.bg[3 * layer + c];
    }
    if (inside) { g_d = read_grad(grad_depth, layer, 0, px, py); g_a = read_grad(grad_alpha, layer, 0, px, py); }
#pragma unroll
    for (int k = 0; k < KA; k++) {
        g_f[k] = (inside && k < K) ? read_grad(grad_feature, layer, k, px, py) : 0.f;
        acc_f[k] = 0.f;
    }

    // Gaussians past the last one any pixel of this tile blended need no visit.
    __shared__ int s_last;
    if (rank == 0) s_last = 0;
    __syncthreads();
    if (last > 0) atomicMax(&s_last, last);
    __syncthreads();
    const int end = range.x + s_last;

    __shared__ int s_id[BLOCK_SIZE];
    __shared__ float s_weight[BLOCK_SIZE];             // the layer's opacity factor
    __shared__ float2 s_xy[BLOCK_SIZE];
    __shared__ float4 s_conic[BLOCK_SIZE];
    __shared__ float4 s_rgbd[BLOCK_SIZE];              // colour and view depth
    __shared__ float s_feat[KCAP > 0 ? KCAP * BLOCK_SIZE : 1];  // [k][j]: conflict-free staging

    for (int top = end; top > range.x; top -= BLOCK_SIZE) {
        const int batch = min(BLOCK_SIZE, top - range.x);
        __syncthreads();  // the previous batch is fully consumed
        if (rank < batch) {
            const int id = lists.point_list[top - 1 - rank];
            s_id[rank] = id;
            s_weight[rank] = layers.weight(layer, id);
            stage_gaussian<KCAP>(p, layers, layer, features, K, id, rank, s_xy, s_conic, s_rgbd, s_feat);
        }
        __syncthreads();
        for (int j = 0; j < batch; j++) {
            const int position = top - 1 - j - range.x;  // index in this tile's list
            const float4 conic = s_conic[j];
            AlphaEval e;
            bool valid = inside && position < last;
            if (valid) {
                e = evaluate_alpha(s_xy[j], conic, pixel);
                valid = e.alpha >= ALPHA_MIN;
            }
            const unsigned active = __ballot_sync(0xffffffffu, valid);
            if (active == 0u) continue;

            float d_mx = 0.f, d_my = 0.f, d_ca = 0.f, d_cb = 0.f, d_cc = 0.f, d_op = 0.f, d_z = 0.f;
            float d_rgb[3] = {0.f, 0.f, 0.f}, d_f[KA];
#pragma unroll
            for (int k = 0; k < KA; k++) d_f[k] = 0.f;
            if (valid) {
                const float a = e.alpha;
                T = T / (1.f - a);  // transmittance in front of this Gaussian
                const float w = a * T;
                const float4 rgbd = s_rgbd[j];
                const float col[3] = {rgbd.x, rgbd.y, rgbd.z};
                float dL_da = 0.f;
#pragma unroll
                for (int c = 0; c < 3; c++) {
                    dL_da += (col[c] - acc_c[c]) * g_c[c];
                    acc_c[c] = a * col[c] + (1.f - a) * acc_c[c];
                    d_rgb[c] = w * g_c[c];
                }
                dL_da += (rgbd.w - acc_d) * g_d;
                acc_d = a * rgbd.w + (1.f - a) * acc_d;
                d_z = w * g_d;
#pragma unroll
                for (int k = 0; k < KCAP; k++) {
                    if (k < K) {
                        const float f = s_feat[k * BLOCK_SIZE + j];
                        dL_da += (f - acc_f[k]) * g_f[k];
                        acc_f[k] = a * f + (1.f - a) * acc_f[k];
                        d_f[k] = w * g_f[k];
                    }
                }
                dL_da = dL_da * T + g_a * T_final / (1.f - a);
                if (!e.saturated) {
                    d_op = e.gauss * dL_da * s_weight[j];  // w.r.t. the Gaussian's own opacity
                    const float dL_dpower = conic.w * e.gauss * dL_da;
                    d_mx = dL_dpower * (-conic.x * e.dx - conic.y * e.dy) * ndc_scale_x;
                    d_my = dL_dpower * (-conic.z * e.dy - conic.y * e.dx) * ndc_scale_y;
                    d_ca = -0.5f * e.dx * e.dx * dL_dpower;
                    d_cb = -e.dx * e.dy * dL_dpower;
                    d_cc = -0.5f * e.dy * e.dy * dL_dpower;
                }
            }
            if constexpr (SCREEN_VALUES<KCAP> <= 32) {
                // Every lane ends up holding the warp's sum of one value and adds it: the 10 + K
                // atomics of this Gaussian go out as one warp instruction, after 15 or 31 shuffles
                // (a full sum per value would take 5 shuffles each, then 10 + K atomics from one lane).
                constexpr int S = SCREEN_VALUES<KCAP> <= 16 ? 16 : 32;
                float v[S];
                v[SCREEN_MEAN] = d_mx; v[SCREEN_MEAN + 1] = d_my; v[SCREEN_DEPTH] = d_z;
                v[SCREEN_CONIC] = d_ca; v[SCREEN_CONIC + 1] = d_cb; v[SCREEN_CONIC + 2] = d_cc;
                v[SCREEN_OPACITY] = d_op;
#pragma unroll
                for (int c = 0; c < 3; c++) v[SCREEN_RGB + c] = d_rgb[c];
#pragma unroll
                for (int k = 0; k < S - SCREEN_FEATURES; k++)  // the padding past K stays zero
                    v[SCREEN_FEATURES + k] = k < KCAP ? d_f[k < KA ? k : 0] : 0.f;
                const float sum = warp_reduce_scatter<S>(v, lane);
                const int value = S == 16 ? lane >> 1 : lane;  // which of the 10 + K sums this lane holds
                // the NDC centre of layers after the first goes to the row's extra pair
                const int slot = (layer > 0 && value < SCREEN_DEPTH) ? out.other_layers_mean() + value : value;
                if ((S == 32 || (lane & 1) == 0) && value < out.values() && sum != 0.f)
                    atomicAdd(out.rows + (int64_t)s_id[j] * out.row_length() + slot, sum);
            } else {
                // One contributing pixel in the warp adds its own values; otherwise reduce first.
                const bool single = __popc(active) == 1;
                if (!single) {
                    d_mx = warp_sum(d_mx); d_my = warp_sum(d_my);
                    d_ca = warp_sum(d_ca); d_cb = warp_sum(d_cb); d_cc = warp_sum(d_cc); d_op = warp_sum(d_op);
                    d_z = warp_sum(d_z);
#pragma unroll
                    for (int c = 0; c < 3; c++) d_rgb[c] = warp_sum(d_rgb[c]);
#pragma unroll
                    for (int k = 0; k < KCAP; k++)
                        if (k < K) d_f[k] = warp_sum(d_f[k]);
                }
                if (single ? valid : lane == 0) {
                    float* row = out.rows + (int64_t)s_id[j] * out.row_length();
                    const int mean_slot = layer > 0 ? out.other_layers_mean() : SCREEN_MEAN;
                    atomicAdd(row + mean_slot, d_mx);
                    atomicAdd(row + mean_slot + 1, d_my);
                    atomicAdd(row + SCREEN_DEPTH, d_z);
                    atomicAdd(row + SCREEN_CONIC, d_ca);
                    atomicAdd(row + SCREEN_CONIC + 1, d_cb);
                    atomicAdd(row + SCREEN_CONIC + 2, d_cc);
                    atomicAdd(row + SCREEN_OPACITY, d_op);
#pragma unroll
                    for (int c = 0; c < 3; c++) atomicAdd(row + SCREEN_RGB + c, d_rgb[c]);
#pragma unroll
                    for (int k = 0; k < KCAP; k++)
                        if (k < K) atomicAdd(row + SCREEN_FEATURES + k, d_f[k]);
                }
            }
        }
    }
}

// dL/d(SH coefficients) into gsh (Gaussian i's row, 3 sh_stride floats) and dL/d(mean) through
// the view direction.
__device__ inline float3 sh_backward(const Gaussians& g, int i, float3 mean, const float* campos,
                                     uint8_t clamped, float3 grad_rgb, float* gsh) {
    const float g_c[3] = {(clamped & 1) ? 0.f : grad_rgb.x, (clamped & 2) ? 0.f : grad_rgb.y,
                          (clamped & 4) ? 0.f : grad_rgb.z};
    const float3 v = make_float3(mean.x - campos[0], mean.y - campos[1], mean.z - campos[2]);
    const float len2 = v.x * v.x + v.y * v.y + v.z * v.z;
    const bool degenerate = !(len2 > 1e-24f);  // the camera centre itself: fixed direction +z
    const float inv_len = degenerate ? 0.f : rsqrtf(len2);
    const float3 dir = degenerate ? make_float3(0.f, 0.f, 1.f) : make_float3(v.x * inv_len, v.y * inv_len, v.z * inv_len);
    float basis[16], dbasis[16][3];
    sh_basis<true>(g.sh_degree, dir.x, dir.y, dir.z, basis, dbasis);
    const float* sh = g.shs + (int64_t)i * g.sh_stride * 3;
    float3 d_dir = make_float3(0.f, 0.f, 0.f);
    const int count = sh_count(g.sh_degree);
#pragma unroll
    for (int k = 0; k < 16; k++) {  // unrolled so that the basis arrays stay in registers
        if (k >= count) break;
        const float dot = sh[3 * k] * g_c[0] + sh[3 * k + 1] * g_c[1] + sh[3 * k + 2] * g_c[2];
        d_dir.x += dot * dbasis[k][0];
        d_dir.y += dot * dbasis[k][1];
        d_dir.z += dot * dbasis[k][2];
#pragma unroll
        for (int c = 0; c < 3; c++) gsh[3 * k + c] = basis[k] * g_c[c];
    }
    for (int k = 3 * count; k < 3 * g.sh_stride; k++) gsh[k] = 0.f;  // coefficients above the degree
    // through dir = v / |v|
    const float along = dir.x * d_dir.x + dir.y * d_dir.y + dir.z * d_dir.z;
    return make_float3((d_dir.x - dir.x * along) * inv_len, (d_dir.y - dir.y * along) * inv_len,
                       (d_dir.z - dir.z * along) * inv_len);
}

// dL/dscale and dL/drotation from dL/dSigma (symmetric 3x3, row-major G) for Sigma = (R S)(R S)^T.
__device__ inline void covariance_3d_backward(const Gaussians& g, int i, const float* G, float* grad_scale,
                                              float* grad_rot) {
    const float4 q_raw = make_float4(g.rotations[4 * i], g.rotations[4 * i + 1], g.rotations[4 * i + 2], g.rotations[4 * i + 3]);
    float inv_norm;
    const float4 q = normalize_quat(q_raw, &inv_norm);
    float r[9];
    quat_to_rotation(q, r);
    const float s[3] = {g.scales[3 * i] * g.scale_modifier, g.scales[3 * i + 1] * g.scale_modifier,
                        g.scales[3 * i + 2] * g.scale_modifier};
    float m[9], dm[9], dr[9];
#pragma unroll
    for (int a = 0; a < 3; a++)
#pragma unroll
        for (int b = 0; b < 3; b++) m[3 * a + b] = r[3 * a + b] * s[b];
    // dL/dM = 2 G M
#pragma unroll
    for (int a = 0; a < 3; a++)
#pragma unroll
        for (int b = 0; b < 3; b++)
            dm[3 * a + b] = 2.f * (G[3 * a] * m[b] + G[3 * a + 1] * m[3 + b] + G[3 * a + 2] * m[6 + b]);
#pragma unroll
    for (int b = 0; b < 3; b++) {
        grad_scale[b] = g.scale_modifier * (r[b] * dm[b] + r[3 + b] * dm[3 + b] + r[6 + b] * dm[6 + b]);
#pragma unroll
        for (int a = 0; a < 3; a++) dr[3 * a + b] = dm[3 * a + b] * s[b];
    }
    const float w = q.x, x = q.y, y = q.z, z = q.w;
    float dq[4];
    dq[0] = 2.f * (-z * dr[1] + y * dr[2] + z * dr[3] - x * dr[5] - y * dr[6] + x * dr[7]);
    dq[1] = 2.f * (y * dr[1] + z * dr[2] + y * dr[3] - 2.f * x * dr[4] - w * dr[5] + z * dr[6] + w * dr[7] - 2.f * x * dr[8]);
    dq[2] = 2.f * (-2.f * y * dr[0] + x * dr[1] + w * dr[2] + x * dr[3] + z * dr[5] - w * dr[6] + z * dr[7] - 2.f * y * dr[8]);
    dq[3] = 2.f * (-2.f * z * dr[0] - w * dr[1] + x * dr[2] + w * dr[3] - 2.f * z * dr[4] + y * dr[5] + x * dr[6] + y * dr[7]);
    // through q / |q|
    const float qn[4] = {w, x, y, z};
    const float along = qn[0] * dq[0] + qn[1] * dq[1] + qn[2] * dq[2] + qn[3] * dq[3];
#pragma unroll
    for (int k = 0; k < 4; k++) grad_rot[k] = (dq[k] - qn[k] * along) * inv_norm;
}

// Chain rule for Gaussian i (which preprocessing kept). Its SH gradient row (3 sh_stride floats)
// goes to sh_row, which the caller stages.
__device__ void gaussian_backward(const Gaussians& g, const Camera& cam, const Projected& p, const ScreenGrads& screen,
                                  const InputGrads& out, int i, float* sh_row) {
    const float3 mean = make_float3(g.means[3 * i], g.means[3 * i + 1], g.means[3 * i + 2]);
    const float3 t = transform_point(cam.view, mean);
    float cov3d[6];
    load_cov3d(g, i, cov3d);
    const Projection2D jac = projection_jacobian(t, cam.focal_x, cam.focal_y, cam.tan_fovx, cam.tan_fovy, cam.view);
    const float3 cov2d = covariance_2d(jac, cov3d);
    const float inv_det = 1.f / (cov2d.x * cov2d.z - cov2d.y * cov2d.y);
    const float qa = cov2d.z * inv_det, qb = -cov2d.y * inv_det, qc = cov2d.x * inv_det;

    // conic = inverse(cov2d): dL/dcov2d = -Q Gq Q, with Gq the symmetric conic gradient
    const float* sg = screen.rows + (int64_t)i * screen.row_length();
    const float3 gq = make_float3(sg[SCREEN_CONIC], sg[SCREEN_CONIC + 1], sg[SCREEN_CONIC + 2]);
    const float gb_half = 0.5f * gq.y;
    const float m00 = qa * gq.x + qb * gb_half, m01 = qa * gb_half + qb * gq.z;
    const float m10 = qb * gq.x + qc * gb_half, m11 = qb * gb_half + qc * gq.z;
    const float da = -(m00 * qa + m01 * qb), db_half = -(m00 * qb + m01 * qc), dc = -(m10 * qb + m11 * qc);

    // cov2d = T Sigma T^T: dL/dSigma = T^T G2 T, dL/dT = 2 G2 T Sigma
    float G[9];
#pragma unroll
    for (int a = 0; a < 3; a++)
#pragma unroll
        for (int b = 0; b < 3; b++)
            G[3 * a + b] = jac.t0[a] * (da * jac.t0[b] + db_half * jac.t1[b]) + jac.t1[a] * (db_half * jac.t0[b] + dc * jac.t1[b]);
    float s0[3], s1[3], dT0[3], dT1[3];
    sym3_times_vec(cov3d, jac.t0, s0);
    sym3_times_vec(cov3d, jac.t1, s1);
#pragma unroll
    for (int c = 0; c < 3; c++) {
        dT0[c] = 2.f * (da * s0[c] + db_half * s1[c]);
        dT1[c] = 2.f * (db_half * s0[c] + dc * s1[c]);
    }
    // T = J W: dL/dJ = dL/dT W^T, with W[i][c] = view[4 c + i]
    const float* V = cam.view;
    float dJ00 = 0.f, dJ02 = 0.f, dJ11 = 0.f, dJ12 = 0.f;
#pragma unroll
    for (int c = 0; c < 3; c++) {
        dJ00 += dT0[c] * V[4 * c + 0];
        dJ02 += dT0[c] * V[4 * c + 2];
        dJ11 += dT1[c] * V[4 * c + 1];
        dJ12 += dT1[c] * V[4 * c + 2];
    }
    const float tz = t.z, tz2 = tz * tz, tz3 = tz2 * tz;
    const float fx = cam.focal_x, fy = cam.focal_y;
    const float d_txc = -fx / tz2 * dJ02, d_tyc = -fy / tz2 * dJ12;
    float d_tz = -fx / tz2 * dJ00 + 2.f * fx * jac.tx / tz3 * dJ02 - fy / tz2 * dJ11 + 2.f * fy * jac.ty / tz3 * dJ12;
    // the clamped coordinate is clamp(x / z) z: slope 1 in x inside, the clamp bound in z outside
    const float d_tx = jac.clamped_x ? 0.f : d_txc;
    const float d_ty = jac.clamped_y ? 0.f : d_tyc;
    if (jac.clamped_x) d_tz += d_txc * (jac.tx / tz);
    if (jac.clamped_y) d_tz += d_tyc * (jac.ty / tz);
    d_tz += sg[SCREEN_DEPTH];

    // mean through the view transform
    float3 d_mean = make_float3(V[0] * d_tx + V[1] * d_ty + V[2] * d_tz,
                                V[4] * d_tx + V[5] * d_ty + V[6] * d_tz,
                                V[8] * d_tx + V[9] * d_ty + V[10] * d_tz);
    // mean through the projected centre (NDC), every layer's
    float g_ndc_x = sg[SCREEN_MEAN], g_ndc_y = sg[SCREEN_MEAN + 1];
    if (screen.layered) {
        g_ndc_x += sg[screen.other_layers_mean()];
        g_ndc_y += sg[screen.other_layers_mean() + 1];
    }
    const float* P = cam.proj;
    const float4 hom = transform_point_hom(P, mean);
    const float w = 1.f / hom.w;
    const float dhx = g_ndc_x * w, dhy = g_ndc_y * w, dhw = -(g_ndc_x * hom.x + g_ndc_y * hom.y) * w * w;
    d_mean.x += P[0] * dhx + P[1] * dhy + P[3] * dhw;
    d_mean.y += P[4] * dhx + P[5] * dhy + P[7] * dhw;
    d_mean.z += P[8] * dhx + P[9] * dhy + P[11] * dhw;

    const float3 g_rgb = make_float3(sg[SCREEN_RGB], sg[SCREEN_RGB + 1], sg[SCREEN_RGB + 2]);
    if (g.colors == nullptr) {  // precomputed colours take the rgb gradient as is (copy_screen_grads)
        const float3 d = sh_backward(g, i, mean, cam.campos, p.clamped[i], g_rgb, sh_row);
        d_mean.x += d.x; d_mean.y += d.y; d_mean.z += d.z;
    }
    out.means[3 * i] = d_mean.x; out.means[3 * i + 1] = d_mean.y; out.means[3 * i + 2] = d_mean.z;

    if (g.cov3d != nullptr) {  // upper triangle: off-diagonal entries appear twice in Sigma
        float* gc = out.cov3d + 6 * i;
        gc[0] = G[0]; gc[1] = 2.f * G[1]; gc[2] = 2.f * G[2]; gc[3] = G[4]; gc[4] = 2.f * G[5]; gc[5] = G[8];
    } else {
        covariance_3d_backward(g, i, G, out.scales + 3 * i, out.rotations + 4 * i);
    }
}

// The gradients that leave the rasterizer as they were accumulated (zero rows for culled Gaussians);
// means2d: the first layer's.
__device__ inline void copy_screen_grads(const ScreenGrads& screen, const InputGrads& out, int i) {
    const float* sg = screen.rows + (int64_t)i * screen.row_length();
    out.means2d[3 * i] = sg[SCREEN_MEAN];
    out.means2d[3 * i + 1] = sg[SCREEN_MEAN + 1];
    out.means2d[3 * i + 2] = 0.f;  // the view depth's gradient goes into means3D instead
    out.opacities[i] = sg[SCREEN_OPACITY];
    if (out.colors != nullptr)
        for (int c = 0; c < 3; c++) out.colors[3 * i + c] = sg[SCREEN_RGB + c];
    for (int k = 0; k < screen.K; k++) out.features[(int64_t)i * screen.K + k] = sg[SCREEN_FEATURES + k];
}

// One thread per Gaussian. Its SH gradient row is 3 sh_stride floats long, so stores straight from
// each thread would hit a separate 32-byte sector per lane; the rows go through shared memory
// instead (padded by one float against bank conflicts) and each warp writes its 32 rows as one
// contiguous span. Rows too long for the shared buffer (stage_rows = false) are written directly.
__global__ void __launch_bounds__(PREPROCESS_BW_THREADS) preprocess_backward_kernel(
    Gaussians g, Camera cam, Projected p, ScreenGrads screen, InputGrads out, bool stage_rows) {
    extern __shared__ float s_rows[];  // [PREPROCESS_BW_THREADS][row + 1] when stage_rows
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int row = 3 * g.sh_stride, lane = threadIdx.x & 31;
    const bool valid = i < g.count;
    float* sh_row = nullptr;
    if (out.shs != nullptr)
        sh_row = stage_rows ? s_rows + threadIdx.x * (row + 1) : out.shs + (int64_t)i * row;
    if (valid) copy_screen_grads(screen, out, i);
    if (valid && p.radii[i] > 0) {
        gaussian_backward(g, cam, p, screen, out, i, sh_row);
    } else if (valid && sh_row != nullptr) {  // no gradient; the SH buffer is not zero-initialised
        for (int k = 0; k < row; k++) sh_row[k] = 0.f;
    }
    if (!stage_rows || out.shs == nullptr) return;
    __syncwarp();
    const int warp_first = i - lane;  // this warp's Gaussians are warp_first .. warp_first + 31
    const int rows_valid = min(32, g.count - warp_first);
    const float* warp_rows = s_rows + (threadIdx.x - lane) * (row + 1);
    float* dst = out.shs + (int64_t)warp_first * row;
    for (int k = lane; k < rows_valid * row; k += 32) dst[k] = warp_rows[(k / row) * (row + 1) + k % row];
}

void launch_render_backward(int k_features, const TileLists& lists, const Camera& cam, const Projected& p,
                            const Layers& layers, const float* features, const float* final_T, const int* n_contrib,
                            const ImageGrad& grad_color, const ImageGrad& grad_depth, const ImageGrad& grad_feature,
                            const ImageGrad& grad_alpha, const ScreenGrads& out, cudaStream_t stream) {
    const dim3 grid(cam.tiles_x, cam.tiles_y, layers.count), block(TILE, TILE);
#define EGORAST_RENDER_BW(CAP)                                                                              \
    case CAP:                                                                                                \
        render_backward_kernel<CAP><<<grid, block, 0, stream>>>(lists, cam, p, layers, features, k_features,  \
                                                                final_T, n_contrib, grad_color, grad_depth,   \
                                                                grad_feature, grad_alpha, out);              \
        break;
    switch (feature_capacity(k_features)) {
        EGORAST_RENDER_BW(0) EGORAST_RENDER_BW(1) EGORAST_RENDER_BW(3) EGORAST_RENDER_BW(8) EGORAST_RENDER_BW(16)
        EGORAST_RENDER_BW(32)
        default: break;
    }
#undef EGORAST_RENDER_BW
}

void launch_preprocess_backward(const Gaussians& g, const Camera& cam, const Projected& p,
                                const ScreenGrads& screen, const InputGrads& out, cudaStream_t stream) {
    if (g.count == 0) return;
    const size_t staged_bytes = out.shs ? sizeof(float) * PREPROCESS_BW_THREADS * (3 * g.sh_stride + 1) : 0;
    const bool stage_rows = out.shs != nullptr && staged_bytes <= 48 * 1024;  // SH degree 3: 25 KB
    preprocess_backward_kernel<<<blocks_for(g.count, PREPROCESS_BW_THREADS), PREPROCESS_BW_THREADS,
                                 stage_rows ? staged_bytes : 0, stream>>>(g, cam, p, screen, out, stage_rows);
}

}  // namespace egorast
