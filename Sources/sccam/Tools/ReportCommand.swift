import ArgumentParser
import Foundation
import Pipeline

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write WORK/report.html: a run's stages, scores, training curves and sample images on one page.",
        discussion: """
            One self-contained HTML file (pictures embedded, charts as inline SVG, no network or script \
            needed): every stage of run.json with its time and numbers; the mIoU of each round's CAMs, the \
            pseudo-labels and the segmentation network, per class; the loss of every training from \
            logs/metrics.jsonl; and sample training images (image, CAMs, CAM mask, pseudo-label, ground \
            truth) and validation images (image, segmentation with and without the CRF, ground truth) side \
            by side. `pipeline` and `demo` write it when they finish; this command writes it again, also for \
            a run still going or stopped.
            """)

    @Argument(help: "The work folder of a pipeline or demo run (it holds run.json).") var work: String
    @Option(help: "Sample images per gallery.") var samples: Int = 6

    func validate() throws {
        guard samples >= 0 else { throw ValidationError("--samples must be 0 or more") }
    }

    func run() throws {
        do {
            print("report: \(try RunReport.write(work: work, samples: samples))")
        } catch {
            FileHandle.standardError.write(Data("sccam: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
