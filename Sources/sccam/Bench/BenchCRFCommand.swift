import ArgumentParser
import Benchmarks
import Foundation
import Pipeline

struct BenchCRF: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crf",
        abstract: "Time the dense CRF on a VOC-sized image (500x375).",
        discussion: """
            A photo-like 500x375 image with smooth synthetic probabilities, for each label count and \
            preset (psa: Gaussian 3,3, bilateral 80,13,10; deeplab: 1,3 and 67,3,4), on each thread \
            count: the lattice set-up, inference(10) and the time per mean-field iteration, best of \
            --repeats. Each repeat runs every thread count in turn, and the speed-up column is the \
            median over repeats of the paired per-image ratio to the first thread count. --write-inputs saves the image and probabilities so that another implementation \
            (pydensecrf) can be timed on exactly the same input.
            """)

    @OptionGroup var threads: ThreadOptions

    @Option(help: "Comma-separated label counts.") var labels: String = "3,21"
    @Option(help: "Comma-separated thread counts (default: 1 and the rank's threads).") var threadCounts: String?
    @Option(help: "Repeats; the best time is reported, and the median paired speed-up.") var repeats: Int = 5
    @Option(help: "Write image.png and probs_{L}.npy into this folder.") var writeInputs: String?

    func validate() throws {
        guard let counts: [Int] = ListArguments.values(labels), counts.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--labels must list positive label counts, e.g. 3,21")
        }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
    }

    func run() throws {
        let job = Job.start(threads)
        job.run {
            let labelCounts: [Int] = ListArguments.values(labels)!
            var threadList: [Int] = threadCounts.flatMap { ListArguments.values($0) } ?? Array(Set([1, job.threads.count])).sorted()
            threadList = threadList.filter { $0 >= 1 }
            let image = CRFBenchmark.image()
            let inputs = labelCounts.map { CRFBenchmark.probabilities(labels: $0) }
            if let writeInputs, job.isRoot {
                try PNG.write(image, to: "\(writeInputs)/image.png")
                for (count, p) in zip(labelCounts, inputs) {
                    try NPY.write(p, shape: [count, CRFBenchmark.height, CRFBenchmark.width], to: "\(writeInputs)/probs_\(count).npy")
                }
                job.log("wrote the inputs to \(writeInputs)")
            }
            job.log("crf: \(CRFBenchmark.width)x\(CRFBenchmark.height), best of \(repeats); each repeat runs every thread count in turn")
            job.log("speed-up: the median over repeats of the first thread count's s/image over this one's, in the same repeat")
            job.log("preset   labels threads  setup s  inference(10) s  s/iteration  s/image  speed-up  vertices (Gaussian, bilateral)")
            for (count, p) in zip(labelCounts, inputs) {
                for preset in CRFOptions.Preset.allCases {
                    let results = CRFBenchmark.run(labels: count, preset: preset.rawValue, parameters: preset.parameters, repeats: repeats,
                                                   threadCounts: threadList, image: image, probabilities: p)
                    for r in results {
                        let speedup = CRFBenchmark.pairedSpeedup(of: r, over: results[0])
                        job.log(preset.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0) + String(format: " %6d %7d  %7.3f  %15.3f  %11.4f  %7.3f  %7.2fx  %@", count, r.threads,
                                       r.setupSeconds, r.inferenceSeconds, r.secondsPerIteration, r.secondsPerImage, speedup,
                                       r.vertexCounts.map(String.init).joined(separator: ", ")))
                    }
                }
            }
            Parallel.setThreadCount(job.threads.count)
        }
    }
}
