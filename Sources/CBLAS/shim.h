// OpenBLAS's CBLAS interface plus its runtime controls (thread count, core name,
// build configuration). Debian installs cblas.h under openblas-pthread/, which
// pkg-config's include path points at.
#ifndef SCCAM_CBLAS_SHIM_H
#define SCCAM_CBLAS_SHIM_H

#include <cblas.h>

#endif
