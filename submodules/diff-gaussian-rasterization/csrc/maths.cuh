// Per-Gaussian maths shared by the forward and backward passes: transforms, covariances,
// spherical harmonics. Written from the equations (EWA splatting, 3DGS paper), row-vector
// matrices as in utils/graphics_utils.py: p_view = [p, 1] @ V, with V stored row-major, so
// p_view[i] = sum_j p[j] V[4 j + i] + V[12 + i].
#pragma once
#include <cuda_runtime.h>

#include "config.h"

namespace egorast {

__device__ __forceinline__ float3 transform_point(const float* M, float3 p) {
    return make_float3(p.x * M[0] + p.y * M[4] + p.z * M[8] + M[12],
                       p.x * M[1] + p.y * M[5] + p.z * M[9] + M[13],
                       p.x * M[2] + p.y * M[6] + p.z * M[10] + M[14]);
}

__device__ __forceinline__ float4 transform_point_hom(const float* M, float3 p) {
    return make_float4(p.x * M[0] + p.y * M[4] + p.z * M[8] + M[12],
                       p.x * M[1] + p.y * M[5] + p.z * M[9] + M[13],
                       p.x * M[2] + p.y * M[6] + p.z * M[10] + M[14],
                       p.x * M[3] + p.y * M[7] + p.z * M[11] + M[15]);
}

// Pixel-index coordinate of an NDC coordinate: pixel x has its centre at NDC (2x + 1) / size - 1.
__device__ __forceinline__ float ndc_to_pixel(float v, int size) {
    return ((v + 1.0f) * size - 1.0f) * 0.5f;
}

// Rotation matrix (row-major r[9]) of a quaternion (w, x, y, z) that is already normalized.
__device__ __forceinline__ void quat_to_rotation(float4 q, float* r) {
    const float w = q.x, x = q.y, y = q.z, z = q.w;
    r[0] = 1.f - 2.f * (y * y + z * z); r[1] = 2.f * (x * y - w * z);       r[2] = 2.f * (x * z + w * y);
    r[3] = 2.f * (x * y + w * z);       r[4] = 1.f - 2.f * (x * x + z * z); r[5] = 2.f * (y * z - w * x);
    r[6] = 2.f * (x * z - w * y);       r[7] = 2.f * (y * z + w * x);       r[8] = 1.f - 2.f * (x * x + y * y);
}

// A zero quaternion stays zero (its rotation matrix is then the identity), as in the reference.
__device__ __forceinline__ float4 normalize_quat(float4 q, float* inv_norm) {
    const float n = 1.f / fmaxf(sqrtf(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w), 1e-12f);
    *inv_norm = n;
    return make_float4(q.x * n, q.y * n, q.z * n, q.w * n);
}

// Sigma = (R S)(R S)^T as the upper triangle (xx, xy, xz, yy, yz, zz).
__device__ inline void covariance_3d(float3 scale, float modifier, float4 rot, float* cov) {
    float inv_norm;
    float r[9];
    quat_to_rotation(normalize_quat(rot, &inv_norm), r);
    const float s[3] = {scale.x * modifier, scale.y * modifier, scale.z * modifier};
    float m[9];  // M = R S: column j of R scaled by s[j]
#pragma unroll
    for (int i = 0; i < 3; i++)
#pragma unroll
        for (int j = 0; j < 3; j++) m[3 * i + j] = r[3 * i + j] * s[j];
    auto dot_rows = [&](int a, int b) { return m[3 * a] * m[3 * b] + m[3 * a + 1] * m[3 * b + 1] + m[3 * a + 2] * m[3 * b + 2]; };
    cov[0] = dot_rows(0, 0); cov[1] = dot_rows(0, 1); cov[2] = dot_rows(0, 2);
    cov[3] = dot_rows(1, 1); cov[4] = dot_rows(1, 2); cov[5] = dot_rows(2, 2);
}

// The Jacobian of the perspective map at the view point t, times the view rotation: the 2x3
// matrix T = J W (rows t0, t1). The point is clamped to 1.3 tan(half fov) as in EWA splatting.
struct Projection2D {
    float t0[3], t1[3];
    float tx, ty, tz;         // clamped view point used in J
    bool clamped_x, clamped_y;
    float limx, limy;         // the clamp bounds (for the gradient of the clamped coordinate)
};

__device__ inline Projection2D projection_jacobian(float3 t, float focal_x, float focal_y,
                                                   float tan_fovx, float tan_fovy, const float* V) {
    Projection2D p;
    p.limx = FRUSTUM_GUARD * tan_fovx;
    p.limy = FRUSTUM_GUARD * tan_fovy;
    const float txtz = t.x / t.z, tytz = t.y / t.z;
    p.clamped_x = txtz < -p.limx || txtz > p.limx;
    p.clamped_y = tytz < -p.limy || tytz > p.limy;
    p.tx = fminf(p.limx, fmaxf(-p.limx, txtz)) * t.z;
    p.ty = fminf(p.limy, fmaxf(-p.limy, tytz)) * t.z;
    p.tz = t.z;
    const float j00 = focal_x / t.z, j02 = -focal_x * p.tx / (t.z * t.z);
    const float j11 = focal_y / t.z, j12 = -focal_y * p.ty / (t.z * t.z);
    // W[i][c] (column-vector view rotation) = V[4 c + i]
#pragma unroll
    for (int c = 0; c < 3; c++) {
        p.t0[c] = j00 * V[4 * c + 0] + j02 * V[4 * c + 2];
        p.t1[c] = j11 * V[4 * c + 1] + j12 * V[4 * c + 2];
    }
    return p;
}

__device__ __forceinline__ void sym3_times_vec(const float* cov, const float* v, float* out) {
    out[0] = cov[0] * v[0] + cov[1] * v[1] + cov[2] * v[2];
    out[1] = cov[1] * v[0] + cov[3] * v[1] + cov[4] * v[2];
    out[2] = cov[2] * v[0] + cov[4] * v[1] + cov[5] * v[2];
}

// 2D covariance (a, b, c) = T Sigma T^T + blur on the diagonal.
__device__ inline float3 covariance_2d(const Projection2D& p, const float* cov3d) {
    float s0[3], s1[3];
    sym3_times_vec(cov3d, p.t0, s0);
    sym3_times_vec(cov3d, p.t1, s1);
    const float a = p.t0[0] * s0[0] + p.t0[1] * s0[1] + p.t0[2] * s0[2];
    const float b = p.t0[0] * s1[0] + p.t0[1] * s1[1] + p.t0[2] * s1[2];
    const float c = p.t1[0] * s1[0] + p.t1[1] * s1[1] + p.t1[2] * s1[2];
    return make_float3(a + COV2D_BLUR, b, c + COV2D_BLUR);
}

// ---- spherical harmonics (real, Condon-Shortley phase; utils/sh_utils.py) ----
__device__ constexpr float SH_C0 = 0.28209479177387814f;
__device__ constexpr float SH_C1 = 0.4886025119029199f;
__device__ constexpr float SH_C2[5] = {1.0925484305920792f, -1.0925484305920792f, 0.31539156525252005f,
                                       -1.0925484305920792f, 0.5462742152960396f};
__device__ constexpr float SH_C3[7] = {-0.5900435899266435f, 2.890611442640554f, -0.4570457994644658f,
                                       0.3731763325901154f, -0.4570457994644658f, 1.445305721320277f,
                                       -0.5900435899266435f};

// Basis values y[16] at the unit direction (x, y, z), up to `degree`; with `grad`, also their
// partial derivatives dy[16][3] w.r.t. the (unnormalized-treated) components x, y, z.
template <bool WITH_GRAD>
__device__ inline void sh_basis(int degree, float x, float y, float z, float* b, float (*db)[3]) {
    b[0] = SH_C0;
    if (WITH_GRAD) { db[0][0] = db[0][1] = db[0][2] = 0.f; }
    if (degree < 1) return;
    b[1] = -SH_C1 * y; b[2] = SH_C1 * z; b[3] = -SH_C1 * x;
    if (WITH_GRAD) {
        db[1][0] = 0.f;     db[1][1] = -SH_C1; db[1][2] = 0.f;
        db[2][0] = 0.f;     db[2][1] = 0.f;    db[2][2] = SH_C1;
        db[3][0] = -SH_C1;  db[3][1] = 0.f;    db[3][2] = 0.f;
    }
    if (degree < 2) return;
    const float xx = x * x, yy = y * y, zz = z * z;
    b[4] = SH_C2[0] * x * y;
    b[5] = SH_C2[1] * y * z;
    b[6] = SH_C2[2] * (2.f * zz - xx - yy);
    b[7] = SH_C2[3] * x * z;
    b[8] = SH_C2[4] * (xx - yy);
    if (WITH_GRAD) {
        db[4][0] = SH_C2[0] * y;        db[4][1] = SH_C2[0] * x;        db[4][2] = 0.f;
        db[5][0] = 0.f;                 db[5][1] = SH_C2[1] * z;        db[5][2] = SH_C2[1] * y;
        db[6][0] = -2.f * SH_C2[2] * x; db[6][1] = -2.f * SH_C2[2] * y; db[6][2] = 4.f * SH_C2[2] * z;
        db[7][0] = SH_C2[3] * z;        db[7][1] = 0.f;                 db[7][2] = SH_C2[3] * x;
        db[8][0] = 2.f * SH_C2[4] * x;  db[8][1] = -2.f * SH_C2[4] * y; db[8][2] = 0.f;
    }
    if (degree < 3) return;
    b[9] = SH_C3[0] * y * (3.f * xx - yy);
    b[10] = SH_C3[1] * x * y * z;
    b[11] = SH_C3[2] * y * (4.f * zz - xx - yy);
    b[12] = SH_C3[3] * z * (2.f * zz - 3.f * xx - 3.f * yy);
    b[13] = SH_C3[4] * x * (4.f * zz - xx - yy);
    b[14] = SH_C3[5] * z * (xx - yy);
    b[15] = SH_C3[6] * x * (xx - 3.f * yy);
    if (WITH_GRAD) {
        db[9][0] = 6.f * SH_C3[0] * x * y;  db[9][1] = 3.f * SH_C3[0] * (xx - yy);        db[9][2] = 0.f;
        db[10][0] = SH_C3[1] * y * z;       db[10][1] = SH_C3[1] * x * z;                 db[10][2] = SH_C3[1] * x * y;
        db[11][0] = -2.f * SH_C3[2] * x * y; db[11][1] = SH_C3[2] * (4.f * zz - xx - 3.f * yy); db[11][2] = 8.f * SH_C3[2] * y * z;
        db[12][0] = -6.f * SH_C3[3] * x * z; db[12][1] = -6.f * SH_C3[3] * y * z; db[12][2] = SH_C3[3] * (6.f * zz - 3.f * xx - 3.f * yy);
        db[13][0] = SH_C3[4] * (4.f * zz - 3.f * xx - yy); db[13][1] = -2.f * SH_C3[4] * x * y; db[13][2] = 8.f * SH_C3[4] * x * z;
        db[14][0] = 2.f * SH_C3[5] * x * z; db[14][1] = -2.f * SH_C3[5] * y * z;          db[14][2] = SH_C3[5] * (xx - yy);
        db[15][0] = 3.f * SH_C3[6] * (xx - yy); db[15][1] = -6.f * SH_C3[6] * x * y;      db[15][2] = 0.f;
    }
}

__device__ __forceinline__ int sh_count(int degree) { return (degree + 1) * (degree + 1); }

}  // namespace egorast
