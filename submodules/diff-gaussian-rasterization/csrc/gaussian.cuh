// One Gaussian's 3D covariance from the inputs, read the same way by the forward and backward
// passes: the precomputed upper triangle when given, else built from scale and rotation.
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

}  // namespace egorast
