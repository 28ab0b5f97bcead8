import Data
import Formats
import Foundation
import Workflow

/// `WORK/report.html`: one self-contained page (no external resources: the
/// pictures are embedded, the charts are inline SVG) that a researcher opens
/// after a run. It shows every stage with its time and numbers, the mIoU of
/// each round's CAMs, the pseudo-labels and the segmentation network, per class,
/// the training curves from `logs/metrics.jsonl`, and sample images side by side.
///
/// It reads only what the run wrote, so it can be made again at any time
/// (`sccam report WORK`), also for a run that is still going or that stopped.
public enum RunReport {
    /// Writes the report into `work` atomically and returns its path.
    @discardableResult
    public static func write(work: String, samples: Int = 6) throws -> String {
        let path = WorkLayout(work).report
        try AtomicFile.write(try html(work: work, samples: samples), to: path)
        return path
    }

    public static func html(work: String, samples: Int = 6) throws -> String {
        let layout = WorkLayout(work)
        guard let record = try RunRecord.read(layout.runRecord) else {
            throw FormatError(path: layout.runRecord, "does not exist: the report describes a pipeline or demo run; run `sccam pipeline` or `sccam demo` with --work \(work) first")
        }
        let scores = ScoreColumns.read(layout)
        var page = ReportPage(title: "SC-CAM run: \((work as NSString).lastPathComponent)")
        page.add(summary(record, work: work, scores: scores))
        let dataset = try? openDataset(record.settings.datasetKind, root: record.settings.datasetRoot)
        page.add(classTable(scores, names: dataset?.classNames ?? VOCClasses.names))
        page.add(stageTable(record))
        page.add(TrainingCurves.section(metrics: layout.metricsLog,
                                        trainings: record.stages.map(\.name).filter { $0.hasPrefix("train") }))
        page.add(SampleGallery.sections(layout, dataset: dataset, samples: samples))
        return page.rendered()
    }

    // MARK: Sections

    static func summary(_ record: RunRecord, work: String, scores: [ScoreColumns.Column]) -> String {
        let settings = record.settings
        let seconds = record.stages.compactMap(\.seconds).reduce(0, +)
        let done = record.stages.filter { $0.status == "done" }.count
        var facts: [(String, String)] = [
            ("work folder", work), ("dataset", "\(settings.datasetKind.rawValue.uppercased()) at \(settings.datasetRoot)"),
            ("stages", "\(done) of \(record.stages.count) done, \(ReportPage.duration(seconds)) in all"),
            ("rounds", "\(settings.rounds), k = \(settings.k) sub-categories per class"),
            ("classifier", "width 1/\(settings.widthDivisor), crop \(settings.crop), global batch \(settings.batch), seed \(settings.seed)"),
        ]
        if let precision = settings.convolutionPrecision { facts.append(("convolutions", precision.rawValue)) }
        if let wire = settings.gradientExchange { facts.append(("gradient exchange", wire.rawValue)) }
        var html = "<h2>Summary</h2>\n<table class=\"facts\">\n"
        for (key, value) in facts { html += "<tr><th>\(ReportPage.escape(key))</th><td>\(ReportPage.escape(value))</td></tr>\n" }
        html += "</table>\n"
        guard !scores.isEmpty else { return html + "<p>No scores yet: no evaluation has finished.</p>\n" }
        html += "<table class=\"scores\">\n<tr><th>result</th><th>mIoU</th><th>note</th></tr>\n"
        for column in scores {
            html += "<tr><td>\(ReportPage.escape(column.title))</td><td class=\"number\">\(String(format: "%.4f", column.meanIoU))</td>"
                + "<td>\(ReportPage.escape(column.note))</td></tr>\n"
        }
        return html + "</table>\n"
    }

    static func classTable(_ columns: [ScoreColumns.Column], names objects: [String]) -> String {
        guard !columns.isEmpty else { return "" }
        let names = ["background"] + objects
        var html = "<h2>IoU per class</h2>\n<table class=\"iou\">\n<tr><th>class</th>"
            + columns.map { "<th>\(ReportPage.escape($0.title))</th>" }.joined() + "</tr>\n"
        for (index, name) in names.enumerated() where columns.contains(where: { index < $0.classIoU.count && $0.classIoU[index] != nil }) {
            html += "<tr><td>\(name)</td>"
            for column in columns {
                let value = index < column.classIoU.count ? column.classIoU[index] : nil
                html += value.map { "<td class=\"number\" style=\"background:\(ReportPage.shade($0))\">\(String(format: "%.3f", $0))</td>" }
                    ?? "<td class=\"absent\">-</td>"
            }
            html += "</tr>\n"
        }
        html += "<tr class=\"mean\"><td>mean</td>" + columns.map { "<td class=\"number\">\(String(format: "%.3f", $0.meanIoU))</td>" }.joined() + "</tr>\n"
        return html + "</table>\n<p class=\"note\">Classes absent from the ground truth of the scored images are left out; the mean is over the classes present, as the reference computes it.</p>\n"
    }

    static func stageTable(_ record: RunRecord) -> String {
        var html = "<h2>Stages</h2>\n<table class=\"stages\">\n<tr><th>stage</th><th>status</th><th>time</th><th>numbers</th></tr>\n"
        for stage in record.stages {
            let numbers = (stage.result?.numbers ?? [:]).sorted { $0.key < $1.key }.map { key, value in
                "\(key) " + (value == value.rounded() && abs(value) < 1e9 ? String(Int(value)) : String(format: "%.4g", value))
            }.joined(separator: ", ")
            html += "<tr><td>\(ReportPage.escape(stage.name))</td><td class=\"\(stage.status == "done" ? "done" : "running")\">\(ReportPage.escape(stage.status))</td>"
                + "<td class=\"number\">\(stage.seconds.map(ReportPage.duration) ?? "-")</td><td>\(ReportPage.escape(numbers))</td></tr>\n"
        }
        return html + "</table>\n"
    }
}

/// The scored results of a run, each with its per-class IoU, in the order the method makes them.
enum ScoreColumns {
    struct Column {
        let title: String
        let meanIoU: Double
        let classIoU: [Double?]
        let note: String
    }

    static func read(_ layout: WorkLayout) -> [Column] {
        var columns: [Column] = []
        let rounds = ((try? FileManager.default.contentsOfDirectory(atPath: layout.inference)) ?? [])
            .compactMap(WorkLayout.inferredRound(folderName:)).sorted()
        for round in rounds {
            guard let json = object(layout.inference(round: round).scores), let column = column("CAMs R\(round)", json) else { continue }
            let threshold = (json["threshold"] as? Double).map { String(format: "threshold %.2f", $0) } ?? ""
            let best = (json["best_miou"] as? Double).map { miou in
                String(format: "; best %.4f at threshold %.2f (found with the ground truth)", miou, json["best_threshold"] as? Double ?? .nan)
            } ?? ""
            columns.append(Column(title: column.title, meanIoU: column.meanIoU, classIoU: column.classIoU, note: threshold + best))
        }
        if let json = object(layout.pseudoLabels.scores), let column = column("pseudo-labels", json) {
            let round = (json["cams_round"] as? Int).map { "the random walk of round \($0)'s CAMs" } ?? "the random walk"
            columns.append(Column(title: column.title, meanIoU: column.meanIoU, classIoU: column.classIoU, note: round))
        }
        for (crf, title, note) in [(false, "segmentation", "DeepLab-v2 on the validation list"),
                                   (true, "segmentation + CRF", "DeepLab-v2 with the dense CRF")] {
            if let json = object(layout.segmentation(crf: crf).scores), let column = column(title, json) {
                columns.append(Column(title: column.title, meanIoU: column.meanIoU, classIoU: column.classIoU, note: note))
            }
        }
        return columns
    }

    private static func column(_ title: String, _ json: [String: Any]) -> Column? {
        guard let miou = json["miou"] as? Double else { return nil }
        let perClass = (json["class_iou"] as? [Any] ?? []).map { $0 as? Double }
        return Column(title: title, meanIoU: miou, classIoU: perClass, note: "")
    }

    private static func object(_ path: String) -> [String: Any]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }
}
