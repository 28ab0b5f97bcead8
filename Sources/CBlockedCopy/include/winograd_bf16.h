#ifndef SCCAM_WINOGRAD_BF16_H
#define SCCAM_WINOGRAD_BF16_H

#include <stdint.h>

// The transforms of Winograd F(2x2, 3x3) (Lavin and Gray) around bf16
// matrix products: a 3x3 convolution with stride 1 and padding 1 becomes,
// for each of the 16 elements of a 4x4 tile, one product of a tiles x input
// channels matrix with an input x output channels one.
//
//   V = Bᵀ d B   (4x4 input tile, rows 2ty-1 .. 2ty+2)   U = G g Gᵀ   (3x3 kernel)
//   M = V U      (per element, summed over input channels)
//   y = Aᵀ M A   (2x2 output tile)
//
// Backward, with dM = A dy Aᵀ: the input gradient is B (dM Uᵀ) Bᵀ added into
// the overlapping 4x4 input windows, and the weight gradient Gᵀ (Vᵀ dM) G.
//
// Winograd-domain matrices are [element][row][column] with `element_stride`
// between the 16 elements and `row_stride` between rows; activations are
// slabs (16 channels of one image, see channel_affine.h): plain (channel r's
// plane `r * plane` on) or blocked (pixel i's 16 channels at `i * 16`), of
// which the first `channels` are real. bf16 values are rounded to nearest
// even. Every function needs AVX-512F.

// Every transform covers the tiles of one slab in the tile rows
// [first_tile_row, first_tile_row + tile_rows) (a whole image: 0 and
// ceil(H/2)): tile (ty, tx) is row (ty - first_tile_row) * ceil(W/2) + tx of
// its Winograd-domain matrix, whose pointer is that range's first tile and the
// slab's first channel. So an image can run a band of tile rows at a time
// through buffers that hold only the band (WinogradBands.swift).

// V rows for the tiles of one slab in those tile rows.
void sccam_winograd_input_slab(const float *x, int blocked, long channels, long height, long width, uint16_t *v,
                               long element_stride, long row_stride, long first_tile_row, long tile_rows);

// y (+)= Aᵀ M A (+ bias) for those tiles of one slab, cropped to the map.
void sccam_winograd_output_slab(const float *m, long element_stride, long row_stride, const float *bias, float *y,
                                int blocked, long channels, long height, long width, long first_tile_row,
                                long tile_rows, int accumulate);

// dM = A dy Aᵀ for the tiles of one slab in those tile rows (as in the input
// transform), and their sum of dy per channel added into sums[0..16) when sums is not NULL.
void sccam_winograd_gradient_slab(const float *dy, int blocked, long channels, long height, long width, uint16_t *dm,
                                  long element_stride, long row_stride, long first_tile_row, long tile_rows, float *sums);

// dx (+)= Σ over those tiles of B dV Bᵀ, each into its 4x4 input window, for
// one slab. The windows of neighbouring tile rows overlap: without
// `accumulate`, the rows that no earlier tile row reaches are cleared first,
// so an image's tile rows must then run in order from 0, one range after another.
void sccam_winograd_input_gradient_slab(const float *dv, long element_stride, long row_stride, float *dx, int blocked,
                                        long channels, long height, long width, long first_tile_row,
                                        long tile_rows, int accumulate);

// U = G g Gᵀ for a tile of 16 outputs from `first_output` (past `outputs`:
// zero) and up to 16 inputs from `first_input`, from OIHW weights (outputs x
// inputs x 3 x 3): u points at U's column first_output, and input i's row of
// element e lies at u + e * element_stride + i * row_stride.
void sccam_winograd_weight_tile(const float *w, long outputs, long inputs, long first_output, long first_input, uint16_t *u,
                                long element_stride, long row_stride);

// dw (+)= Gᵀ dU G for the weights of input channel `input`, from row `input`
// of dU (du[element * element_stride + o]); dw is OIHW or, with blocked,
// OIhw16i16o (outputs and inputs multiples of 16).
void sccam_winograd_weight_gradient_row(const float *du, long element_stride, long input, float *dw, int blocked,
                                        long outputs, long inputs, int accumulate);

#endif
