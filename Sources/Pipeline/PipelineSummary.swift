import Foundation
import Workflow

extension SCCAMPipeline.Summary {
    /// What a finished run prints: the scores of every round's CAMs, the
    /// pseudo-labels' and the segmentation network's, and where they are.
    public func lines(work: String, validationList: String) -> [String] {
        let layout = WorkLayout(work)
        var lines = [String(format: "pipeline finished: %d stage(s) run, %d already done, in %.1f s", stagesRun, stagesSkipped, seconds)]
        guard !scores.isEmpty else { return lines }
        let crf = scores.contains { $0.crfMeanIoU != nil }
        lines.append("round  mIoU (threshold)      best threshold  best mIoU" + (crf ? "  dCRF mIoU" : ""))
        for score in scores {
            lines.append(String(format: "R%-5d %.4f (%.2f)         %.2f            %.4f", score.round, score.meanIoU, score.threshold,
                                score.bestThreshold, score.bestMeanIoU) + (score.crfMeanIoU.map { String(format: "     %.4f", $0) } ?? ""))
        }
        if let pseudo = pseudoLabelMeanIoU {
            let best = scores.map { max($0.meanIoU, $0.bestMeanIoU) }.max() ?? .nan
            let folders = layout.pseudoLabels
            lines.append(String(format: "pseudo-labels after the random walk: mIoU %.4f (best CAM masks above: %.4f; %+.4f)", pseudo, best, pseudo - best))
            lines.append("pseudo-labels: \(folders.labels.png("{id}")) (grey class ids), \(layout.relative(folders.colour.path))/ and \(layout.relative(folders.overlays!.path))/ beside them; scores in \(layout.relative(folders.scores))")
        }
        if let segmentation = segmentationMeanIoU {
            let folders = layout.segmentation(crf: false)
            lines.append(String(format: "segmentation network (DeepLab-v2) on %@: mIoU %.4f", validationList, segmentation)
                         + (segmentationCRFMeanIoU.map { String(format: ", with the CRF %.4f", $0) } ?? ""))
            lines.append("segmentation: \(folders.labels.png("{id}")), \(layout.relative(folders.colour.path))/ and \(layout.relative(folders.overlays!.path))/ beside them; scores in \(layout.relative(folders.scores))")
        }
        lines.append("scores: \(layout.inference)/R{round}/scores.json; masks and overlays beside them; stages: \(layout.runRecord)")
        return lines
    }
}
