import Foundation

/// The loss of every training in `logs/metrics.jsonl`, one inline SVG chart each.
///
/// The log is one file for the whole run; a training starts where the step
/// count falls back (a resumed training continues its count and stays one
/// curve). Curves are named after the run's training stages in order when
/// their counts agree.
enum TrainingCurves {
    struct Curve {
        var name: String
        var steps: [Double] = []
        var losses: [Double] = []
    }

    static func section(metrics path: String, trainings: [String]) -> String {
        let curves = read(path, trainings: trainings)
        guard !curves.isEmpty else { return "" }
        return "<h2>Training loss</h2>\n<div class=\"charts\">\n" + curves.map(chart).joined(separator: "\n") + "\n</div>\n"
            + "<p class=\"note\">From logs/metrics.jsonl, one point per logged step (every --log-every steps); TensorBoard reads logs/ for the rest.</p>\n"
    }

    static func read(_ path: String, trainings: [String]) -> [Curve] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        var curves: [Curve] = []
        for line in text.split(separator: "\n") {
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                  let step = (object["step"] as? NSNumber)?.doubleValue, let loss = (object["loss"] as? NSNumber)?.doubleValue,
                  loss.isFinite else { continue }
            if curves.isEmpty || step <= curves[curves.count - 1].steps.last! { curves.append(Curve(name: "")) }
            curves[curves.count - 1].steps.append(step)
            curves[curves.count - 1].losses.append(loss)
        }
        for index in curves.indices {
            curves[index].name = curves.count == trainings.count ? trainings[index] : "training \(index + 1)"
        }
        return curves
    }

    static func chart(_ curve: Curve) -> String {
        let width = 360.0, height = 180.0, left = 48.0, bottom = 24.0, top = 8.0, right = 8.0
        let minStep = curve.steps.first!, maxStep = max(curve.steps.last!, minStep + 1)
        let minLoss = min(0, curve.losses.min()!), maxLoss = max(curve.losses.max()!, minLoss + 1e-6)
        func x(_ step: Double) -> Double { left + (step - minStep) / (maxStep - minStep) * (width - left - right) }
        func y(_ loss: Double) -> Double { top + (maxLoss - loss) / (maxLoss - minLoss) * (height - top - bottom) }
        let points = zip(curve.steps, curve.losses).map { String(format: "%.1f,%.1f", x($0), y($1)) }.joined(separator: " ")
        let last = curve.losses.last!
        return """
            <figure><svg width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" role="img">
            <rect x="\(left)" y="\(top)" width="\(width - left - right)" height="\(height - top - bottom)" fill="#fafafa" stroke="#ccc"/>
            <polyline fill="none" stroke="#1f5fa8" stroke-width="1.5" points="\(points)"/>
            <text x="\(left - 4)" y="\(top + 10)" font-size="10" text-anchor="end">\(String(format: "%.3g", maxLoss))</text>
            <text x="\(left - 4)" y="\(height - bottom)" font-size="10" text-anchor="end">\(String(format: "%.3g", minLoss))</text>
            <text x="\(left)" y="\(height - 8)" font-size="10">step \(Int(minStep))</text>
            <text x="\(width - right)" y="\(height - 8)" font-size="10" text-anchor="end">\(Int(maxStep))</text>
            </svg><figcaption>\(ReportPage.escape(curve.name)): loss \(String(format: "%.4f", curve.losses.first!)) to \(String(format: "%.4f", last)), \(curve.steps.count) points</figcaption></figure>
            """
    }
}
