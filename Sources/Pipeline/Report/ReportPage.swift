import Foundation

/// The page the report's sections go into: one HTML file with its style
/// inline, readable without a network or a script.
struct ReportPage {
    let title: String
    private var sections: [String] = []

    init(title: String) { self.title = title }

    mutating func add(_ section: String) {
        if !section.isEmpty { sections.append(section) }
    }

    func rendered() -> String {
        let stamp = ISO8601DateFormatter().string(from: Date())
        return """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <title>\(Self.escape(title))</title>
            <style>
            body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; background: #fff; }
            h1 { font-size: 1.6em; margin-bottom: 0.2em; }
            h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ccc; }
            table { border-collapse: collapse; margin: 0.6em 0; }
            th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
            th { background: #f3f3f3; }
            td.number { text-align: right; font-variant-numeric: tabular-nums; }
            td.absent { color: #aaa; text-align: center; }
            td.done { color: #17692b; }
            td.running { color: #a15c00; }
            tr.mean td { font-weight: bold; }
            .note, .stamp { color: #666; font-size: 0.9em; }
            .charts { display: flex; flex-wrap: wrap; gap: 1em; }
            .charts figure { margin: 0; }
            figcaption { font-size: 0.9em; color: #444; }
            table.gallery td { text-align: center; }
            table.gallery img { image-rendering: pixelated; height: 128px; }
            </style>
            </head>
            <body>
            <h1>\(Self.escape(title))</h1>
            <p class="stamp">Written by sccam report at \(stamp).</p>
            \(sections.joined(separator: "\n"))
            </body>
            </html>

            """
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func duration(_ seconds: Double) -> String {
        if seconds < 60 { return String(format: "%.1f s", seconds) }
        if seconds < 3600 { return String(format: "%d min %02d s", Int(seconds) / 60, Int(seconds) % 60) }
        return String(format: "%d h %02d min", Int(seconds) / 3600, Int(seconds) % 3600 / 60)
    }

    /// A background from white (IoU 0) to green (IoU 1), for reading a table at a glance.
    static func shade(_ value: Double) -> String {
        let t = max(0, min(1, value))
        return String(format: "rgb(%d,%d,%d)", Int(255 - 120 * t), Int(255 - 40 * t), Int(255 - 120 * t))
    }

    /// An embedded picture: the file's own bytes as a data URI.
    static func image(_ path: String, type: String, title: String) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            return "<span class=\"note\">missing: \(escape((path as NSString).lastPathComponent))</span>"
        }
        return "<img alt=\"\(escape(title))\" title=\"\(escape(title))\" src=\"data:\(type);base64,\(data.base64EncodedString())\">"
    }
}
