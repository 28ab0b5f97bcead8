#include "blocked_copy.h"
#include "transpose16.h"

// Group by group, without dividing: for CPUs without AVX-512, and a ragged last block.
static void groups_to_rows_scalar(const float *groups, long first, long width, long taps, float *rows, long row_stride) {
    const long columns = width / taps;
    for (long k = 0; k < taps; k++) {
        for (long i = 0; i < columns; i++) {
            const long j = i * taps + k;
            if (j < first) continue;
            const float *group = groups + (k * columns + i) * 16;
            for (int r = 0; r < 16; r++) rows[r * row_stride + j] = group[r];
        }
    }
}

// Blocks of 16 columns transposed in registers.
__attribute__((target("avx512f"))) static void groups_to_rows_avx512(const float *groups, long width, long taps, float *rows,
                                                                      long row_stride) {
    const long columns = width / taps, full = width / 16 * 16;
    for (long j0 = 0; j0 < full; j0 += 16) {
        FOR16(DECLARE)
        long i = j0 / taps, k = j0 % taps;
#define LOAD_GROUP(R) v##R = _mm512_loadu_ps(groups + (k * columns + i) * 16); if (++k == taps) { k = 0; i++; }
        FOR16(LOAD_GROUP)
        TRANSPOSE16()
#define STORE_ROW(R) _mm512_storeu_ps(rows + R * row_stride + j0, v##R);
        FOR16(STORE_ROW)
    }
    if (full < width) groups_to_rows_scalar(groups, full, width, taps, rows, row_stride);
}

void sccam_groups_to_rows(const float *groups, long width, long taps, float *rows, long row_stride) {
    if (sccam_has_avx512()) groups_to_rows_avx512(groups, width, taps, rows, row_stride);
    else groups_to_rows_scalar(groups, 0, width, taps, rows, row_stride);
}
