#include "winograd4x3_f32.h"
#include "winograd_pixels.h"

// Winograd F(4x4, 3x3): 6x6 input tiles, 36 Winograd-domain elements, 4x4
// output tiles. The interpolation points are 0, 1, -1, 1/2, -2 and infinity,
// not Lavin and Gray's 0, 1, -1, 2, -2: Barabasz et al. (2020) found these the
// most accurate in float32, and here they halved the error against float64
// (mean 1.5e-6 -> 0.9e-6 of the largest output over 256 channels; the worst
// case 3.8e-6 -> 1.5e-6), which held AffinityNet's golden affinities inside
// 1e-5. Bᵀ's rows are scaled to integers (by 1 or 2: powers of two round
// nothing), so every non-dyadic constant (thirds, fifteenths) sits in G,
// which runs once per network pass in float64. Each 2-D transform is a 1-D
// transform down the columns and then the same along the rows, each written
// with its shared partial sums.

// Bᵀ d for one column (or row) of six.
AVX2 static inline void input_1d(const v16 d[6], v16 t[6]) {
    const v16 e = d[3] - d[1], f = d[4] - d[2];
    const v16 a = 2 * f + 3 * d[3], b = 2 * e + 3 * d[2];
    t[0] = (2 * (d[0] + d[4]) - 4 * d[2]) + 3 * e;
    t[1] = a + b;
    t[2] = a - b;
    t[3] = 2 * e + f;
    t[4] = 2 * f - e;
    t[5] = (2 * (d[1] + d[5]) - 4 * d[3]) + 3 * f;
}

// Aᵀ m: six Winograd-domain values to four outputs.
AVX2 static inline void output_1d(const v16 m[6], v16 s[4]) {
    const v16 p = m[1] + m[2], q = m[1] - m[2];
    s[0] = (m[0] + p) + (m[3] + m[4]);
    s[1] = q + (0.5f * m[3] - 2 * m[4]);
    s[2] = p + (0.25f * m[3] + 4 * m[4]);
    s[3] = (q + (0.125f * m[3] - 8 * m[4])) + m[5];
}

// A g: four output gradients to six Winograd-domain values.
AVX2 static inline void gradient_1d(const v16 g[4], v16 e[6]) {
    const v16 a = g[0] + g[2], b = g[1] + g[3];
    e[0] = g[0];
    e[1] = a + b;
    e[2] = a - b;
    e[3] = (g[0] + 0.25f * g[2]) + (0.5f * g[1] + 0.125f * g[3]);
    e[4] = (g[0] + 4 * g[2]) - (2 * g[1] + 8 * g[3]);
    e[5] = g[3];
}

// B v: six Winograd-domain input gradients to six input pixels (input_1d transposed).
AVX2 static inline void input_gradient_1d(const v16 v[6], v16 o[6]) {
    const v16 p = v[1] + v[2], q = v[1] - v[2];
    const v16 e = (3 * v[0] + 2 * q) + (2 * v[3] - v[4]), f = (3 * v[5] + 2 * p) + (v[3] + 2 * v[4]);
    o[0] = 2 * v[0];
    o[1] = 2 * v[5] - e;
    o[2] = (3 * q - 4 * v[0]) - f;
    o[3] = (3 * p - 4 * v[5]) + e;
    o[4] = 2 * v[0] + f;
    o[5] = 2 * v[5];
}

// G g without G's denominators (2, 6, 6, -15, 30, 2; `weight_scale`): three
// taps to six Winograd-domain values, in float64. The weights are transformed
// once per network pass, so U is computed nearly exactly and rounded once on
// the way out: rounding it in float32 at each step (multiplying by rounded
// sixths and fifteenths) moved a golden's gradient by 2%, through a ReLU.
typedef double v16d __attribute__((vector_size(128)));
AVX2 static inline void weight_1d(const v16d g[3], v16d u[6]) {
    const v16d a = g[0] + g[2];
    u[0] = g[0];
    u[1] = a + g[1];
    u[2] = g[1] - a;
    u[3] = (16 * g[0] + 8 * g[1]) + 4 * g[2];
    u[4] = (g[0] - 2 * g[1]) + 4 * g[2];
    u[5] = g[2];
}

// G's row denominators, as reciprocals: element (r, j) of U is scaled by
// weight_scale[r] * weight_scale[j] (a multiplication: divisions took most of
// the weight transform's time).
static const double weight_scale[6] = {1.0 / 2, 1.0 / 6, 1.0 / 6, -1.0 / 15, 1.0 / 30, 1.0 / 2};

// Gᵀ v: six Winograd-domain weight gradients to three taps.
AVX2 static inline void weight_gradient_1d(const v16 v[6], v16 o[3]) {
    const v16 p = v[1] + v[2], q = v[1] - v[2];
    o[0] = (0.5f * v[0] + q * (1.0f / 6)) + (v[4] * (1.0f / 30) - v[3] * (16.0f / 15));
    o[1] = p * (1.0f / 6) - (v[3] * (8.0f / 15) + v[4] * (1.0f / 15));
    o[2] = (q * (1.0f / 6) + 0.5f * v[5]) + (v[4] * (2.0f / 15) - v[3] * (4.0f / 15));
}

AVX2 void sccam_winograd4x3_f32_input_slab(const float *x, int blocked, long channels, long height, long width, float *v,
                                           long element_stride, long row_stride, long first_tile_row, long tile_rows) {
    const long plane = height * width, tiles_x = (width + 3) / 4;
    for (long ty = first_tile_row; ty < first_tile_row + tile_rows; ty++) {
        for (long tx = 0; tx < tiles_x; tx++) {
            v16 d[6][6], t[6][6];
            for (int j = 0; j < 6; j++) {
                const long xx = 4 * tx - 1 + j;
                v16 column[6];
                for (int i = 0; i < 6; i++) {
                    const long y = 4 * ty - 1 + i;
                    column[i] = (y >= 0 && y < height && xx >= 0 && xx < width)
                        ? load_pixel(x, blocked, y * width + xx, plane, channels) : (v16){0};
                }
                input_1d(column, t[j]);
            }
            // t[j][i] is column j's i-th value; the same transform along each row i.
            float *row = v + ((ty - first_tile_row) * tiles_x + tx) * row_stride;
            for (int i = 0; i < 6; i++) {
                for (int j = 0; j < 6; j++) d[i][j] = t[j][i];
                v16 e[6];
                input_1d(d[i], e);
                for (int j = 0; j < 6; j++) store(row + (6 * i + j) * element_stride, e[j]);
            }
        }
    }
}

AVX2 void sccam_winograd4x3_f32_output_slab(const float *m, long element_stride, long row_stride, const float *bias, float *y,
                                            int blocked, long channels, long height, long width, long first_tile_row,
                                            long tile_rows, int accumulate) {
    const long plane = height * width, tiles_x = (width + 3) / 4;
    v16 b = {0};
    for (long r = 0; bias && r < channels; r++) b[r] = bias[r];
    for (long ty = first_tile_row; ty < first_tile_row + tile_rows; ty++) {
        for (long tx = 0; tx < tiles_x; tx++) {
            const float *row = m + ((ty - first_tile_row) * tiles_x + tx) * row_stride;
            v16 s[6][4];
            // Down each of the six columns j: s[j] holds its four output rows.
            for (int j = 0; j < 6; j++) {
                v16 column[6];
                for (int i = 0; i < 6; i++) column[i] = load(row + (6 * i + j) * element_stride);
                output_1d(column, s[j]);
            }
            for (int r = 0; r < 4; r++) {
                const long yy = 4 * ty + r;
                if (yy >= height) break;
                v16 across[6], out[4];
                for (int j = 0; j < 6; j++) across[j] = s[j][r];
                output_1d(across, out);
                for (int c = 0; c < 4; c++) {
                    const long xx = 4 * tx + c;
                    if (xx < width) store_pixel(y, blocked, yy * width + xx, plane, channels, out[c] + b, accumulate);
                }
            }
        }
    }
}

AVX2 void sccam_winograd4x3_f32_gradient_slab(const float *dy, int blocked, long channels, long height, long width, float *dm,
                                              long element_stride, long row_stride, long first_tile_row, long tile_rows,
                                              float *sums) {
    const long plane = height * width, tiles_x = (width + 3) / 4;
    v16 total = {0};
    for (long ty = first_tile_row; ty < first_tile_row + tile_rows; ty++) {
        for (long tx = 0; tx < tiles_x; tx++) {
            v16 u[4][6];
            // Along each of the four gradient rows r: u[r] holds its six Winograd-domain columns.
            for (int r = 0; r < 4; r++) {
                v16 g[4];
                for (int c = 0; c < 4; c++) {
                    const long yy = 4 * ty + r, xx = 4 * tx + c;
                    g[c] = (yy < height && xx < width) ? load_pixel(dy, blocked, yy * width + xx, plane, channels) : (v16){0};
                    total += g[c];
                }
                gradient_1d(g, u[r]);
            }
            float *row = dm + ((ty - first_tile_row) * tiles_x + tx) * row_stride;
            for (int j = 0; j < 6; j++) {
                v16 down[4], e[6];
                for (int r = 0; r < 4; r++) down[r] = u[r][j];
                gradient_1d(down, e);
                for (int i = 0; i < 6; i++) store(row + (6 * i + j) * element_stride, e[i]);
            }
        }
    }
    for (long r = 0; sums && r < channels; r++) sums[r] += total[r];
}

AVX2 void sccam_winograd4x3_f32_input_gradient_slab(const float *dv, long element_stride, long row_stride, float *dx, int blocked,
                                                    long channels, long height, long width, long first_tile_row,
                                                    long tile_rows, int accumulate) {
    const long plane = height * width, tiles_x = (width + 3) / 4;
    for (long ty = first_tile_row; ty < first_tile_row + tile_rows; ty++) {
        // The windows overlap, so every tile adds: unless accumulating, the rows no earlier tile row reached start at zero.
        if (!accumulate) clear_new_rows(dx, blocked, channels, height, width, ty, 4);
        for (long tx = 0; tx < tiles_x; tx++) {
            const float *row = dv + ((ty - first_tile_row) * tiles_x + tx) * row_stride;
            v16 e[6][6];
            // Down each column j: e[j] holds its six input rows.
            for (int j = 0; j < 6; j++) {
                v16 column[6];
                for (int i = 0; i < 6; i++) column[i] = load(row + (6 * i + j) * element_stride);
                input_gradient_1d(column, e[j]);
            }
            for (int i = 0; i < 6; i++) {
                const long yy = 4 * ty - 1 + i;
                if (yy < 0 || yy >= height) continue;
                v16 across[6], out[6];
                for (int j = 0; j < 6; j++) across[j] = e[j][i];
                input_gradient_1d(across, out);
                for (int j = 0; j < 6; j++) {
                    const long xx = 4 * tx - 1 + j;
                    if (xx >= 0 && xx < width) store_pixel(dx, blocked, yy * width + xx, plane, channels, out[j], 1);
                }
            }
        }
    }
}

AVX2 void sccam_winograd4x3_f32_weight_tile(const float *w, long outputs, long inputs, long first_output, long first_input,
                                            float *u, long element_stride, long row_stride) {
    // Each (input, tap) of the tile as one vector over its 16 outputs (`weight_columns`).
    const long count = inputs - first_input < 16 ? inputs - first_input : 16, columns = count * 9;
    float by_column[144][16] __attribute__((aligned(32)));
    weight_columns(w, outputs, inputs, first_output, first_input, columns, by_column);
    for (long i = 0; i < count; i++) {
        v16d t[3][6];
        // Along each kernel row k: t[k] holds its six Winograd-domain columns.
        for (int k = 0; k < 3; k++) {
            v16d g[3];
            for (int tap = 0; tap < 3; tap++) g[tap] = __builtin_convertvector(load(by_column[i * 9 + 3 * k + tap]), v16d);
            weight_1d(g, t[k]);
        }
        float *row = u + (first_input + i) * row_stride;
        for (int j = 0; j < 6; j++) {
            const v16d down[3] = {t[0][j], t[1][j], t[2][j]};
            v16d e[6];
            weight_1d(down, e);
            for (int r = 0; r < 6; r++) {
                const v16d scaled = e[r] * (weight_scale[r] * weight_scale[j]);
                store(row + (6 * r + j) * element_stride, __builtin_convertvector(scaled, v16));
            }
        }
    }
}

// Two passes over a chunk of outputs: along each Winograd-domain row i (six
// elements in, three kernel columns out), then down the columns. The single
// pass per 16 outputs held eighteen 16-float vectors, more than AVX2's sixteen
// registers, and spilled; the two passes hold nine each and ran 2.3x as fast
// on dU that sat in the cache. A chunk's 18 rows (36 KB) stay in L1 and L2.
enum { weight_gradient_chunk = 32 };
AVX2 void sccam_winograd4x3_f32_weight_gradient_row(const float *du, long element_stride, long input, float *dw, int blocked,
                                                    long outputs, long inputs, int accumulate) {
    for (long first = 0; first < outputs; first += 16 * weight_gradient_chunk) {
        const long rest = (outputs - first + 15) / 16;
        const long blocks = rest < weight_gradient_chunk ? rest : weight_gradient_chunk;
        v16 columns[6][3][weight_gradient_chunk];
        for (int i = 0; i < 6; i++) {
            const float *row = du + 6 * i * element_stride + first;
            for (long b = 0; b < blocks; b++) {
                v16 across[6], taps[3];
                for (int j = 0; j < 6; j++) across[j] = load(row + j * element_stride + 16 * b);
                weight_gradient_1d(across, taps);
                for (int kx = 0; kx < 3; kx++) columns[i][kx][b] = taps[kx];
            }
        }
        for (long b = 0; b < blocks; b++) {
            const long o = first + 16 * b, lanes = outputs - o < 16 ? outputs - o : 16;
            for (int kx = 0; kx < 3; kx++) {
                v16 down[6], taps[3];
                for (int i = 0; i < 6; i++) down[i] = columns[i][kx][b];
                weight_gradient_1d(down, taps);
                for (int ky = 0; ky < 3; ky++) {
                    store_weight_gradient(dw, blocked, o, lanes, input, inputs, 3 * ky + kx, taps[ky], accumulate);
                }
            }
        }
    }
}
