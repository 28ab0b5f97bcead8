#include "fma_peak.h"
#include <immintrin.h>

// Twelve independent accumulators: more than FMA latency x issue width (4 x 2)
// on every x86 core this project runs on, so the loop is throughput-bound.
#define ROUND(F, X, Y) a0 = F(a0, X, Y); a1 = F(a1, X, Y); a2 = F(a2, X, Y); a3 = F(a3, X, Y); \
    a4 = F(a4, X, Y); a5 = F(a5, X, Y); a6 = F(a6, X, Y); a7 = F(a7, X, Y); \
    a8 = F(a8, X, Y); a9 = F(a9, X, Y); a10 = F(a10, X, Y); a11 = F(a11, X, Y);
#define DECLARE(TYPE, SET) TYPE a0 = SET(start[0]), a1 = SET(start[1]), a2 = SET(start[2]), a3 = SET(start[3]), \
    a4 = SET(start[4]), a5 = SET(start[5]), a6 = SET(start[6]), a7 = SET(start[7]), a8 = SET(start[8]), \
    a9 = SET(start[9]), a10 = SET(start[10]), a11 = SET(start[11]);
#define STORE(REDUCE) sums[0] = REDUCE(a0); sums[1] = REDUCE(a1); sums[2] = REDUCE(a2); sums[3] = REDUCE(a3); \
    sums[4] = REDUCE(a4); sums[5] = REDUCE(a5); sums[6] = REDUCE(a6); sums[7] = REDUCE(a7); sums[8] = REDUCE(a8); \
    sums[9] = REDUCE(a9); sums[10] = REDUCE(a10); sums[11] = REDUCE(a11);

__attribute__((target("avx512f"))) static float sum512(__m512 v) { return _mm512_reduce_add_ps(v); }

__attribute__((target("avx2,fma"))) static float sum256(__m256 v) {
    // A pairwise tree, like the AVX-512 reduction, so equal lanes sum exactly.
    __m128 half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    half = _mm_add_ps(half, _mm_movehl_ps(half, half));
    half = _mm_add_ss(half, _mm_movehdup_ps(half));
    return _mm_cvtss_f32(half);
}

__attribute__((target("avx512f"))) static void loop512(long iterations, const float *start, float multiplier,
                                                       float addend, float *sums) {
    DECLARE(__m512, _mm512_set1_ps)
    const __m512 x = _mm512_set1_ps(multiplier), y = _mm512_set1_ps(addend);
    for (long i = 0; i < iterations; i++) { ROUND(_mm512_fmadd_ps, x, y) }
    STORE(sum512)
}

__attribute__((target("avx2,fma"))) static void loop256(long iterations, const float *start, float multiplier,
                                                       float addend, float *sums) {
    DECLARE(__m256, _mm256_set1_ps)
    const __m256 x = _mm256_set1_ps(multiplier), y = _mm256_set1_ps(addend);
    for (long i = 0; i < iterations; i++) { ROUND(_mm256_fmadd_ps, x, y) }
    STORE(sum256)
}

int sccam_fma_lanes(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 16;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 8;
    return 0;
}

void sccam_fma_loop(long iterations, const float *start, float multiplier, float addend, float *sums) {
    switch (sccam_fma_lanes()) {
    case 16: loop512(iterations, start, multiplier, addend, sums); break;
    case 8: loop256(iterations, start, multiplier, addend, sums); break;
    default: for (int i = 0; i < SCCAM_PEAK_ACCUMULATORS; i++) sums[i] = 0; break;
    }
}

int sccam_bf16_dot_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") ? 1 : 0;
}

#define DOT(A, X, Y) _mm512_dpbf16_ps(A, X, Y)

__attribute__((target("avx512f,avx512bf16"))) static void dot512(long iterations, const float *start, float a, float b,
                                                                 float *sums) {
    DECLARE(__m512, _mm512_set1_ps)
    const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(a), _mm512_set1_ps(a));
    const __m512bh y = _mm512_cvtne2ps_pbh(_mm512_set1_ps(b), _mm512_set1_ps(b));
    for (long i = 0; i < iterations; i++) { ROUND(DOT, x, y) }
    STORE(sum512)
}

void sccam_bf16_dot_loop(long iterations, const float *start, float a, float b, float *sums) {
    if (sccam_bf16_dot_available()) {
        dot512(iterations, start, a, b, sums);
    } else {
        for (int i = 0; i < SCCAM_PEAK_ACCUMULATORS; i++) sums[i] = 0;
    }
}
