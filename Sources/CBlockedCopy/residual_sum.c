#include "residual_sum.h"
#include "lanes.h"
#include "slab_runs.h"
#include "transpose16.h"

// Without AVX-512 (or with nChw8c): loops the compiler vectorises (an AVX2
// clone where the CPU has it; the runs are slab_runs.h's). Every element is read and written at its own index (the gradient
// may be written over dy), so they are safe to vectorise.
__attribute__((target_clones("avx2", "default"))) static void add_relu_portable(const float *x, const float *r, float *y,
                                                                                int blocked, const float *scale,
                                                                                const float *shift, long plane) {
    // Separate statements, so that no compiler fuses them: the roundings of the separate passes.
#define ADD_RELU_AT(E, K) { float v = x[E] * s[K]; v = v + t[K]; v = v + r[E]; y[E] = v > 0 ? v : 0; }
    SLAB_RUNS(ADD_RELU_AT)
}

__attribute__((target_clones("avx2", "default"))) static void residual_gradient_portable(const float *y, const float *dy,
                                                                                         float *dsum, float *dpre, int blocked,
                                                                                         const float *scale, long plane) {
    const float *shift = NULL;
#define RESIDUAL_GRADIENT_AT(E, K) { const float g = y[E] > 0 ? dy[E] : 0; dsum[E] = g; dpre[E] = g * s[K]; }
    SLAB_RUNS(RESIDUAL_GRADIENT_AT)
}

// Each runs over vectors of 16 floats: a blocked slab is one run of `plane`
// vectors under one scale vector; a plain slab 16 runs (one per channel) of
// `plane` floats under a broadcast scale, the last vector of each masked.
__attribute__((target("avx512f"))) static void add_relu_avx512(const float *x, const float *r, float *y, int blocked,
                                                                const float *scale, const float *shift, long plane) {
    const __m512 zero = _mm512_setzero_ps();
    const int runs = blocked ? 1 : 16;
    const long length = blocked ? 16 * plane : plane;
    for (int run = 0; run < runs; run++) {
        const __m512 s = blocked ? _mm512_loadu_ps(scale) : _mm512_set1_ps(scale[run]);
        const __m512 b = blocked ? _mm512_loadu_ps(shift) : _mm512_set1_ps(shift[run]);
        const long first = run * length;
        for (long i = 0; i < length; i += 16) {
            const __mmask16 m = LANES(length - i);
            __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + first + i), s), b);
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, r + first + i));
            // max returns its second operand (0) for NaN, as `v > 0 ? v : 0` does.
            _mm512_mask_storeu_ps(y + first + i, m, _mm512_max_ps(v, zero));
        }
    }
}

__attribute__((target("avx512f"))) static void residual_gradient_avx512(const float *y, const float *dy, float *dsum, float *dpre,
                                                                         int blocked, const float *scale, long plane) {
    const __m512 zero = _mm512_setzero_ps();
    const int runs = blocked ? 1 : 16;
    const long length = blocked ? 16 * plane : plane;
    for (int run = 0; run < runs; run++) {
        const __m512 s = blocked ? _mm512_loadu_ps(scale) : _mm512_set1_ps(scale[run]);
        const long first = run * length;
        for (long i = 0; i < length; i += 16) {
            const __mmask16 m = LANES(length - i);
            const __mmask16 positive = _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, y + first + i), zero, _CMP_GT_OQ);
            const __m512 g = _mm512_maskz_loadu_ps(positive, dy + first + i);
            _mm512_mask_storeu_ps(dsum + first + i, m, g);
            _mm512_mask_storeu_ps(dpre + first + i, m, _mm512_mul_ps(g, s));
        }
    }
}

void sccam_affine_add_relu_slab(const float *x, const float *residual, float *y, int blocked, const float *scale,
                                const float *shift, long plane) {
    if (sccam_has_avx512() && blocked != 8) add_relu_avx512(x, residual, y, blocked != 0, scale, shift, plane);
    else add_relu_portable(x, residual, y, blocked, scale, shift, plane);
}

void sccam_residual_gradient_slab(const float *y, const float *dy, float *dsum, float *dpre, int blocked,
                                  const float *scale, long plane) {
    if (sccam_has_avx512() && blocked != 8) residual_gradient_avx512(y, dy, dsum, dpre, blocked != 0, scale, plane);
    else residual_gradient_portable(y, dy, dsum, dpre, blocked, scale, plane);
}
