import Formats
import Foundation

/// Sample images of a run side by side: for training images the image, the
/// CAMs, the CAM mask, the pseudo-label and the ground truth; for validation
/// images the image, the segmentation (with and without the CRF) and the
/// ground truth. The first `samples` ids in order, whatever the run reached.
enum SampleGallery {
    struct Column {
        let title: String
        /// The embedded picture of an id.
        let picture: (String) -> String

        /// A column of files, one per id.
        init(title: String, type: String = "image/png", path file: @escaping (String) -> String) {
            self.title = title
            picture = { id in ReportPage.image(file(id), type: type, title: "\(title): \(id)") }
        }

        init(title: String, picture: @escaping (String) -> String) {
            self.title = title
            self.picture = picture
        }
    }

    static func sections(work: String, vocRoot: String, samples: Int) -> String {
        guard samples > 0 else { return "" }
        var html = ""
        let groundTruth = Column(title: "ground truth", picture: { id in groundTruthPicture(id: id, vocRoot: vocRoot) })
        let image = Column(title: "image", type: "image/jpeg", path: { id in "\(vocRoot)/JPEGImages/\(id).jpg" })
        if let round = camsRound(work) {
            let cams = "\(work)/infer/R\(round)"
            let pseudo = FileManager.default.fileExists(atPath: "\(work)/refine_color")
            let ids = pseudo ? ids(in: "\(work)/refine_color", count: samples) : ids(in: "\(cams)/overlays", count: samples)
            var columns = [image,
                           Column(title: "CAMs R\(round) (image, then one map per class)", path: { "\(cams)/overlays/\($0).png" }),
                           Column(title: "CAM mask R\(round)", path: { "\(cams)/masks/\($0).png" })]
            if pseudo { columns.append(Column(title: "pseudo-label", path: { "\(work)/refine_color/\($0).png" })) }
            columns.append(groundTruth)
            html += table("Training images", ids: ids, columns: columns)
        }
        if FileManager.default.fileExists(atPath: "\(work)/segment_color") {
            var columns = [image, Column(title: "segmentation", path: { "\(work)/segment_color/\($0).png" })]
            if FileManager.default.fileExists(atPath: "\(work)/segment_crf_color") {
                columns.append(Column(title: "segmentation + CRF", path: { "\(work)/segment_crf_color/\($0).png" }))
            }
            columns.append(groundTruth)
            html += table("Validation images", ids: ids(in: "\(work)/segment_color", count: samples), columns: columns)
        }
        return html
    }

    static func table(_ title: String, ids: [String], columns: [Column]) -> String {
        guard !ids.isEmpty else { return "" }
        var html = "<h2>\(ReportPage.escape(title))</h2>\n<table class=\"gallery\">\n<tr><th>id</th>"
            + columns.map { "<th>\(ReportPage.escape($0.title))</th>" }.joined() + "</tr>\n"
        for id in ids {
            html += "<tr><td>\(ReportPage.escape(id))</td>"
            for column in columns { html += "<td>\(column.picture(id))</td>" }
            html += "</tr>\n"
        }
        return html + "</table>\n"
    }

    /// The round whose CAMs the random walk propagated, else the last round with overlays.
    static func camsRound(_ work: String) -> Int? {
        if let data = FileManager.default.contents(atPath: "\(work)/refine/scores.json"),
           let round = ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])?["cams_round"] as? Int,
           FileManager.default.fileExists(atPath: "\(work)/infer/R\(round)/overlays") {
            return round
        }
        return ((try? FileManager.default.contentsOfDirectory(atPath: "\(work)/infer")) ?? [])
            .compactMap { name -> Int? in name.hasPrefix("R") ? Int(name.dropFirst()) : nil }
            .filter { FileManager.default.fileExists(atPath: "\(work)/infer/R\($0)/overlays") }.max()
    }

    static func ids(in folder: String, count: Int) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return Array(names.filter { $0.hasSuffix(".png") && !$0.hasPrefix(".") }.map { String($0.dropLast(4)) }.sorted().prefix(count))
    }

    /// VOC's palette masks show as they are; the grey class-id masks of
    /// SegmentationClassAug are given VOC's palette first.
    static func groundTruthPicture(id: String, vocRoot: String) -> String {
        let title = "ground truth: \(id)"
        let palette = "\(vocRoot)/SegmentationClass/\(id).png"
        if FileManager.default.fileExists(atPath: palette) { return ReportPage.image(palette, type: "image/png", title: title) }
        let grey = "\(vocRoot)/SegmentationClassAug/\(id).png"
        guard var mask = try? PNG.readIndexed(grey) else { return ReportPage.image(grey, type: "image/png", title: title) }
        mask.palette = VOCPalette.colors
        guard let bytes = try? PNG.encode(mask) else { return ReportPage.image(grey, type: "image/png", title: title) }
        return "<img alt=\"\(ReportPage.escape(title))\" title=\"\(ReportPage.escape(title))\" src=\"data:image/png;base64,\(Data(bytes).base64EncodedString())\">"
    }
}
