#ifndef SCCAM_SLAB_RUNS_H
#define SCCAM_SLAB_RUNS_H

// BODY(E, K) for every element E of a 16-channel slab (see channel_affine.h),
// in a function with `blocked`, `plane`, `scale` and `shift` (NULL where it
// has none) in scope, where s[K] and t[K] are element E's channel's scale and
// shift. Blocked slabs run in runs of 16 floats under a 16-entry table of the
// run's scales: one pixel's 16 channels (nChw16c) or two pixels' 8 (nChw8c,
// the block's 8 scales twice), so that every run is two whole AVX2 vectors
// (runs of 8 ran at half the speed); an odd pixel count leaves an nChw8c
// block one 8-float tail. Plain slabs run per channel over its plane.
#define SLAB_RUNS(BODY) \
    if (blocked) { \
        const long blocks = 16 / blocked, runs = plane * blocked / 16, tail = plane * blocked % 16; \
        for (long b = 0; b < blocks; b++) { \
            float s[16], t[16]; \
            for (long k = 0; k < 16; k++) { s[k] = scale[b * blocked + k % blocked]; t[k] = shift ? shift[b * blocked + k % blocked] : 0; } \
            const long base = b * blocked * plane; \
            for (long run = 0; run < runs; run++) { \
                _Pragma("clang loop vectorize(assume_safety)") for (long k = 0; k < 16; k++) BODY(base + run * 16 + k, k) \
            } \
            for (long k = 0; k < tail; k++) BODY(base + runs * 16 + k, k) \
        } \
    } else { \
        for (long channel = 0; channel < 16; channel++) { \
            float s[1] = {scale[channel]}, t[1] = {shift ? shift[channel] : 0}; \
            _Pragma("clang loop vectorize(assume_safety)") for (long i = 0; i < plane; i++) BODY(channel * plane + i, 0) \
        } \
    }

#endif
