// The per-pixel alpha of one Gaussian, shared by the forward and backward render so that both
// make bit-identical decisions about which Gaussians a pixel blends.
#pragma once
#include <cuda_runtime.h>

#include "config.h"

namespace egorast {

struct AlphaEval {
    float alpha;      // min(ALPHA_MAX, o G); 0 where the quadratic form is negative (power > 0)
    float gauss;      // G = exp(power)
    float dx, dy;     // centre - pixel
    bool saturated;   // o G >= ALPHA_MAX: alpha is clamped, no gradient to o or G
};

__device__ __forceinline__ AlphaEval evaluate_alpha(float2 center, float4 conic_opacity, float2 pixel) {
    AlphaEval e;
    e.dx = center.x - pixel.x;
    e.dy = center.y - pixel.y;
    const float power = -0.5f * (conic_opacity.x * e.dx * e.dx + conic_opacity.z * e.dy * e.dy)
                        - conic_opacity.y * e.dx * e.dy;
    e.gauss = __expf(power);
    const float raw = conic_opacity.w * e.gauss;
    e.saturated = raw >= ALPHA_MAX;
    e.alpha = power > 0.f ? 0.f : fminf(ALPHA_MAX, raw);
    return e;
}

}  // namespace egorast
