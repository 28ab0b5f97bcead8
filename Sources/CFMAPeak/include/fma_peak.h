// A register-only fused multiply-add loop: the practical peak of one core,
// the physical anchor the benchmarks relate their GFLOP/s to.
#ifndef SCCAM_FMA_PEAK_H
#define SCCAM_FMA_PEAK_H

/// Floats per vector of the widest FMA this CPU runs (16 with AVX-512F, 8 with AVX2 + FMA), 0 without FMA.
int sccam_fma_lanes(void);

/// Runs `iterations` rounds of 12 independent vector FMAs at that width and
/// returns a value that depends on all of them (so the loop cannot be removed).
/// Each round is 12 * lanes * 2 floating-point operations.
float sccam_fma_loop(long iterations);

#endif
