#ifndef SCCAM_CHANNEL_AFFINE_H
#define SCCAM_CHANNEL_AFFINE_H

// The per-channel passes between convolutions (frozen BatchNorm, ReLU) on one
// slab: 16 channels of one image, `plane` pixels each, read and written in
// either layout. A plain slab points at its first channel's plane, channel r
// `r * plane` further; a blocked slab (nChw16c) holds pixel i's 16 channels at
// `i * 16`. Crossing layouts costs nothing extra: the 16 x 16 tiles are
// transposed in registers on the way, so no separate reorder pass is needed.

// y = relu(x * scale + shift) (without relu: the affine map alone). x and y
// may be the same memory when their layouts are the same.
void sccam_affine_slab(const float *x, int x_blocked, float *y, int y_blocked, const float *scale, const float *shift,
                       long plane, int relu);

// dx (+)= dy * scale where y > 0 (with y = NULL: everywhere). y and dy share
// one layout, dx has its own; dx may be dy's memory when the layouts are the same.
void sccam_affine_gradient_slab(const float *y, const float *dy, int dy_blocked, float *dx, int dx_blocked,
                                const float *scale, long plane, int accumulate);

#endif
