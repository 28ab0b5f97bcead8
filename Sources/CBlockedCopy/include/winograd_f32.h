#ifndef SCCAM_WINOGRAD_F32_H
#define SCCAM_WINOGRAD_F32_H

// Winograd F(2x2, 3x3) transforms in float32 for CPUs with AVX2 and FMA,
// where oneDNN 2.6 has no Winograd kernels of its own: the same matrices,
// layouts and arguments as winograd_bf16.h, with float32 Winograd-domain
// matrices (element_stride and row_stride in floats) so that the products run
// on oneDNN's float32 matmul. Activations take one more layout: `blocked` is
// the channels per block, 0 (plain), 16 (nChw16c) or 8 (nChw8c, oneDNN's AVX2
// layout, a slab's two blocks 8 x plane floats apart); the weight gradient's
// `blocked` is a flag for OIhw16i16o, as in winograd_bf16.h.

void sccam_winograd_f32_input_slab(const float *x, int blocked, long channels, long height, long width, float *v,
                                   long element_stride, long row_stride, long first_tile_row, long tile_rows);

void sccam_winograd_f32_output_slab(const float *m, long element_stride, long row_stride, const float *bias, float *y,
                                    int blocked, long channels, long height, long width, long first_tile_row,
                                    long tile_rows, int accumulate);

void sccam_winograd_f32_gradient_slab(const float *dy, int blocked, long channels, long height, long width, float *dm,
                                      long element_stride, long row_stride, long first_tile_row, long tile_rows, float *sums);

void sccam_winograd_f32_input_gradient_slab(const float *dv, long element_stride, long row_stride, float *dx, int blocked,
                                            long channels, long height, long width, long first_tile_row,
                                            long tile_rows, int accumulate);

void sccam_winograd_f32_weight_tile(const float *w, long outputs, long inputs, long first_output, long first_input, float *u,
                                    long element_stride, long row_stride);

void sccam_winograd_f32_weight_gradient_row(const float *du, long element_stride, long input, float *dw, int blocked,
                                            long outputs, long inputs, int accumulate);

#endif
