#ifndef SCCAM_TRANSPOSE16_H
#define SCCAM_TRANSPOSE16_H
#include <immintrin.h>

// A 16 x 16 transpose in registers by swapping off-diagonal blocks of 8, 4, 2
// and 1 rows: four stages of two-source permutes, 64 in all, written out so
// that the 16 rows stay in registers.
#define SWAP(I, J, LO, HI) { const __m512 a = v##I, b = v##J; v##I = _mm512_permutex2var_ps(a, LO, b); \
                             v##J = _mm512_permutex2var_ps(a, HI, b); }
#define TRANSPOSE16() { \
    const __m512i lo8 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23); \
    const __m512i hi8 = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31); \
    const __m512i lo4 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27); \
    const __m512i hi4 = _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31); \
    const __m512i lo2 = _mm512_setr_epi32(0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29); \
    const __m512i hi2 = _mm512_setr_epi32(2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31); \
    const __m512i lo1 = _mm512_setr_epi32(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30); \
    const __m512i hi1 = _mm512_setr_epi32(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31); \
    SWAP(0, 8, lo8, hi8) SWAP(1, 9, lo8, hi8) SWAP(2, 10, lo8, hi8) SWAP(3, 11, lo8, hi8) \
    SWAP(4, 12, lo8, hi8) SWAP(5, 13, lo8, hi8) SWAP(6, 14, lo8, hi8) SWAP(7, 15, lo8, hi8) \
    SWAP(0, 4, lo4, hi4) SWAP(1, 5, lo4, hi4) SWAP(2, 6, lo4, hi4) SWAP(3, 7, lo4, hi4) \
    SWAP(8, 12, lo4, hi4) SWAP(9, 13, lo4, hi4) SWAP(10, 14, lo4, hi4) SWAP(11, 15, lo4, hi4) \
    SWAP(0, 2, lo2, hi2) SWAP(1, 3, lo2, hi2) SWAP(4, 6, lo2, hi2) SWAP(5, 7, lo2, hi2) \
    SWAP(8, 10, lo2, hi2) SWAP(9, 11, lo2, hi2) SWAP(12, 14, lo2, hi2) SWAP(13, 15, lo2, hi2) \
    SWAP(0, 1, lo1, hi1) SWAP(2, 3, lo1, hi1) SWAP(4, 5, lo1, hi1) SWAP(6, 7, lo1, hi1) \
    SWAP(8, 9, lo1, hi1) SWAP(10, 11, lo1, hi1) SWAP(12, 13, lo1, hi1) SWAP(14, 15, lo1, hi1) }
#define FOR16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define DECLARE(R) __m512 v##R;

static inline int sccam_has_avx512(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx512f") ? 1 : 0;
    return cached;
}

#endif
