import Distributed
import Foundation

// What `sccam bench ...` prints of each measurement: the command only runs
// the benchmark and prints these lines.

/// The best of a series of timings after the first (which includes planning memory and primitives).
func bestAfterFirst(_ times: [Double]) -> Double { (times.count > 1 ? Array(times.dropFirst()) : times).min()! }

extension RefineBenchmark.Report {
    public var lines: [String] {
        [String(format: "image %dx%d, grid of %d cells, %.1f entries per column of T", width, height, cells, meanColumnEntries),
         String(format: "AffinityNet forward: %.2f s; transition: %.4f s", networkSeconds, transitionSeconds),
         String(format: "walk, sparse (256 products, float64): %.4f s", sparseWalkSeconds),
         String(format: "walk, dense (8 squarings, float32 sgemm, %.0f GFLOP): %.2f s = %.1f GFLOP/s, %.2fx this machine's sgemm (%.1f GFLOP/s)",
                denseGFLOP, denseWalkSeconds, denseGFLOP / denseWalkSeconds, denseGFLOP / denseWalkSeconds / sgemmGFLOPS, sgemmGFLOPS),
         String(format: "dense / sparse walk: %.0fx; per image (network + transition + walk): %.2f s fast, %.2f s dense",
                denseWalkSeconds / sparseWalkSeconds, networkSeconds + transitionSeconds + sparseWalkSeconds,
                networkSeconds + transitionSeconds + denseWalkSeconds),
         String(format: "the two walks differ by %.1e relative; labels agree on %.4f of the pixels", maxRelativeDifference, labelsAgree)]
    }
}

extension AffinityTrainingBenchmark.Report {
    public func lines(batch: Int, crop: Int, widthDivisor: Int) -> [String] {
        let best = bestAfterFirst(secondsPerStep)
        return [String(format: "train-aff step, batch %d at %d, width 1/%d: %.2f s (best after the first), %.0f GFLOP = %.1f GFLOP/s, %.2fx sgemm (%.1f GFLOP/s)",
                       batch, crop, widthDivisor, best, gflopPerStep, gflopPerStep / best, gflopPerStep / best / sgemmGFLOPS, sgemmGFLOPS),
                String(format: "workspace %.2f GB, peak resident %.2f GB", Double(workspaceBytes) / 1e9, Double(peakResidentBytes) / 1e9)]
    }
}

extension SegmentationBenchmark.Report {
    public func lines(batch: Int, crop: Int, testSize: Int, widthDivisor: Int) -> [String] {
        let train = bestAfterFirst(trainSeconds), test = bestAfterFirst(testSeconds)
        return [String(format: "train-seg step, batch %d at %d, width 1/%d: %.2f s, %.1f GFLOP = %.1f GFLOP/s, %.2fx sgemm (%.1f GFLOP/s)",
                       batch, crop, widthDivisor, train, trainGFLOP, trainGFLOP / train, trainGFLOP / train / sgemmGFLOPS, sgemmGFLOPS),
                String(format: "segment forward (MSC) at %d: %.2f s, %.1f GFLOP = %.1f GFLOP/s, %.2fx sgemm",
                       testSize, test, testGFLOP, testGFLOP / test, testGFLOP / test / sgemmGFLOPS),
                String(format: "peak resident %.2f GB", Double(peakResidentBytes) / 1e9)]
    }
}

extension TrainingBenchmark.Result {
    public func lines(ranks: Int, threads: Int, globalBatch: Int, exchange settings: GradientExchange.Settings) -> [String] {
        var lines = [String(format: "train: %d rank(s) x %d thread(s), global batch %d: %.2f s/step, %.3f images/s, %.1f%% of the step waiting for allreduce",
                            ranks, threads, globalBatch, secondsPerStep, imagesPerSecond, 100 * communicationFraction)]
        if !phaseSecondsPerStep.isEmpty {
            let profiled = phaseSecondsPerStep.reduce(0) { $0 + $1.seconds }
            lines.append("per step (rank 0): " + phaseSecondsPerStep.map { String(format: "%@ %.3f s", $0.phase.name, $0.seconds) }
                .joined(separator: ", ") + String(format: ", the rest %.3f s", secondsPerStep - profiled))
        }
        guard ranks > 1 else { return lines }
        lines.append(String(format: "exchange: %.0f MB of gradients, %@ wire, %d MB buckets, %@; exchanged with nothing computing: %.3f s",
                            Double(gradientBytes) / 1e6, settings.wireFormat.rawValue, settings.bucketBytes >> 20,
                            settings.progress.rawValue, allreduceAloneSeconds))
        if let statistics = exchange, statistics.steps > 0 {
            lines.append(String(format: "exchange thread (rank 0): %.3f s of CPU per step; %.1f of %.1f buckets per step still queued when backward ended",
                                statistics.threadCPUSeconds / Double(statistics.steps),
                                Double(statistics.bucketsPendingAtBackwardEnd) / Double(statistics.steps),
                                Double(statistics.buckets) / Double(statistics.steps)))
        }
        return lines
    }
}
