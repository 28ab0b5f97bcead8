import Foundation
import Kernels
import Network

/// Times the network's forward pass and training step and relates the
/// achieved convolution throughput to this machine's own large-sgemm rate,
/// measured in the same run with the same threads.
public enum NetworkBenchmark {
    /// One way of computing the convolutions that the bench times.
    public struct Variant: Sendable {
        public let path: ConvolutionPath
        /// oneDNN's algorithm for float32; in bf16 and on AVX2, Winograd is ours (`WinogradConvolution`) where it wins (ignored by im2col).
        public let algorithm: ConvolutionAlgorithm
        /// How oneDNN runs the dilated layers (ignored by im2col).
        public let dilated: DilatedConvolutions

        public init(_ path: ConvolutionPath, _ algorithm: ConvolutionAlgorithm = .direct, dilated: DilatedConvolutions = .auto) {
            self.path = path
            self.algorithm = algorithm
            self.dilated = dilated
        }

        /// How a network computes on this variant.
        public var compute: Compute {
            switch path {
            case .im2col: return Compute(threads: Parallel.threadCount, implementation: .im2col)
            case .oneDNN(let precision):
                return Compute(threads: Parallel.threadCount, precision: precision, algorithm: algorithm, dilatedConvolutions: dilated)
            }
        }

        /// "im2col", "oneDNN fp32 direct", "oneDNN fp32 winograd", "oneDNN bf16 winograd", each oneDNN one
        /// followed by ", dilated kernels" when its dilated layers run on oneDNN's dilated kernels.
        public var name: String {
            if path == .im2col { return path.shortName }
            let base = "\(path.shortName) \(algorithm.rawValue)"
            switch dilated {
            case .auto: return base
            case .phases: return base + ", all dilated layers on phases"
            case .dilated: return base + ", dilated kernels"
            }
        }
    }

    public struct Case: Codable, Sendable {
        public let pass: String
        /// The convolution path: "im2col", "oneDNN fp32 direct", "oneDNN fp32 winograd" or "oneDNN bf16".
        public let path: String
        public let batch: Int
        public let seconds: [Double]
        public let medianSeconds: Double
        /// The fastest pass: compared with the best sgemm probe, both sides
        /// are best-of-N, which is what a shared machine can reproduce.
        public let bestSeconds: Double
        public let imagesPerSecond: Double
        public let gflops: Double
        public let medianGFLOPS: Double
        public let ratioToSGEMM: Double
        /// The same ratio for the median pass.
        public let medianRatioToSGEMM: Double
        /// Best pass against its own precision's peak on the same threads:
        /// the FMA loop for float32, AVX512_BF16's dot product for native bf16.
        public let ratioToPeak: Double
        /// Which loop `ratioToPeak` relates to: "FMA" or "bf16 dot product".
        public let peakInstruction: String

        func relative(to sgemm: Double, peak: FMAPeak.Measurement) -> Case {
            Case(pass: pass, path: path, batch: batch, seconds: seconds, medianSeconds: medianSeconds, bestSeconds: bestSeconds,
                 imagesPerSecond: imagesPerSecond, gflops: gflops, medianGFLOPS: medianGFLOPS,
                 ratioToSGEMM: gflops / sgemm, medianRatioToSGEMM: medianGFLOPS / sgemm,
                 ratioToPeak: peak.gflops > 0 ? gflops / peak.gflops : 0, peakInstruction: peak.instruction.rawValue)
        }
    }

    public struct Report: Codable, Sendable {
        public let widthDivisor: Int
        public let size: Int
        public let threads: Int
        public let blasCore: String
        public let sgemmGFLOPS: Double
        public let fmaPeakGFLOPS: Double
        /// AVX512_BF16's dot-product peak; 0 where the CPU lacks it.
        public let bf16DotPeakGFLOPS: Double
        public let oneDNN: String
        public let forwardGFLOPPerImage: Double
        public let trainGFLOPPerImage: Double
        public let cases: [Case]
        /// The forward kernel of each distinct layer shape, per path (at the first batch size).
        public let layerKernels: [LayerKernelTable.Row]
        public let peakResidentBytes: Int
    }

    /// Peak resident memory of this process so far, from the kernel.
    public static func peakResidentBytes() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }

    /// Times every pass on every convolution path in `paths`, interleaved
    /// iteration by iteration so that a noisy machine slows all paths alike.
    public static func run(widthDivisor: Int, size: Int, batches: [Int], iterations: Int, paths: [Variant],
                           progress: (String) -> Void) -> Report {
        // The reference rate is the best of several short probes, taken before
        // and after the network runs: on a shared VM a single probe can read
        // low, which would flatter every ratio.
        func probe(_ count: Int) -> Double { (0..<count).map { _ in GEMMProbe.measure(size: 2048, seconds: 0.5).gflops }.max()! }
        var sgemm = probe(3)
        progress(String(format: "sgemm 2048: %.1f GFLOP/s on %d thread(s) (%@), best of 3 probes", sgemm,
                        Parallel.threadCount, BLASRuntime.coreName))
        var peak = FMAPeak.measure(.fma)
        progress(String(format: "FMA loop peak: %.1f GFLOP/s on %d thread(s) (%d-float vectors)", peak.gflops, peak.threads, peak.lanes))
        var bf16Peak = FMAPeak.measure(.bf16DotProduct)
        if bf16Peak.gflops > 0 {
            progress(String(format: "bf16 dot-product loop peak: %.1f GFLOP/s on %d thread(s)%@", bf16Peak.gflops, bf16Peak.threads,
                            DNNLRuntime.hasAMX ? " (oneDNN's bf16 runs on AMX tiles, which this loop does not measure)" : ""))
        }
        /// The loop a path's GFLOP/s is related to: bf16 runs on the dot product where the CPU has it.
        func peakFor(_ path: String) -> FMAPeak.Measurement {
            path.hasPrefix(ConvolutionPath.oneDNN(.bf16).shortName) && bf16Peak.gflops > 0 ? bf16Peak : peak
        }
        progress(DNNLRuntime.report(engine: (paths.first?.compute ?? Compute()).convolutionEngine))
        let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: widthDivisor, round: 1))
        network.initializeBackbone(seed: 1)
        let layerKernels = LayerKernelTable.rows(network.convolutionLayers(height: size, width: size), batch: batches.first ?? 1,
                                                 engines: paths.map { $0.compute.convolutionEngine })
        progress("Kernels per layer (forward, batch \(batches.first ?? 1)):\n"
                 + LayerKernelTable.text(layerKernels, engines: paths.map(\.name)))
        let forwardFLOP = 2 * Double(network.backboneMACs(height: size, width: size).total)
        let trainFLOP = 2 * Double(network.trainingMACs(height: size, width: size))
        var cases: [Case] = []
        for batch in batches {
            let input = (0..<(batch * 3 * size * size)).map { Float(($0 % 251)) / 125 - 1 }
            var targets20 = [Float](repeating: 0, count: batch * 20), targets200 = [Float](repeating: 0, count: batch * 200)
            for n in 0..<batch { targets20[n * 20 + n % 20] = 1; targets200[n * 200 + (n % 20) * 10] = 1 }
            for pass in ["forward", "train step"] {
                var times = [[Double]](repeating: [], count: paths.count)
                // Per path, seconds per profiler phase summed over the timed passes.
                var phases = [[Double]](repeating: [Double](repeating: 0, count: PhaseProfiler.Phase.allCases.count), count: paths.count)
                // One untimed warm-up pass per path plans and first-touches the workspace and the primitives.
                for iteration in 0...iterations {
                    for (index, variant) in paths.enumerated() {
                        network.compute = variant.compute
                        PhaseProfiler.reset()
                        let start = DispatchTime.now().uptimeNanoseconds
                        input.withUnsafeBufferPointer { input in
                            if pass == "forward" {
                                network.forward(input: input.baseAddress!, batch: batch, height: size, width: size)
                            } else {
                                let context = DropoutContext(random: CounterRandom(seed: 1), step: iteration, firstSampleIndex: 0)
                                network.forward(input: input.baseAddress!, batch: batch, height: size, width: size,
                                                mode: .training(dropout: context, inputGradient: false))
                                network.backward(targets: [targets20, targets200])
                            }
                        }
                        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                        if iteration > 0 {
                            times[index].append(seconds)
                            for (phase, seconds) in PhaseProfiler.seconds { phases[index][phase.rawValue] += seconds }
                        }
                    }
                }
                for (index, variant) in paths.enumerated() {
                    let path = variant.name
                    let sorted = times[index].sorted()
                    let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2]
                        : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
                    let best = sorted[0]
                    let flop = (pass == "forward" ? forwardFLOP : trainFLOP) * Double(batch)
                    let gflops = flop / best / 1e9
                    let result = Case(pass: pass, path: path, batch: batch, seconds: times[index], medianSeconds: median,
                                      bestSeconds: best, imagesPerSecond: Double(batch) / best, gflops: gflops,
                                      medianGFLOPS: flop / median / 1e9, ratioToSGEMM: 0, medianRatioToSGEMM: 0, ratioToPeak: 0,
                                      peakInstruction: "")
                        .relative(to: sgemm, peak: peakFor(path))
                    cases.append(result)
                    if PhaseProfiler.isEnabled {
                        let perPass = PhaseProfiler.Phase.allCases.filter { phases[index][$0.rawValue] > 0 }
                            .map { String(format: "%@ %.2f s", $0.name, phases[index][$0.rawValue] / Double(iterations)) }
                        progress("  \(path) per pass: " + perPass.joined(separator: ", ")
                                 + String(format: " (of %.2f s)", times[index].reduce(0, +) / Double(iterations)))
                        // The multiply-adds themselves, without the passes around them: how
                        // close the kernels come to the hardware, whatever the rest costs.
                        let kernelSeconds = (phases[index][PhaseProfiler.Phase.gemm.rawValue]
                            + phases[index][PhaseProfiler.Phase.oneDNNConvolution.rawValue]) / Double(iterations)
                        let kernelPeak = peakFor(path)
                        if kernelSeconds > 0, kernelPeak.gflops > 0 {
                            let kernelGFLOPS = flop / kernelSeconds / 1e9
                            progress(String(format: "  \(path) kernels alone: %.1f GFLOP/s, %.0f%% of the %@ peak",
                                            kernelGFLOPS, 100 * kernelGFLOPS / kernelPeak.gflops, kernelPeak.instruction.rawValue))
                        }
                    }
                    progress(String(format: "%@ batch %d, %@: best %.2f s (median %.2f s), %.2f images/s, %.1f GFLOP/s",
                                    pass, batch, path, best, median, result.imagesPerSecond, gflops))
                }
            }
        }
        let after = probe(2)
        let peakAfter = FMAPeak.measure(.fma)
        if peakAfter.gflops > peak.gflops { peak = peakAfter }
        let bf16PeakAfter = FMAPeak.measure(.bf16DotProduct)
        if bf16PeakAfter.gflops > bf16Peak.gflops { bf16Peak = bf16PeakAfter }
        if after > sgemm {
            progress(String(format: "sgemm 2048 after the runs: %.1f GFLOP/s; ratios below use it", after))
            sgemm = after
        }
        cases = cases.map { $0.relative(to: sgemm, peak: peakFor($0.path)) }
        for result in cases {
            let reference = cases.first { $0.pass == result.pass && $0.batch == result.batch && $0.path == Variant(.im2col).name }
            let speedUp = reference.map { String(format: ", %.2fx im2col", $0.bestSeconds / result.bestSeconds) } ?? ""
            progress(String(format: "%@ batch %d, %@: %.0f%% of sgemm (median pass: %.0f%%), %.0f%% of the %@ peak%@", result.pass,
                            result.batch, result.path, 100 * result.ratioToSGEMM, 100 * result.medianRatioToSGEMM,
                            100 * result.ratioToPeak, result.peakInstruction, speedUp))
        }
        return Report(widthDivisor: widthDivisor, size: size, threads: Parallel.threadCount, blasCore: BLASRuntime.coreName,
                      sgemmGFLOPS: sgemm, fmaPeakGFLOPS: peak.gflops, bf16DotPeakGFLOPS: bf16Peak.gflops,
                      oneDNN: "\(DNNLRuntime.version) \(DNNLRuntime.instructionSet)",
                      forwardGFLOPPerImage: forwardFLOP / 1e9, trainGFLOPPerImage: trainFLOP / 1e9,
                      cases: cases, layerKernels: layerKernels, peakResidentBytes: peakResidentBytes())
    }
}
