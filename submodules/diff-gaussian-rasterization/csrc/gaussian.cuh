// Reading one Gaussian the same way in the forward and backward passes: its 3D covariance from the
// inputs, and its projected values staged in a render block's shared memory.
#pragma once
#include "maths.cuh"
#include "rasterizer.h"

namespace egorast {

__device__ inline void load_cov3d(const Gaussians& g, int i, float cov3d[6]) {
    if (g.cov3d != nullptr) {
#pragma unroll
        for (int k = 0; k < 6; k++) cov3d[k] = g.cov3d[6 * i + k];
        return;
    }
    const float3 s = make_float3(g.scales[3 * i], g.scales[3 * i + 1], g.scales[3 * i + 2]);
    const float4 q = make_float4(g.rotations[4 * i], g.rotations[4 * i + 1], g.rotations[4 * i + 2], g.rotations[4 * i + 3]);
    covariance_3d(s, g.scale_modifier, q, cov3d);
}

// Slot `slot` of a render batch: centre, conic + opacity (times the layer's weight), colour +
// view depth, and features ([k][slot] layout, conflict-free) of projected Gaussian `id`.
template <int KCAP>
__device__ __forceinline__ void stage_gaussian(const Projected& p, const Layers& layers, int layer, const float* features,
                                               int K, int id, int slot, float2* s_xy, float4* s_conic, float4* s_rgbd,
                                               float* s_feat) {
    s_xy[slot] = p.means2d[id];
    float4 conic_opacity = p.conic_opacity[id];
    conic_opacity.w *= layers.weight(layer, id);
    s_conic[slot] = conic_opacity;
    s_rgbd[slot] = make_float4(p.rgb[3 * id], p.rgb[3 * id + 1], p.rgb[3 * id + 2], p.depths[id]);
#pragma unroll
    for (int k = 0; k < KCAP; k++)
        if (k < K) s_feat[k * BLOCK_SIZE + slot] = features[(int64_t)id * K + k];
}

}  // namespace egorast
