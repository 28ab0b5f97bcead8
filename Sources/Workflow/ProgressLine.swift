import Foundation

/// Rank 0's progress line for long per-image loops: the count, rate and ETA,
/// printed at most every `interval` seconds and once at the end, so fast
/// loops do not flood the log and slow ones still show they are alive.
public struct ProgressLine {
    let total: Int
    let interval: Double
    let start = DispatchTime.now().uptimeNanoseconds
    private var lastPrinted = 0.0

    public init(total: Int, interval: Double = 10) {
        self.total = total
        self.interval = interval
    }

    /// `finished` of `total` are done, `computedHere` of them by this run.
    public mutating func update(finished: Int, computedHere: Int, log: (String) -> Void) {
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        guard finished == total || seconds - lastPrinted >= interval else { return }
        lastPrinted = seconds
        let rate = Double(computedHere) / max(seconds, 1e-9)
        log(String(format: "rank 0: %d/%d images, %.2f images/s, ETA %.0f s", finished, total, rate,
                   Double(total - finished) / max(rate, 1e-9)))
    }
}
