#ifndef SCCAM_LANES_H
#define SCCAM_LANES_H
#include <immintrin.h>

// Mask of the first n (at most 16) lanes of a 16-float vector.
#define LANES(N) ((N) >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (N)) - 1))

#endif
