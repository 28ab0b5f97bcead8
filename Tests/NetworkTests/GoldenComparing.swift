import Formats
import Foundation
import XCTest

/// What the golden-file tests share: the folder, tolerances, and comparisons
/// relative to each tensor's largest magnitude.
protocol GoldenComparing: XCTestCase {}

extension GoldenComparing {
    static var directory: String { URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden").path }

    /// Forward tensors: the README measured 1.1e-6 for plain float32 and says
    /// a plain implementation reaches 1e-5; we hold ourselves to that.
    static var forwardTolerance: Float { 1e-5 }
    /// Gradients: measured 5.5e-7 in float32; recommended 1e-3. We check 1e-4.
    static var gradientTolerance: Float { 1e-4 }

    func tensors(_ file: String) throws -> [String: SafetensorsTensor] {
        let (list, _) = try Safetensors.read("\(Self.directory)/\(file)")
        return Dictionary(uniqueKeysWithValues: list.map { ($0.name, $0) })
    }

    func values(_ tensors: [String: SafetensorsTensor], _ name: String) throws -> [Float] {
        try XCTUnwrap(tensors[name], "golden tensor \(name) missing").floatValues()
    }

    /// max|actual - expected| / max|expected|
    func relativeError(_ actual: [Float], _ expected: [Float], file: StaticString = #filePath, line: UInt = #line) -> Float {
        XCTAssertEqual(actual.count, expected.count, "sizes differ", file: file, line: line)
        let scale = expected.map(abs).max() ?? 0
        let worst = zip(actual, expected).map { abs($0 - $1) }.max() ?? 0
        return scale > 0 ? worst / scale : worst
    }

    func assertClose(_ actual: [Float], _ expected: [Float], tolerance: Float, _ what: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        let error = relativeError(actual, expected, file: file, line: line)
        if ProcessInfo.processInfo.environment["SCCAM_PRINT_GOLDEN_ERRORS"] != nil {
            print("golden \(what): relative error \(error)")
        }
        XCTAssertLessThanOrEqual(error, tolerance, "\(what): relative error \(error)", file: file, line: line)
    }

}
