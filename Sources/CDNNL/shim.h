// oneDNN's C API (Debian's libdnnl-dev 2.6: headers in /usr/include/oneapi/dnnl,
// no pkg-config file) and the two OpenMP calls that set and read the thread
// count of its runtime: Debian builds oneDNN on GNU OpenMP, whose count is a
// per-thread setting that OMP_NUM_THREADS only seeds when the library loads.
#ifndef SCCAM_CDNNL_SHIM_H
#define SCCAM_CDNNL_SHIM_H

#include <oneapi/dnnl/dnnl.h>

void omp_set_num_threads(int count);
int omp_get_max_threads(void);

#endif
