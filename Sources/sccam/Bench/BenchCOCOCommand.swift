import ArgumentParser
import Pipeline
import Benchmarks

struct BenchCOCO: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coco",
        abstract: "Time reading a COCO instances file and drawing its class masks, with peak memory.",
        discussion: """
            Reads the file --repeats times (what pycocotools' COCO(file) does: bench/coco-parse.sh runs both, \
            interleaved), then draws the coco2voc class masks of the first --masks images. \
            bench/make-coco-annotations.py writes a synthetic file of the real one's size.
            """)

    @OptionGroup var threads: ThreadOptions
    @Option(help: "The instances file.") var annotations: String
    @Option(help: "Times to read it; the best is reported.") var repeats = 1
    @Option(help: "Images whose class masks are drawn after reading.") var masks = 1000

    func run() throws {
        let job = Job.start(threads)
        job.run { try COCOBenchmark.run(annotations: annotations, repeats: repeats, maskImages: masks).lines.forEach(job.log) }
    }
}
