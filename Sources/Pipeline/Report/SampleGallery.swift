import Data
import Formats
import Foundation
import Workflow

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

    static func sections(_ layout: WorkLayout, dataset: (any SegmentationDataset)?, samples: Int) -> String {
        guard samples > 0, let dataset else { return "" }
        var html = ""
        let groundTruth = Column(title: "ground truth", picture: { id in groundTruthPicture(id: id, dataset: dataset) })
        let image = Column(title: "image", type: "image/jpeg", path: dataset.imagePath)
        if let round = camsRound(layout) {
            let cams = layout.inference(round: round), pseudo = layout.pseudoLabels.colour
            let hasPseudoLabels = FileManager.default.fileExists(atPath: pseudo.path)
            let ids = ids(in: hasPseudoLabels ? pseudo : cams.overlays, count: samples)
            var columns = [image,
                           Column(title: "CAMs R\(round) (image, then one map per class)", path: cams.overlays.png),
                           Column(title: "CAM mask R\(round)", path: cams.masks.png)]
            if hasPseudoLabels { columns.append(Column(title: "pseudo-label", path: pseudo.png)) }
            columns.append(groundTruth)
            html += table("Training images", ids: ids, columns: columns)
        }
        let segmentation = layout.segmentation(crf: false).colour, withCRF = layout.segmentation(crf: true).colour
        if FileManager.default.fileExists(atPath: segmentation.path) {
            var columns = [image, Column(title: "segmentation", path: segmentation.png)]
            if FileManager.default.fileExists(atPath: withCRF.path) { columns.append(Column(title: "segmentation + CRF", path: withCRF.png)) }
            columns.append(groundTruth)
            html += table("Validation images", ids: ids(in: segmentation, count: samples), columns: columns)
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
    static func camsRound(_ layout: WorkLayout) -> Int? {
        func hasOverlays(_ round: Int) -> Bool { FileManager.default.fileExists(atPath: layout.inference(round: round).overlays.path) }
        if let data = FileManager.default.contents(atPath: layout.pseudoLabels.scores),
           let round = ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])?["cams_round"] as? Int, hasOverlays(round) {
            return round
        }
        return ((try? FileManager.default.contentsOfDirectory(atPath: layout.inference)) ?? [])
            .compactMap(WorkLayout.inferredRound(folderName:)).filter(hasOverlays).max()
    }

    static func ids(in folder: ImageFolder, count: Int) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return Array(names.filter { $0.hasSuffix(".png") && !$0.hasPrefix(".") }.map { String($0.dropLast(4)) }.sorted().prefix(count))
    }

    /// Palette masks show as they are; grey class-id masks (SegmentationClassAug,
    /// COCO's) are given the VOC palette first.
    static func groundTruthPicture(id: String, dataset: any SegmentationDataset) -> String {
        let title = "ground truth: \(id)"
        guard let path = dataset.groundTruthPath(id) else { return "" }
        guard var mask = try? PNG.readIndexed(path) else { return ReportPage.image(path, type: "image/png", title: title) }
        if mask.palette != nil { return ReportPage.image(path, type: "image/png", title: title) }
        let grey = path
        mask.palette = VOCPalette.colors
        guard let bytes = try? PNG.encode(mask) else { return ReportPage.image(grey, type: "image/png", title: title) }
        return "<img alt=\"\(ReportPage.escape(title))\" title=\"\(ReportPage.escape(title))\" src=\"data:image/png;base64,\(Data(bytes).base64EncodedString())\">"
    }
}
