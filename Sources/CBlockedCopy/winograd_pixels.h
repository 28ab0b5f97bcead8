#ifndef SCCAM_WINOGRAD_PIXELS_H
#define SCCAM_WINOGRAD_PIXELS_H
#include <immintrin.h>
#include <string.h>
#include "tile_rows.h"
#include "transpose8.h"

// What the float32 Winograd transforms (F(2x2, 3x3) and F(4x4, 3x3)) share:
// a 16-channel slab's pixel as one vector, read from and written to plain,
// nChw16c or nChw8c tensors, and the Winograd-domain rows.

// A slab's 16 channels as one generic vector: the compiler lowers each
// operation to two 8-float AVX2 instructions.
typedef float v16 __attribute__((vector_size(64)));
#define AVX2 __attribute__((target("avx2,fma")))
// The helpers that pass v16 by value are static and inlined: no call crosses an ABI boundary.
#pragma clang diagnostic ignored "-Wpsabi"

// The two 8-float halves of a v16, for the AVX2 intrinsics the generic vectors have no form of.
typedef union {
    v16 whole;
    __m256 half[2];
} halves;

// Where lane r (< 16) of a slab's pixel lies: plain (channel planes), or in
// blocks of `blocked` channels (16: nChw16c; 8: nChw8c, the slab's two blocks
// `8 * plane` apart; powers of two, so masks stand for division).
static inline long lane_offset(int blocked, long r, long pixel, long plane) {
    return blocked ? (r & -(long)blocked) * plane + pixel * blocked + (r & (blocked - 1)) : r * plane + pixel;
}

// Lanes past `channels` read as zero (a blocked slab's padding lanes may hold
// anything). A full blocked slab is one or two plain loads; a full plain slab
// two AVX2 gathers across its channel planes; a partial one is collected in
// memory first and read as a whole (writing single lanes of a vector would
// make every lane's store stall the next read).
AVX2 static inline v16 load_pixel(const float *x, int blocked, long pixel, long plane, long channels) {
    v16 v;
    if (blocked == 16 && channels == 16) {
        memcpy(&v, x + pixel * 16, sizeof v);
        return v;
    }
    if (blocked == 8 && channels == 16) {
        halves h = {.half = {_mm256_loadu_ps(x + pixel * 8), _mm256_loadu_ps(x + 8 * plane + pixel * 8)}};
        return h.whole;
    }
    if (!blocked && channels == 16) {
        const __m256i low = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)plane));
        const __m256i high = _mm256_add_epi32(low, _mm256_set1_epi32(8 * (int)plane));
        halves h = {.half = {_mm256_i32gather_ps(x + pixel, low, 4), _mm256_i32gather_ps(x + pixel, high, 4)}};
        return h.whole;
    }
    float lanes[16] __attribute__((aligned(32))) = {0};
    for (long r = 0; r < channels; r++) lanes[r] = x[lane_offset(blocked, r, pixel, plane)];
    memcpy(&v, lanes, sizeof v);
    return v;
}

AVX2 static inline void store_pixel(float *y, int blocked, long pixel, long plane, long channels, v16 v, int accumulate) {
    if (blocked == 16 && channels == 16) {
        float *p = y + pixel * 16;
        if (accumulate) {
            v16 old;
            memcpy(&old, p, sizeof old);
            v += old;
        }
        memcpy(p, &v, sizeof v);
    } else if (blocked == 8 && channels == 16) {
        halves h = {.whole = v};
        float *low = y + pixel * 8, *high = y + 8 * plane + pixel * 8;
        if (accumulate) {
            h.half[0] = _mm256_add_ps(_mm256_loadu_ps(low), h.half[0]);
            h.half[1] = _mm256_add_ps(_mm256_loadu_ps(high), h.half[1]);
        }
        _mm256_storeu_ps(low, h.half[0]);
        _mm256_storeu_ps(high, h.half[1]);
    } else {
        for (long r = 0; r < channels; r++) {
            float *p = y + lane_offset(blocked, r, pixel, plane);
            *p = accumulate ? *p + v[r] : v[r];
        }
    }
}

AVX2 static inline v16 load(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

AVX2 static inline void store(float *p, v16 v) { memcpy(p, &v, sizeof v); }

// Tap k of one input's weight gradient for 16 outputs from `first_output`
// (`lanes` of them real), written or added: OIHW, or oneDNN's OIhw16i16o
// (16 x 16 channel tiles, outputs innermost), whose slot is one whole vector.
AVX2 static inline void store_weight_gradient(float *dw, int blocked, long first_output, long lanes, long input, long inputs,
                                              int k, v16 taps, int accumulate) {
    if (blocked) {
        float *p = dw + ((((first_output >> 4) * (inputs >> 4) + (input >> 4)) * 9 + k) << 8) + ((input & 15) << 4);
        store(p, accumulate ? load(p) + taps : taps);
    } else {
        for (long l = 0; l < lanes; l++) {
            float *p = dw + ((first_output + l) * inputs + input) * 9 + k;
            *p = accumulate ? *p + taps[l] : taps[l];
        }
    }
}

// The weight transforms' table: row o of a tile (16 outputs from
// `first_output`) holds 9 taps per input, contiguous in OIHW; copied into
// column o, each (input, tap) of the tile's first `columns / 9` inputs
// becomes one vector over the 16 outputs (past `outputs`: zero). Eight
// columns of eight rows at a time go through a register transpose: copied
// one float at a time, the table took a quarter of U's transform.
AVX2 static inline void weight_columns(const float *w, long outputs, long inputs, long first_output, long first_input,
                                       long columns, float by_column[144][16]) {
    const long whole = columns & ~7L;
    for (long half = 0; half < 16; half += 8) {
        const float *rows[8];
        for (int o = 0; o < 8; o++) {
            rows[o] = first_output + half + o < outputs ? w + ((first_output + half + o) * inputs + first_input) * 9 : NULL;
        }
        for (long c = 0; c < whole; c += 8) {
            __m256 r[8];
            for (int o = 0; o < 8; o++) r[o] = rows[o] ? _mm256_loadu_ps(rows[o] + c) : _mm256_setzero_ps();
            transpose8(r);
            for (int k = 0; k < 8; k++) _mm256_storeu_ps(&by_column[c + k][half], r[k]);
        }
        for (int o = 0; o < 8; o++) {
            for (long c = whole; c < columns; c++) by_column[c][half + o] = rows[o] ? rows[o][c] : 0;
        }
    }
}

#endif
