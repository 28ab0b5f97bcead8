#ifndef SCCAM_RESIDUAL_SUM_H
#define SCCAM_RESIDUAL_SUM_H

// The residual sum that closes a ResNet-101 bottleneck unit, on one slab (16
// channels of one image, `plane` pixels each; see channel_affine.h), with
// every tensor in the same layout: plain (channel r's plane `r * plane` on)
// or blocked, `blocked` channels per block (16 or 8, as in channel_affine.h).

// y = relu(x * scale + shift + residual): the unit's last frozen BatchNorm,
// the sum and its ReLU in one pass (the roundings of the three passes it
// replaces). y may be x's or residual's memory.
void sccam_affine_add_relu_slab(const float *x, const float *residual, float *y, int blocked, const float *scale,
                                const float *shift, long plane);

// Backward of that from y: g = dy where y > 0, else 0 (the sum's gradient,
// into dsum, which may be dy's memory) and g * scale (the BatchNorm input's
// gradient, into dpre).
void sccam_residual_gradient_slab(const float *y, const float *dy, float *dsum, float *dpre, int blocked,
                                  const float *scale, long plane);

#endif
