// Register-only multiply-add loops: the practical peak of one core, the
// physical anchor the benchmarks relate their GFLOP/s to.
#ifndef SCCAM_FMA_PEAK_H
#define SCCAM_FMA_PEAK_H

/// Number of independent accumulators each loop keeps in registers.
#define SCCAM_PEAK_ACCUMULATORS 12

/// Floats per vector of the widest FMA this CPU runs (16 with AVX-512F, 8 with AVX2 + FMA), 0 without FMA.
int sccam_fma_lanes(void);

/// Runs `iterations` rounds of 12 independent vector FMAs at that width,
/// accumulator[i] = accumulator[i] * multiplier + addend, starting from
/// start[i] in every lane, and writes each accumulator's lane sum to sums[i].
/// Each round is 12 * lanes * 2 floating-point operations. Start values and
/// constants arrive at run time on purpose: with constants the compiler can
/// prove some accumulators are fixed points of the FMA and drop them (clang
/// dropped half), which doubled the "peak".
void sccam_fma_loop(long iterations, const float *start, float multiplier, float addend, float *sums);

/// 1 when the CPU has AVX512_BF16's dot product (VDPBF16PS), else 0.
int sccam_bf16_dot_available(void);

/// Runs `iterations` rounds of 12 independent VDPBF16PS on 16-float vectors,
/// accumulator[i] += 2 * bf16(a) * bf16(b) per lane, starting from start[i],
/// and writes each accumulator's lane sum to sums[i]. Each round is
/// 12 * 16 * 4 floating-point operations (two multiply-adds per lane).
void sccam_bf16_dot_loop(long iterations, const float *start, float a, float b, float *sums);

#endif
