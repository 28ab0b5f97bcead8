#include "channel_affine.h"
#include "slab_runs.h"
#include "transpose16.h"
#include "transpose8.h"

// Channel R (< 16) of the slab at pixel I: plain, or in blocks of BLOCKED (8 or 16, powers of two) channels.
#define AT(P, BLOCKED, R, I, PLANE) \
    (*((BLOCKED) ? (P) + ((R) & -(BLOCKED)) * (PLANE) + (I) * (BLOCKED) + ((R) & ((BLOCKED) - 1)) : (P) + (R) * (PLANE) + (I)))

static void affine_scalar(const float *x, int xb, float *y, int yb, const float *scale, const float *shift, long first,
                          long plane, int relu) {
    for (long i = first; i < plane; i++) {
        for (int r = 0; r < 16; r++) {
            // Two statements, so that no compiler fuses them: the same roundings as the NCHW pass.
            float v = AT(x, xb, r, i, plane) * scale[r];
            v = v + shift[r];
            AT(y, yb, r, i, plane) = relu && !(v > 0) ? 0 : v;
        }
    }
}

static void gradient_scalar(const float *y, const float *dy, int ab, float *dx, int bb, const float *scale, long first,
                            long plane, int accumulate) {
    for (long i = first; i < plane; i++) {
        for (int r = 0; r < 16; r++) {
            const float g = (y && !(AT(y, ab, r, i, plane) > 0)) ? 0 : AT(dy, ab, r, i, plane) * scale[r];
            if (accumulate) AT(dx, bb, r, i, plane) += g; else AT(dx, bb, r, i, plane) = g;
        }
    }
}

// Vector R of a 16-pixel tile starting at pixel I: channel R's 16 pixels
// (plain) or pixel I + R's 16 channels (blocked).
#define TILE(P, BLOCKED, R, I, PLANE) ((P) + ((BLOCKED) ? ((I) + (R)) * 16 : (R) * (PLANE) + (I)))
// The scale of vector R: one channel's, broadcast (plain), or all 16 channels' (blocked).
#define SCALE(BLOCKED, R, S, S16) ((BLOCKED) ? (S16) : _mm512_set1_ps((S)[R]))

__attribute__((target("avx512f"))) static void affine_avx512(const float *x, int xb, float *y, int yb, const float *scale,
                                                              const float *shift, long plane, int relu) {
    const __m512 s16 = _mm512_loadu_ps(scale), b16 = _mm512_loadu_ps(shift), zero = _mm512_setzero_ps();
    const long full = plane / 16 * 16;
    for (long i = 0; i < full; i += 16) {
        FOR16(DECLARE)
#define AFFINE(R) v##R = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(TILE(x, xb, R, i, plane)), SCALE(xb, R, scale, s16)), \
                                       SCALE(xb, R, shift, b16)); \
                  if (relu) v##R = _mm512_max_ps(v##R, zero);
        FOR16(AFFINE)
        if (xb != yb) TRANSPOSE16()
#define STORE_Y(R) _mm512_storeu_ps(TILE(y, yb, R, i, plane), v##R);
        FOR16(STORE_Y)
    }
    affine_scalar(x, xb, y, yb, scale, shift, full, plane, relu);
}

__attribute__((target("avx512f"))) static void gradient_avx512(const float *y, const float *dy, int ab, float *dx, int bb,
                                                                const float *scale, long plane, int accumulate) {
    const __m512 s16 = _mm512_loadu_ps(scale), zero = _mm512_setzero_ps();
    const long full = plane / 16 * 16;
    for (long i = 0; i < full; i += 16) {
        FOR16(DECLARE)
#define GRADIENT(R) v##R = _mm512_mul_ps(_mm512_loadu_ps(TILE(dy, ab, R, i, plane)), SCALE(ab, R, scale, s16)); \
                    if (y) v##R = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_loadu_ps(TILE(y, ab, R, i, plane)), zero, \
                                                                         _CMP_GT_OQ), v##R);
        FOR16(GRADIENT)
        if (ab != bb) TRANSPOSE16()
#define STORE_DX(R) { float *target = TILE(dx, bb, R, i, plane); \
                      _mm512_storeu_ps(target, accumulate ? _mm512_add_ps(_mm512_loadu_ps(target), v##R) : v##R); }
        FOR16(STORE_DX)
    }
    gradient_scalar(y, dy, ab, dx, bb, scale, full, plane, accumulate);
}

// Crossing between plain and nChw8c on AVX2: each of the slab's two 8-channel
// blocks in tiles of 8 pixels x 8 channels, computed in the source's layout
// and turned in registers (`transpose8`) on the way out; the same
// multiplications and additions, element for element, as `affine_scalar` and
// `gradient_scalar`, which take the pixels past the last whole tile.
// Vector K of a tile at pixel I of block B: channel 8B + K's 8 pixels (plain)
// or pixel I + K's 8 channels (nChw8c).
#define TILE8(P, BLOCKED, B, K, I, PLANE) ((P) + ((BLOCKED) ? (B) * 8 * (PLANE) + ((I) + (K)) * 8 : (8 * (B) + (K)) * (PLANE) + (I)))

__attribute__((target("avx2"))) static inline __m256 channel_values(const float *values, int blocked, int b, int k) {
    return blocked ? _mm256_loadu_ps(values + 8 * b) : _mm256_set1_ps(values[8 * b + k]);
}

__attribute__((target("avx2"))) static void affine_crossing_avx2(const float *x, int xb, float *y, int yb, const float *scale,
                                                                  const float *shift, long plane, int relu) {
    const __m256 zero = _mm256_setzero_ps();
    const long full = plane / 8 * 8;
    for (int b = 0; b < 2; b++) {
        for (long i = 0; i < full; i += 8) {
            __m256 v[8];
            for (int k = 0; k < 8; k++) {
                v[k] = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(TILE8(x, xb, b, k, i, plane)), channel_values(scale, xb, b, k)),
                                     channel_values(shift, xb, b, k));
                if (relu) v[k] = _mm256_and_ps(v[k], _mm256_cmp_ps(v[k], zero, _CMP_GT_OQ));
            }
            transpose8(v);
            for (int k = 0; k < 8; k++) _mm256_storeu_ps(TILE8(y, yb, b, k, i, plane), v[k]);
        }
    }
    affine_scalar(x, xb, y, yb, scale, shift, full, plane, relu);
}

__attribute__((target("avx2"))) static void gradient_crossing_avx2(const float *y, const float *dy, int ab, float *dx, int bb,
                                                                    const float *scale, long plane, int accumulate) {
    const __m256 zero = _mm256_setzero_ps();
    const long full = plane / 8 * 8;
    for (int b = 0; b < 2; b++) {
        for (long i = 0; i < full; i += 8) {
            __m256 v[8];
            for (int k = 0; k < 8; k++) {
                v[k] = _mm256_mul_ps(_mm256_loadu_ps(TILE8(dy, ab, b, k, i, plane)), channel_values(scale, ab, b, k));
                if (y) v[k] = _mm256_and_ps(v[k], _mm256_cmp_ps(_mm256_loadu_ps(TILE8(y, ab, b, k, i, plane)), zero, _CMP_GT_OQ));
            }
            transpose8(v);
            for (int k = 0; k < 8; k++) {
                float *target = TILE8(dx, bb, b, k, i, plane);
                _mm256_storeu_ps(target, accumulate ? _mm256_add_ps(_mm256_loadu_ps(target), v[k]) : v[k]);
            }
        }
    }
    gradient_scalar(y, dy, ab, dx, bb, scale, full, plane, accumulate);
}

// Without AVX-512 (or with nChw8c), a slab whose two sides share a layout
// runs as loops the compiler vectorises (an AVX2 clone where the CPU has it;
// the runs are slab_runs.h's). Every element is read and written at its own
// index, so the in-place calls are safe to vectorise. Crossing layouts runs
// element by element.
__attribute__((target_clones("avx2", "default"))) static void affine_same_layout(const float *x, int blocked, float *y,
                                                                                 const float *scale, const float *shift,
                                                                                 long plane, int relu) {
#define AFFINE_AT(E, K) { float v = x[E] * s[K]; v = v + t[K]; y[E] = relu && !(v > 0) ? 0 : v; }
    SLAB_RUNS(AFFINE_AT)
}

__attribute__((target_clones("avx2", "default"))) static void gradient_same_layout(const float *y, const float *dy, int blocked,
                                                                                   float *dx, const float *scale, long plane,
                                                                                   int accumulate) {
    const float *shift = NULL;
#define GRADIENT_AT(E, K) { float g = dy[E] * s[K]; if (y && !(y[E] > 0)) g = 0; dx[E] = accumulate ? dx[E] + g : g; }
    SLAB_RUNS(GRADIENT_AT)
}

// v = 0 where the multiplier is 0, else v * multiplier: a channel dropout's
// mask on one slab, in place (in the slab's layout, `scale` standing for the
// 16 multipliers of SLAB_RUNS).
__attribute__((target_clones("avx2", "default"))) void sccam_dropout_slab(float *v, int blocked, const float *multipliers,
                                                                          long plane) {
    const float *scale = multipliers, *shift = NULL;
#define DROPOUT_AT(E, K) { v[E] = s[K] == 0 ? 0 : v[E] * s[K]; }
    SLAB_RUNS(DROPOUT_AT)
}

// Whether a crossing of layouts is one `affine_crossing_avx2` takes: plain and nChw8c, on a CPU with AVX2.
static int crosses_on_avx2(int a, int b) {
    return (a | b) == 8 && __builtin_cpu_supports("avx2");
}

// The AVX-512 passes read plain and nChw16c slabs; nChw8c ones take the loops above.
void sccam_affine_slab(const float *x, int x_blocked, float *y, int y_blocked, const float *scale, const float *shift,
                       long plane, int relu) {
    if (sccam_has_avx512() && x_blocked != 8 && y_blocked != 8) affine_avx512(x, x_blocked, y, y_blocked, scale, shift, plane, relu);
    else if (x_blocked == y_blocked) affine_same_layout(x, x_blocked, y, scale, shift, plane, relu);
    else if (crosses_on_avx2(x_blocked, y_blocked)) affine_crossing_avx2(x, x_blocked, y, y_blocked, scale, shift, plane, relu);
    else affine_scalar(x, x_blocked, y, y_blocked, scale, shift, 0, plane, relu);
}

void sccam_affine_gradient_slab(const float *y, const float *dy, int dy_blocked, float *dx, int dx_blocked,
                                const float *scale, long plane, int accumulate) {
    if (sccam_has_avx512() && dy_blocked != 8 && dx_blocked != 8) {
        gradient_avx512(y, dy, dy_blocked, dx, dx_blocked, scale, plane, accumulate);
    } else if (dy_blocked == dx_blocked) {
        gradient_same_layout(y, dy, dy_blocked, dx, scale, plane, accumulate);
    } else if (crosses_on_avx2(dy_blocked, dx_blocked)) {
        gradient_crossing_avx2(y, dy, dy_blocked, dx, dx_blocked, scale, plane, accumulate);
    } else {
        gradient_scalar(y, dy, dy_blocked, dx, dx_blocked, scale, 0, plane, accumulate);
    }
}
