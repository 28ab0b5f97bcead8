import Foundation
import Kernels

/// Times the network's forward pass and training step and relates the
/// achieved convolution throughput to this machine's own large-sgemm rate,
/// measured in the same run with the same threads.
public enum NetworkBenchmark {
    public struct Case: Codable, Sendable {
        public let pass: String
        public let batch: Int
        public let seconds: [Double]
        public let medianSeconds: Double
        public let imagesPerSecond: Double
        public let gflops: Double
        public let ratioToSGEMM: Double
    }

    public struct Report: Codable, Sendable {
        public let widthDivisor: Int
        public let size: Int
        public let threads: Int
        public let blasCore: String
        public let sgemmGFLOPS: Double
        public let forwardGFLOPPerImage: Double
        public let trainGFLOPPerImage: Double
        public let cases: [Case]
        public let peakResidentBytes: Int
    }

    /// Peak resident memory of this process so far, from the kernel.
    public static func peakResidentBytes() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }

    public static func run(widthDivisor: Int, size: Int, batches: [Int], iterations: Int,
                           progress: (String) -> Void) -> Report {
        let sgemm = GEMMProbe.measure(size: 2048, seconds: 1.5).gflops
        progress(String(format: "sgemm 2048: %.1f GFLOP/s on %d thread(s) (%@)", sgemm, Parallel.threadCount, BLASRuntime.coreName))
        let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: widthDivisor, round: 1))
        network.initializeBackbone(seed: 1)
        let forwardFLOP = 2 * Double(network.backboneMACs(height: size, width: size).total)
        let trainFLOP = 2 * Double(network.trainingMACs(height: size, width: size))
        var cases: [Case] = []
        for batch in batches {
            let input = (0..<(batch * 3 * size * size)).map { Float(($0 % 251)) / 125 - 1 }
            var targets20 = [Float](repeating: 0, count: batch * 20), targets200 = [Float](repeating: 0, count: batch * 200)
            for n in 0..<batch { targets20[n * 20 + n % 20] = 1; targets200[n * 200 + (n % 20) * 10] = 1 }
            for pass in ["forward", "train step"] {
                var times: [Double] = []
                // One untimed warm-up pass plans and first-touches the workspace.
                for iteration in 0...iterations {
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
                    if iteration > 0 { times.append(seconds) }
                }
                let median = times.sorted()[times.count / 2]
                let flop = (pass == "forward" ? forwardFLOP : trainFLOP) * Double(batch)
                let gflops = flop / median / 1e9
                let result = Case(pass: pass, batch: batch, seconds: times, medianSeconds: median,
                                  imagesPerSecond: Double(batch) / median, gflops: gflops, ratioToSGEMM: gflops / sgemm)
                cases.append(result)
                progress(String(format: "%@ batch %d: %.2f s, %.2f images/s, %.1f GFLOP/s, %.0f%% of sgemm",
                                pass, batch, median, result.imagesPerSecond, gflops, 100 * result.ratioToSGEMM))
            }
        }
        return Report(widthDivisor: widthDivisor, size: size, threads: Parallel.threadCount, blasCore: BLASRuntime.coreName,
                      sgemmGFLOPS: sgemm, forwardGFLOPPerImage: forwardFLOP / 1e9, trainGFLOPPerImage: trainFLOP / 1e9,
                      cases: cases, peakResidentBytes: peakResidentBytes())
    }
}
