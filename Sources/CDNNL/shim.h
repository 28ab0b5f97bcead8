// oneDNN's C API (Debian's libdnnl-dev 2.6: headers in /usr/include/oneapi/dnnl,
// no pkg-config file) and the two OpenMP calls that set and read the thread
// count of its runtime: Debian builds oneDNN on GNU OpenMP, whose count is a
// per-thread setting that OMP_NUM_THREADS only seeds when the library loads.
#ifndef SCCAM_CDNNL_SHIM_H
#define SCCAM_CDNNL_SHIM_H

#include <oneapi/dnnl/dnnl.h>

void omp_set_num_threads(int count);
int omp_get_max_threads(void);
int omp_in_parallel(void);

// GNU OpenMP's own entry point for a parallel region (what `#pragma omp
// parallel num_threads(n)` compiles to with GCC): our element-wise loops run
// on the same thread team as oneDNN's primitives, so the two never compete
// for cores and the team's threads are already awake when a loop starts.
void GOMP_parallel(void (*body)(void *context), void *context, unsigned threads, unsigned flags);

/// The next task index of a parallel region's shared counter.
static inline long sccam_next_task(long *counter) {
    return __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

#endif
