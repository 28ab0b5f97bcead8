// libpng. Only the simplified png_image_* API is used: the classic API reports
// errors by longjmp, which must never cross Swift frames.
#ifndef SCCAM_CPNG_SHIM_H
#define SCCAM_CPNG_SHIM_H

#include <png.h>

// PNG_IMAGE_SIZE and friends are function-like macros; these are the ones used.
static inline size_t sccam_png_image_row_stride(const png_image *image) {
    return (size_t)PNG_IMAGE_ROW_STRIDE(*image);
}
static inline size_t sccam_png_image_buffer_size(const png_image *image) {
    return (size_t)PNG_IMAGE_BUFFER_SIZE(*image, PNG_IMAGE_ROW_STRIDE(*image));
}
static inline int sccam_png_image_failed(const png_image *image) {
    return PNG_IMAGE_FAILED(*image);
}
static inline unsigned sccam_png_format_rgb(void) { return PNG_FORMAT_RGB; }
static inline unsigned sccam_png_format_gray(void) { return PNG_FORMAT_GRAY; }
static inline unsigned sccam_png_format_rgb_colormap(void) { return PNG_FORMAT_RGB_COLORMAP; }
static inline unsigned sccam_png_format_flag_colormap(void) { return PNG_FORMAT_FLAG_COLORMAP; }
static inline unsigned sccam_png_format_flag_color(void) { return PNG_FORMAT_FLAG_COLOR; }
static inline unsigned sccam_png_image_version(void) { return PNG_IMAGE_VERSION; }

#endif
