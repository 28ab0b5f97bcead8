#include "winograd_f32.h"
#include "winograd_pixels.h"

// The arithmetic of every F(2x2, 3x3) transform is written once, below, in
// the order of winograd_bf16.c, so both precisions round their transforms alike.
AVX2 void sccam_winograd_f32_input_slab(const float *x, int blocked, long channels, long height, long width, float *v,
                                        long element_stride, long row_stride, long first_tile_row, long tile_rows) {
    const long plane = height * width, tiles_x = (width + 1) / 2;
    for (long ty = first_tile_row; ty < first_tile_row + tile_rows; ty++) {
        for (long tx = 0; tx < tiles_x; tx++) {
            v16 d[4][4], t[4][4];
            for (int i = 0; i < 4; i++) {
                const long y = 2 * ty - 1 + i;
                for (int j = 0; j < 4; j++) {
                    const long xx = 2 * tx - 1 + j;
                    d[i][j] = (y >= 0 && y < height && xx >= 0 && xx < width)
                        ? load_pixel(x, blocked, y * width + xx, plane, channels) : (v16){0};
                }
            }
            // Bᵀ d: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3; then the same along columns.
            for (int j = 0; j < 4; j++) {
                t[0][j] = d[0][j] - d[2][j];
                t[1][j] = d[1][j] + d[2][j];
                t[2][j] = d[2][j] - d[1][j];
                t[3][j] = d[1][j] - d[3][j];
            }
            float *row = v + ((ty - first_tile_row) * tiles_x + tx) * row_stride;
            for (int i = 0; i < 4; i++) {
                const v16 e[4] = {t[i][0] - t[i][2], t[i][1] + t[i][2], t[i][2] - t[i][1], t[i][1] - t[i][3]};
                for (int j = 0; j < 4; j++) store(row + (4 * i + j) * element_stride, e[j]);
            }
        }
    }
}

AVX2 void sccam_winograd_f32_output_slab(const float *m, long element_stride, long row_stride, const float *bias, float *y,
                                         int blocked, long channels, long height, long width, long first_tile_row,
                                         long tile_rows, int accumulate) {
    const long plane = height * width, tiles_x = (width + 1) / 2;
    v16 b = {0};
    for (long r = 0; bias && r < channels; r++) b[r] = bias[r];
    for (long ty = first_tile_row; ty < first_tile_row + tile_rows; ty++) {
        for (long tx = 0; tx < tiles_x; tx++) {
            const float *row = m + ((ty - first_tile_row) * tiles_x + tx) * row_stride;
            v16 s[2][4];
            // Aᵀ M: rows m0 + m1 + m2 and m1 - m2 - m3; then the same along columns.
            for (int j = 0; j < 4; j++) {
                const v16 m0 = load(row + j * element_stride), m1 = load(row + (4 + j) * element_stride);
                const v16 m2 = load(row + (8 + j) * element_stride), m3 = load(row + (12 + j) * element_stride);
                s[0][j] = (m0 + m1) + m2;
                s[1][j] = (m1 - m2) - m3;
            }
            for (int r = 0; r < 2; r++) {
                const long yy = 2 * ty + r;
                if (yy >= height) break;
                const v16 out[2] = {((s[r][0] + s[r][1]) + s[r][2]) + b, ((s[r][1] - s[r][2]) - s[r][3]) + b};
                for (int c = 0; c < 2; c++) {
                    const long xx = 2 * tx + c;
                    if (xx < width) store_pixel(y, blocked, yy * width + xx, plane, channels, out[c], accumulate);
                }
            }
        }
    }
}

AVX2 void sccam_winograd_f32_gradient_slab(const float *dy, int blocked, long channels, long height, long width, float *dm,
                                           long element_stride, long row_stride, long first_tile_row, long tile_rows,
                                           float *sums) {
    const long plane = height * width, tiles_x = (width + 1) / 2;
    v16 total = {0};
    for (long ty = first_tile_row; ty < first_tile_row + tile_rows; ty++) {
        for (long tx = 0; tx < tiles_x; tx++) {
            v16 g[2][2];
            for (int r = 0; r < 2; r++) {
                for (int c = 0; c < 2; c++) {
                    const long yy = 2 * ty + r, xx = 2 * tx + c;
                    g[r][c] = (yy < height && xx < width) ? load_pixel(dy, blocked, yy * width + xx, plane, channels) : (v16){0};
                    total += g[r][c];
                }
            }
            // A g: rows g0, g0 + g1, g0 - g1, -g1; then the same along columns.
            v16 u[4][2];
            for (int c = 0; c < 2; c++) {
                u[0][c] = g[0][c];
                u[1][c] = g[0][c] + g[1][c];
                u[2][c] = g[0][c] - g[1][c];
                u[3][c] = -g[1][c];
            }
            float *row = dm + ((ty - first_tile_row) * tiles_x + tx) * row_stride;
            for (int i = 0; i < 4; i++) {
                const v16 e[4] = {u[i][0], u[i][0] + u[i][1], u[i][0] - u[i][1], -u[i][1]};
                for (int j = 0; j < 4; j++) store(row + (4 * i + j) * element_stride, e[j]);
            }
        }
    }
    for (long r = 0; sums && r < channels; r++) sums[r] += total[r];
}

AVX2 void sccam_winograd_f32_input_gradient_slab(const float *dv, long element_stride, long row_stride, float *dx, int blocked,
                                                 long channels, long height, long width, long first_tile_row,
                                                 long tile_rows, int accumulate) {
    const long plane = height * width, tiles_x = (width + 1) / 2;
    for (long ty = first_tile_row; ty < first_tile_row + tile_rows; ty++) {
        // The windows overlap, so every tile adds: unless accumulating, the rows no earlier tile row reached start at zero.
        if (!accumulate) clear_new_rows(dx, blocked, channels, height, width, ty, 2);
        for (long tx = 0; tx < tiles_x; tx++) {
            const float *row = dv + ((ty - first_tile_row) * tiles_x + tx) * row_stride;
            v16 e[4][4];
            // B dV: rows dV0, dV1 - dV2 + dV3, dV1 + dV2 - dV0, -dV3; then the same along columns.
            for (int j = 0; j < 4; j++) {
                const v16 v0 = load(row + j * element_stride), v1 = load(row + (4 + j) * element_stride);
                const v16 v2 = load(row + (8 + j) * element_stride), v3 = load(row + (12 + j) * element_stride);
                e[0][j] = v0;
                e[1][j] = (v1 - v2) + v3;
                e[2][j] = (v1 + v2) - v0;
                e[3][j] = -v3;
            }
            for (int i = 0; i < 4; i++) {
                const long yy = 2 * ty - 1 + i;
                if (yy < 0 || yy >= height) continue;
                const v16 out[4] = {e[i][0], (e[i][1] - e[i][2]) + e[i][3], (e[i][1] + e[i][2]) - e[i][0], -e[i][3]};
                for (int j = 0; j < 4; j++) {
                    const long xx = 2 * tx - 1 + j;
                    if (xx >= 0 && xx < width) store_pixel(dx, blocked, yy * width + xx, plane, channels, out[j], 1);
                }
            }
        }
    }
}

AVX2 void sccam_winograd_f32_weight_tile(const float *w, long outputs, long inputs, long first_output, long first_input, float *u,
                                         long element_stride, long row_stride) {
    // Each (input, tap) of the tile as one vector over its 16 outputs (`weight_columns`).
    const long count = inputs - first_input < 16 ? inputs - first_input : 16, columns = count * 9;
    float by_column[144][16] __attribute__((aligned(32)));
    weight_columns(w, outputs, inputs, first_output, first_input, columns, by_column);
    const v16 half = (v16){0} + 0.5f;
    for (long i = 0; i < count; i++) {
        v16 g[3][3];
        for (int k = 0; k < 9; k++) g[k / 3][k % 3] = load(by_column[i * 9 + k]);
        v16 t[4][3];
        // G g: rows g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2; then the same along columns.
        for (int j = 0; j < 3; j++) {
            t[0][j] = g[0][j];
            t[1][j] = ((g[0][j] + g[1][j]) + g[2][j]) * half;
            t[2][j] = ((g[0][j] - g[1][j]) + g[2][j]) * half;
            t[3][j] = g[2][j];
        }
        float *row = u + (first_input + i) * row_stride;
        for (int r = 0; r < 4; r++) {
            const v16 e[4] = {t[r][0], ((t[r][0] + t[r][1]) + t[r][2]) * half, ((t[r][0] - t[r][1]) + t[r][2]) * half, t[r][2]};
            for (int j = 0; j < 4; j++) store(row + (4 * r + j) * element_stride, e[j]);
        }
    }
}

AVX2 void sccam_winograd_f32_weight_gradient_row(const float *du, long element_stride, long input, float *dw, int blocked,
                                                 long outputs, long inputs, int accumulate) {
    const v16 half = (v16){0} + 0.5f;
    for (long o = 0; o < outputs; o += 16) {
        const long lanes = outputs - o < 16 ? outputs - o : 16;
        v16 r[3][4];
        // Gᵀ dU: rows u0 + (u1 + u2) / 2, (u1 - u2) / 2, (u1 + u2) / 2 + u3; then the same along columns.
        for (int j = 0; j < 4; j++) {
            const v16 u0 = load(du + j * element_stride + o), u1 = load(du + (4 + j) * element_stride + o);
            const v16 u2 = load(du + (8 + j) * element_stride + o), u3 = load(du + (12 + j) * element_stride + o);
            const v16 sum = (u1 + u2) * half;
            r[0][j] = u0 + sum;
            r[1][j] = (u1 - u2) * half;
            r[2][j] = sum + u3;
        }
        for (int i = 0; i < 3; i++) {
            const v16 sum = (r[i][1] + r[i][2]) * half;
            const v16 k3[3] = {r[i][0] + sum, (r[i][1] - r[i][2]) * half, sum + r[i][3]};
            for (int j = 0; j < 3; j++) store_weight_gradient(dw, blocked, o, lanes, input, inputs, 3 * i + j, k3[j], accumulate);
        }
    }
}
