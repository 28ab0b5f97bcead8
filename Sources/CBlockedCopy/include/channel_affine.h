#ifndef SCCAM_CHANNEL_AFFINE_H
#define SCCAM_CHANNEL_AFFINE_H

// The per-channel passes between convolutions (frozen BatchNorm, ReLU) on one
// slab: 16 channels of one image, `plane` pixels each, read and written in
// any layout. A plain slab points at its first channel's plane, channel r
// `r * plane` further; a blocked slab holds pixel i's channels in blocks:
// `blocked` is the block's channels, 16 (nChw16c: all 16 at `i * 16`) or 8
// (nChw8c, oneDNN's AVX2 layout: channel r at `r / 8 * 8 * plane + i * 8 + r % 8`);
// 0 is plain. On AVX-512, crossing between plain and nChw16c costs nothing
// extra: the 16 x 16 tiles are transposed in registers on the way.

// y = relu(x * scale + shift) (without relu: the affine map alone). x and y
// may be the same memory when their layouts are the same.
void sccam_affine_slab(const float *x, int x_blocked, float *y, int y_blocked, const float *scale, const float *shift,
                       long plane, int relu);

// dx (+)= dy * scale where y > 0 (with y = NULL: everywhere). y and dy share
// one layout, dx has its own; dx may be dy's memory when the layouts are the same.
void sccam_affine_gradient_slab(const float *y, const float *dy, int dy_blocked, float *dx, int dx_blocked,
                                const float *scale, long plane, int accumulate);

// v = 0 where the channel's multiplier is 0, else v * multiplier, in place:
// a channel dropout's 16 multipliers (0 or 1 / (1 - p)) on one slab. Run on a
// slab just written, or just before it is read, it finds the slab in the cache.
void sccam_dropout_slab(float *v, int blocked, const float *multipliers, long plane);

#endif
