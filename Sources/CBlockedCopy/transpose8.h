#ifndef SCCAM_TRANSPOSE8_H
#define SCCAM_TRANSPOSE8_H
#include <immintrin.h>

// An 8 x 8 transpose of eight AVX2 rows in registers: pairs interleaved,
// then quads, then the two 128-bit halves exchanged.
__attribute__((target("avx2"))) static inline void transpose8(__m256 r[8]) {
    __m256 pairs[8], quads[8];
    for (int i = 0; i < 4; i++) {
        pairs[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        pairs[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) {
            quads[4 * i + j] = _mm256_shuffle_ps(pairs[4 * i + j], pairs[4 * i + 2 + j], 0x44);
            quads[4 * i + 2 + j] = _mm256_shuffle_ps(pairs[4 * i + j], pairs[4 * i + 2 + j], 0xEE);
        }
    }
    // quads[0..3] hold columns 0, 2, 1, 3 of rows 0-3 in their low halves and
    // columns 4, 6, 5, 7 in their high halves; quads[4..7] the same of rows 4-7.
    static const int order[4] = {0, 2, 1, 3};
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(quads[order[c]], quads[4 + order[c]], 0x20);
        r[4 + c] = _mm256_permute2f128_ps(quads[order[c]], quads[4 + order[c]], 0x31);
    }
}

#endif
