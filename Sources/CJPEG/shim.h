// libjpeg-turbo's TurboJPEG API (the tj* functions of 2.x; the tj3* API is newer
// than Debian 12's 2.1.5).
#ifndef SCCAM_CJPEG_SHIM_H
#define SCCAM_CJPEG_SHIM_H

#include <turbojpeg.h>

#endif
