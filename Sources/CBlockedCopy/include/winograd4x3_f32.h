#ifndef SCCAM_WINOGRAD4X3_F32_H
#define SCCAM_WINOGRAD4X3_F32_H

// Winograd F(4x4, 3x3) transforms in float32 for CPUs with AVX2 and FMA: the
// arguments and layouts of winograd_f32.h, with 36 Winograd-domain elements
// (element 6 i + j of a 6x6 tile) and 4x4 output tiles. 4x fewer multiplies
// than the direct convolution where F(2x2, 3x3) has 2.25x, at float32 errors
// a few times larger (the transforms' constants reach 1/30 and 8; the points
// are chosen for accuracy, winograd4x3_f32.c).

void sccam_winograd4x3_f32_input_slab(const float *x, int blocked, long channels, long height, long width, float *v,
                                      long element_stride, long row_stride, long first_tile_row, long tile_rows);

void sccam_winograd4x3_f32_output_slab(const float *m, long element_stride, long row_stride, const float *bias, float *y,
                                       int blocked, long channels, long height, long width, long first_tile_row,
                                       long tile_rows, int accumulate);

void sccam_winograd4x3_f32_gradient_slab(const float *dy, int blocked, long channels, long height, long width, float *dm,
                                         long element_stride, long row_stride, long first_tile_row, long tile_rows, float *sums);

void sccam_winograd4x3_f32_input_gradient_slab(const float *dv, long element_stride, long row_stride, float *dx, int blocked,
                                               long channels, long height, long width, long first_tile_row,
                                               long tile_rows, int accumulate);

void sccam_winograd4x3_f32_weight_tile(const float *w, long outputs, long inputs, long first_output, long first_input, float *u,
                                       long element_stride, long row_stride);

void sccam_winograd4x3_f32_weight_gradient_row(const float *du, long element_stride, long input, float *dw, int blocked,
                                               long outputs, long inputs, int accumulate);

#endif
