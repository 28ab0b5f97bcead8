import DenseCRF
import Formats
import Foundation
import Kernels
import XCTest

/// pydensecrf's own outputs (`Golden/crf/`): three cases with psa's
/// parameters on affinity-label stacks, one with deeplab's on a softmax.
final class DenseCRFGoldenTests: XCTestCase {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/crf").path
    static let cases = ["psa_alpha4_37x29", "psa_alpha32_64x48", "psa_alpha4_100x75", "deeplab_softmax_80x60"]

    struct Case {
        let image: RGBImage
        let probabilities: NPYArray
        let parameters: CRFParameters
    }

    static func load(_ name: String) throws -> Case {
        let folder = "\(directory)/\(name)"
        let json = try JSONSerialization.jsonObject(with: Data(AtomicFile.read("\(folder)/params.json"))) as! [String: Any]
        func value(_ key: String) -> Float { Float((json[key] as! NSNumber).doubleValue) }
        return Case(image: try PNG.readRGB("\(folder)/image.png"), probabilities: try NPY.read("\(folder)/probs.npy"),
                    parameters: CRFParameters(gaussianSXY: value("gauss_sxy"), gaussianCompat: value("gauss_compat"),
                                              bilateralSXY: value("bi_sxy"), bilateralSRGB: value("bi_srgb"), bilateralCompat: value("bi_compat")))
    }

    static func run(_ test: Case, iterations: Int) -> [Float] {
        let crf = test.image.pixels.withUnsafeBufferPointer {
            DenseCRF(rgb: $0.baseAddress!, width: test.image.width, height: test.image.height, parameters: test.parameters)
        }
        let probabilities: [Float] = try! test.probabilities.values()
        var output = [Float](repeating: 0, count: probabilities.count)
        output.withUnsafeMutableBufferPointer { out in
            crf.inference(probabilities: probabilities, labels: test.probabilities.shape[0], iterations: iterations, output: out.baseAddress!)
        }
        return output
    }

    func testEveryGoldenCaseAtZeroOneAndTenIterations() throws {
        for name in Self.cases {
            let test = try Self.load(name)
            XCTAssertEqual(test.probabilities.shape, [test.probabilities.shape[0], test.image.height, test.image.width], name)
            for t in [0, 1, 10] {
                let expected: [Float] = try NPY.read("\(Self.directory)/\(name)/q_t\(t).npy").values()
                let ours = Self.run(test, iterations: t)
                let worst = zip(ours, expected).map { abs($0 - $1) }.max()!
                print(String(format: "%@ t=%d: max |difference| %.2e", name, t, worst))
                XCTAssertLessThanOrEqual(worst, 1e-4, "\(name) t=\(t)")
            }
        }
    }

    /// The spec's lattice sizes (section 7), phantom vertices included.
    func testLatticeSizesEqualTheReferences() throws {
        let expected = ["psa_alpha4_37x29": [165, 407], "psa_alpha32_64x48": [454, 665], "psa_alpha4_100x75": [1059, 672],
                        "deeplab_softmax_80x60": [5627, 10193]]
        for name in Self.cases {
            let test = try Self.load(name)
            let crf = test.image.pixels.withUnsafeBufferPointer {
                DenseCRF(rgb: $0.baseAddress!, width: test.image.width, height: test.image.height, parameters: test.parameters)
            }
            XCTAssertEqual(crf.vertexCounts, expected[name], name)
        }
    }

    func testThreadsDoNotChangeTheResult() throws {
        let test = try Self.load("deeplab_softmax_80x60")
        let saved = Parallel.threadCount
        defer { Parallel.setThreadCount(saved) }
        Parallel.setThreadCount(1)
        let one = Self.run(test, iterations: 10)
        Parallel.setThreadCount(3)
        let three = Self.run(test, iterations: 10)
        XCTAssertEqual(one, three, "bitwise the same on 1 and 3 threads")
    }

    /// Big enough that lattice construction splits its vertex numbering over
    /// the threads (and merges the tables): still bitwise the one-thread result.
    func testThreadsDoNotChangeTheResultOnALargerImage() {
        let width = 211, height = 157, labels = 5
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        for i in rgb.indices { rgb[i] = UInt8((i * 7919 + (i / 3) * 31) % 251) }
        var probabilities = [Float](repeating: 0, count: labels * width * height)
        for i in probabilities.indices { probabilities[i] = Float((i * 104_729) % 1000) / 1000 }
        let saved = Parallel.threadCount
        defer { Parallel.setThreadCount(saved) }
        var results: [[Float]] = []
        var sizes: [[Int]] = []
        for threads in [1, 3] {
            Parallel.setThreadCount(threads)
            for parameters in [CRFParameters.psa, .deeplab] {
                let crf = DenseCRF(rgb: rgb, width: width, height: height, parameters: parameters)
                var q = [Float](repeating: 0, count: probabilities.count)
                crf.inference(probabilities: probabilities, labels: labels, iterations: 3, output: &q)
                results.append(q)
                sizes.append(crf.vertexCounts)
            }
        }
        XCTAssertEqual(sizes[0], sizes[2])
        XCTAssertEqual(sizes[1], sizes[3])
        XCTAssertTrue(results[0] == results[2], "psa: 1 and 3 threads differ")
        XCTAssertTrue(results[1] == results[3], "deeplab: 1 and 3 threads differ")
    }

    /// Spec section 3: on a 1 x 1 image, inference(1) = softmax(-U + (w_g + w_b) Q0).
    func testOnePixelIdentity() {
        let rgb: [UInt8] = [10, 200, 30]
        let crf = DenseCRF(rgb: rgb, width: 1, height: 1, parameters: .psa)
        let p: [Float] = [0.7, 0.2, 0.1]
        var q = [Float](repeating: 0, count: 3)
        crf.inference(probabilities: p, labels: 3, iterations: 1, output: &q)
        let q0 = p.map { $0 / p.reduce(0, +) }
        let a = zip(p, q0).map { -(-log($0)) + 13 * $1 }
        let expected = a.map { exp($0 - a.max()!) / a.map { exp($0 - a.max()!) }.reduce(0, +) }
        for (x, y) in zip(q, expected) { XCTAssertEqual(x, y, accuracy: 1e-6) }
    }
}

/// Spec 4.2 step 2 and 6.1: exact ties round half to even, as cvtps2dq does.
final class LatticeRoundingTests: XCTestCase {
    func testTiesRoundHalfToEven() {
        let cases: [(Float, Float)] = [(0.5, 0), (1.5, 2), (2.5, 2), (-0.5, -0), (-1.5, -2), (-2.5, -2), (0.49999997, 0), (3.7, 4),
                                       (-3.7, -4), (8_388_607.5, 8_388_608)]
        for (x, expected) in cases { XCTAssertEqual(DenseCRFRounding.halfEven(x), expected, "\(x)") }
    }
}
