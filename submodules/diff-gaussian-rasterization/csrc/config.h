// Constants of the rasterization rule. They are part of the maths the pure-PyTorch reference
// (gaussian_renderer/reference.py) implements too: change them together or not at all.
#pragma once

namespace egorast {

constexpr int TILE = 16;                       // tile side in pixels (one CUDA block per tile)
constexpr int BLOCK_SIZE = TILE * TILE;        // threads per render block = Gaussians per batch
constexpr float NEAR_CULL_Z = 0.2f;            // view z at or below this: not rendered
constexpr float FRUSTUM_GUARD = 1.3f;          // projected point clamped to 1.3 tan(half fov) in J
constexpr float COV2D_BLUR = 0.3f;             // added to the 2D covariance diagonal
constexpr float ALPHA_MAX = 0.99f;             // alpha = min(ALPHA_MAX, o exp(power))
constexpr float ALPHA_MIN = 1.0f / 255.0f;     // alphas below this are skipped
constexpr float T_MIN = 1e-4f;                 // a pixel stops when T (1 - alpha) would fall below
constexpr int MAX_FEATURES = 32;               // largest feature-map channel count compiled (feature_capacity)
constexpr int MAX_LAYERS = 8;                  // images one layered draw may hold

}  // namespace egorast
