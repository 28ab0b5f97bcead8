#ifndef SCCAM_BLOCKED_COPY_H
#define SCCAM_BLOCKED_COPY_H

// Copies groups of 16 contiguous floats into 16 rows of a plain tensor (group
// j becomes column j of the 16 rows): the inner step of reading a weight
// gradient that oneDNN wrote in its 16-blocked layout (OIhw16i16o) in OIHW order.
//
// Columns are visited in `taps`-major order: column j = i * taps + k comes from
// group k * (width / taps) + i. With taps = 1 group j is column j (1x1
// weights); with taps = 9 nine 16 x 16 blocks, one per kernel tap, become a
// 16 x (16 * 9) tile of OIHW rows. width % taps == 0.
//
// rows[r * row_stride + j] = groups[group(j)][r] for r < 16, j < width.
void sccam_groups_to_rows(const float *groups, long width, long taps, float *rows, long row_stride);

#endif
