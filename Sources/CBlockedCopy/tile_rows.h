#ifndef SCCAM_TILE_ROWS_H
#define SCCAM_TILE_ROWS_H
#include <string.h>

// What the Winograd input-gradient transforms of every form and precision
// share: a tile row's windows overlap the previous tile row's, so each tile
// adds into the slab, and the rows that no earlier tile row reached start at
// zero. With `tile` output pixels a side, tile row ty's windows cover image
// rows tile * ty - 1 .. tile * ty + tile; tile row ty - 1 reached row tile * ty.
// Slabs are plain (channel r's plane at r * plane), nChw16c or nChw8c (the
// slab's two blocks 8 x plane floats apart), as in winograd_pixels.h.
static inline void clear_new_rows(float *x, int blocked, long channels, long height, long width, long ty, long tile) {
    const long first = ty == 0 ? 0 : tile * ty + 1;
    const long end = tile * ty + tile + 1 < height ? tile * ty + tile + 1 : height;
    if (first >= end) return;
    const long plane = height * width, count = (end - first) * width;
    if (blocked == 16) {
        memset(x + first * width * 16, 0, (size_t)count * 16 * sizeof(float));
    } else if (blocked == 8) {
        memset(x + first * width * 8, 0, (size_t)count * 8 * sizeof(float));
        memset(x + 8 * plane + first * width * 8, 0, (size_t)count * 8 * sizeof(float));
    } else {
        for (long r = 0; r < channels; r++) memset(x + r * plane + first * width, 0, (size_t)count * sizeof(float));
    }
}

#endif
