#include "winograd_bf16.h"
#include "lanes.h"
#include "tile_rows.h"
#include "transpose16.h"
#include <immintrin.h>
#include <string.h>

#define AVX512 __attribute__((target("avx512f")))


// A slab's pixel as one vector of its 16 channels: contiguous when blocked,
// gathered from the 16 planes when plain; lanes past `m` read as zero.
AVX512 static inline __m512 load_pixel(const float *x, int blocked, long pixel, __m512i planes, __mmask16 m) {
    if (blocked) return _mm512_maskz_loadu_ps(m, x + pixel * 16);
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, planes, x + pixel, 4);
}

AVX512 static inline void store_pixel(float *y, int blocked, long pixel, __m512i planes, __mmask16 m, __m512 v, int accumulate) {
    if (blocked) {
        float *p = y + pixel * 16;
        if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, p));
        _mm512_mask_storeu_ps(p, m, v);
    } else {
        float *p = y + pixel;
        if (accumulate) v = _mm512_add_ps(v, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, planes, p, 4));
        _mm512_mask_i32scatter_ps(p, m, planes, v, 4);
    }
}

// Offsets of the 16 channel planes of a plain slab.
AVX512 static inline __m512i plane_offsets(long plane) {
    return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                              _mm512_set1_epi32((int)plane));
}

// float32 -> bfloat16, rounded to nearest even (as vcvtneps2bf16, for finite values).
AVX512 static inline __m256i bfloat16(__m512 v) {
    __m512i bits = _mm512_castps_si512(v);
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    bits = _mm512_add_epi32(bits, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF)));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(bits, 16));
}

#define ADD _mm512_add_ps
#define SUB _mm512_sub_ps
#define MUL _mm512_mul_ps

AVX512 void sccam_winograd_input_slab(const float *x, int blocked, long channels, long height, long width, uint16_t *v,
                                      long element_stride, long row_stride,
                                      long first_tile_row, long tile_rows) {
    const __mmask16 m = LANES(channels);
    const __m512i planes = plane_offsets(height * width);
    const long tiles_x = (width + 1) / 2;
    for (long ty = first_tile_row; ty < first_tile_row + tile_rows; ty++) {
        for (long tx = 0; tx < tiles_x; tx++) {
            __m512 d[4][4], t[4][4];
            for (int i = 0; i < 4; i++) {
                const long y = 2 * ty - 1 + i;
                for (int j = 0; j < 4; j++) {
                    const long xx = 2 * tx - 1 + j;
                    d[i][j] = (y >= 0 && y < height && xx >= 0 && xx < width)
                        ? load_pixel(x, blocked, y * width + xx, planes, m) : _mm512_setzero_ps();
                }
            }
            // Bᵀ d: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3; then the same along columns.
            for (int j = 0; j < 4; j++) {
                t[0][j] = SUB(d[0][j], d[2][j]);
                t[1][j] = ADD(d[1][j], d[2][j]);
                t[2][j] = SUB(d[2][j], d[1][j]);
                t[3][j] = SUB(d[1][j], d[3][j]);
            }
            uint16_t *row = v + ((ty - first_tile_row) * tiles_x + tx) * row_stride;
            for (int i = 0; i < 4; i++) {
                const __m512 e[4] = {SUB(t[i][0], t[i][2]), ADD(t[i][1], t[i][2]), SUB(t[i][2], t[i][1]), SUB(t[i][1], t[i][3])};
                for (int j = 0; j < 4; j++) _mm256_storeu_si256((__m256i *)(row + (4 * i + j) * element_stride), bfloat16(e[j]));
            }
        }
    }
}

AVX512 void sccam_winograd_output_slab(const float *m, long element_stride, long row_stride, const float *bias, float *y,
                                       int blocked, long channels, long height, long width, long first_tile_row,
                                       long tile_rows, int accumulate) {
    const __mmask16 mask = LANES(channels);
    const __m512i planes = plane_offsets(height * width);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias) : _mm512_setzero_ps();
    const long tiles_x = (width + 1) / 2;
    for (long ty = first_tile_row; ty < first_tile_row + tile_rows; ty++) {
        for (long tx = 0; tx < tiles_x; tx++) {
            const float *row = m + ((ty - first_tile_row) * tiles_x + tx) * row_stride;
            __m512 s[2][4];
            // Aᵀ M: rows m0 + m1 + m2 and m1 - m2 - m3; then the same along columns.
            for (int j = 0; j < 4; j++) {
                const __m512 m0 = _mm512_loadu_ps(row + j * element_stride), m1 = _mm512_loadu_ps(row + (4 + j) * element_stride);
                const __m512 m2 = _mm512_loadu_ps(row + (8 + j) * element_stride);
                const __m512 m3 = _mm512_loadu_ps(row + (12 + j) * element_stride);
                s[0][j] = ADD(ADD(m0, m1), m2);
                s[1][j] = SUB(SUB(m1, m2), m3);
            }
            for (int r = 0; r < 2; r++) {
                const long yy = 2 * ty + r;
                if (yy >= height) break;
                const __m512 out[2] = {ADD(ADD(ADD(s[r][0], s[r][1]), s[r][2]), b), ADD(SUB(SUB(s[r][1], s[r][2]), s[r][3]), b)};
                for (int c = 0; c < 2; c++) {
                    const long xx = 2 * tx + c;
                    if (xx < width) store_pixel(y, blocked, yy * width + xx, planes, mask, out[c], accumulate);
                }
            }
        }
    }
}

AVX512 void sccam_winograd_gradient_slab(const float *dy, int blocked, long channels, long height, long width, uint16_t *dm,
                                         long element_stride, long row_stride,
                                         long first_tile_row, long tile_rows, float *sums) {
    const __mmask16 m = LANES(channels);
    const __m512i planes = plane_offsets(height * width);
    const long tiles_x = (width + 1) / 2;
    __m512 total = _mm512_setzero_ps();
    for (long ty = first_tile_row; ty < first_tile_row + tile_rows; ty++) {
        for (long tx = 0; tx < tiles_x; tx++) {
            __m512 g[2][2];
            for (int r = 0; r < 2; r++) {
                for (int c = 0; c < 2; c++) {
                    const long yy = 2 * ty + r, xx = 2 * tx + c;
                    g[r][c] = (yy < height && xx < width) ? load_pixel(dy, blocked, yy * width + xx, planes, m) : _mm512_setzero_ps();
                    total = ADD(total, g[r][c]);
                }
            }
            // A g: rows g0, g0 + g1, g0 - g1, -g1; then the same along columns.
            const __m512 zero = _mm512_setzero_ps();
            __m512 u[4][2];
            for (int c = 0; c < 2; c++) {
                u[0][c] = g[0][c];
                u[1][c] = ADD(g[0][c], g[1][c]);
                u[2][c] = SUB(g[0][c], g[1][c]);
                u[3][c] = SUB(zero, g[1][c]);
            }
            uint16_t *row = dm + ((ty - first_tile_row) * tiles_x + tx) * row_stride;
            for (int i = 0; i < 4; i++) {
                const __m512 e[4] = {u[i][0], ADD(u[i][0], u[i][1]), SUB(u[i][0], u[i][1]), SUB(zero, u[i][1])};
                for (int j = 0; j < 4; j++) _mm256_storeu_si256((__m256i *)(row + (4 * i + j) * element_stride), bfloat16(e[j]));
            }
        }
    }
    if (sums) _mm512_mask_storeu_ps(sums, m, ADD(_mm512_maskz_loadu_ps(m, sums), total));
}

AVX512 void sccam_winograd_input_gradient_slab(const float *dv, long element_stride, long row_stride, float *dx, int blocked,
                                               long channels, long height, long width, long first_tile_row,
                                               long tile_rows, int accumulate) {
    const __mmask16 m = LANES(channels);
    const long plane = height * width;
    const __m512i planes = plane_offsets(plane);
    const long tiles_x = (width + 1) / 2;
    for (long ty = first_tile_row; ty < first_tile_row + tile_rows; ty++) {
        // The windows overlap, so every tile adds: unless accumulating, the rows no earlier tile row reached start at zero.
        if (!accumulate) clear_new_rows(dx, blocked, channels, height, width, ty, 2);
        for (long tx = 0; tx < tiles_x; tx++) {
            const float *row = dv + ((ty - first_tile_row) * tiles_x + tx) * row_stride;
            __m512 e[4][4];
            // B dV: rows dV0, dV1 - dV2 + dV3, dV1 + dV2 - dV0, -dV3; then the same along columns.
            const __m512 zero = _mm512_setzero_ps();
            for (int j = 0; j < 4; j++) {
                const __m512 v0 = _mm512_loadu_ps(row + j * element_stride), v1 = _mm512_loadu_ps(row + (4 + j) * element_stride);
                const __m512 v2 = _mm512_loadu_ps(row + (8 + j) * element_stride);
                const __m512 v3 = _mm512_loadu_ps(row + (12 + j) * element_stride);
                e[0][j] = v0;
                e[1][j] = ADD(SUB(v1, v2), v3);
                e[2][j] = SUB(ADD(v1, v2), v0);
                e[3][j] = SUB(zero, v3);
            }
            for (int i = 0; i < 4; i++) {
                const long yy = 2 * ty - 1 + i;
                if (yy < 0 || yy >= height) continue;
                const __m512 out[4] = {e[i][0], ADD(SUB(e[i][1], e[i][2]), e[i][3]), SUB(ADD(e[i][1], e[i][2]), e[i][0]),
                                       SUB(zero, e[i][3])};
                for (int j = 0; j < 4; j++) {
                    const long xx = 2 * tx - 1 + j;
                    if (xx >= 0 && xx < width) store_pixel(dx, blocked, yy * width + xx, planes, m, out[j], 1);
                }
            }
        }
    }
}

AVX512 void sccam_winograd_weight_tile(const float *w, long outputs, long inputs, long first_output, long first_input, uint16_t *u,
                                       long element_stride, long row_stride) {
    // Row o of the tile (16 outputs) holds 9 taps per input, contiguous: read
    // 16-column blocks of the 16 rows and transpose them in registers, so that
    // each column (input, tap) becomes one vector over the 16 outputs.
    const long count = inputs - first_input < 16 ? inputs - first_input : 16, columns = count * 9;
    float by_column[144][16] __attribute__((aligned(64)));
    for (long block = 0; block * 16 < columns; block++) {
        const __mmask16 m = LANES(columns - block * 16);
#define LOAD_ROW(R) v##R = first_output + R < outputs \
            ? _mm512_maskz_loadu_ps(m, w + ((first_output + R) * inputs + first_input) * 9 + block * 16) : _mm512_setzero_ps();
#define STORE_COLUMN(R) _mm512_store_ps(by_column[block * 16 + R], v##R);
        FOR16(DECLARE)
        FOR16(LOAD_ROW)
        TRANSPOSE16()
        if (columns - block * 16 >= 16) {
            FOR16(STORE_COLUMN)
        } else {
            float spill[16][16] __attribute__((aligned(64)));
#define SPILL(R) _mm512_store_ps(spill[R], v##R);
            FOR16(SPILL)
            for (long r = 0; r < columns - block * 16; r++) memcpy(by_column[block * 16 + r], spill[r], sizeof spill[r]);
#undef SPILL
        }
#undef LOAD_ROW
#undef STORE_COLUMN
    }
    const __m512 half = _mm512_set1_ps(0.5f);
    for (long i = 0; i < count; i++) {
        __m512 g[3][3], t[4][3];
        for (int k = 0; k < 9; k++) g[k / 3][k % 3] = _mm512_load_ps(by_column[i * 9 + k]);
        // G g: rows g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2; then the same along columns.
        for (int j = 0; j < 3; j++) {
            t[0][j] = g[0][j];
            t[1][j] = MUL(ADD(ADD(g[0][j], g[1][j]), g[2][j]), half);
            t[2][j] = MUL(ADD(SUB(g[0][j], g[1][j]), g[2][j]), half);
            t[3][j] = g[2][j];
        }
        uint16_t *row = u + (first_input + i) * row_stride;
        for (int r = 0; r < 4; r++) {
            const __m512 e[4] = {t[r][0], MUL(ADD(ADD(t[r][0], t[r][1]), t[r][2]), half),
                                 MUL(ADD(SUB(t[r][0], t[r][1]), t[r][2]), half), t[r][2]};
            for (int j = 0; j < 4; j++) {
                _mm256_storeu_si256((__m256i *)(row + (4 * r + j) * element_stride), bfloat16(e[j]));
            }
        }
    }
}

AVX512 void sccam_winograd_weight_gradient_row(const float *du, long element_stride, long input, float *dw, int blocked,
                                               long outputs, long inputs, int accumulate) {
    const __m512i kernels = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                               _mm512_set1_epi32((int)(inputs * 9)));
    const __m512 half = _mm512_set1_ps(0.5f);
    for (long o = 0; o < outputs; o += 16) {
        const __mmask16 m = LANES(outputs - o);
        __m512 r[3][4];
        // Gᵀ dU: rows u0 + (u1 + u2) / 2, (u1 - u2) / 2, (u1 + u2) / 2 + u3; then the same along columns.
        for (int j = 0; j < 4; j++) {
            const __m512 u0 = _mm512_loadu_ps(du + j * element_stride + o), u1 = _mm512_loadu_ps(du + (4 + j) * element_stride + o);
            const __m512 u2 = _mm512_loadu_ps(du + (8 + j) * element_stride + o);
            const __m512 u3 = _mm512_loadu_ps(du + (12 + j) * element_stride + o);
            const __m512 sum = MUL(ADD(u1, u2), half);
            r[0][j] = ADD(u0, sum);
            r[1][j] = MUL(SUB(u1, u2), half);
            r[2][j] = ADD(sum, u3);
        }
        for (int i = 0; i < 3; i++) {
            const __m512 sum = MUL(ADD(r[i][1], r[i][2]), half);
            const __m512 k3[3] = {ADD(r[i][0], sum), MUL(SUB(r[i][1], r[i][2]), half), ADD(sum, r[i][3])};
            for (int j = 0; j < 3; j++) {
                const int k = 3 * i + j;
                __m512 v = k3[j];
                if (blocked) {
                    float *p = dw + ((((o >> 4) * (inputs >> 4) + (input >> 4)) * 9 + k) << 8) + ((input & 15) << 4);
                    if (accumulate) v = ADD(v, _mm512_loadu_ps(p));
                    _mm512_storeu_ps(p, v);
                } else {
                    float *p = dw + (o * inputs + input) * 9 + k;
                    if (accumulate) v = ADD(v, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, kernels, p, 4));
                    _mm512_mask_i32scatter_ps(p, m, kernels, v, 4);
                }
            }
        }
    }
}
