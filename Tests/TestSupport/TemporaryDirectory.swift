import Foundation

/// A fresh folder under the system's temporary directory, removed by `remove()`.
public struct TemporaryDirectory {
    public let path: String

    public init(prefix: String = "sccam-test") throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Removes the folder, unless SCCAM_KEEP_TEST_OUTPUT=1 asks to keep it for a look.
    public func remove() {
        if ProcessInfo.processInfo.environment["SCCAM_KEEP_TEST_OUTPUT"] == "1" {
            print("kept test output: \(path)")
            return
        }
        try? FileManager.default.removeItem(atPath: path)
    }
}
