import Foundation
import Kernels
import XCTest
@testable import DenseCRF

/// The splat in chunks (`PermutohedralLattice.chunkCount`) against a plain
/// scatter, pixel after pixel, as densecrf does it.
final class LatticeSplatTests: XCTestCase {
    private static func referenceSplat(_ lattice: PermutohedralLattice, _ values: [Float], valuesPerPixel n: Int) -> [Float] {
        let D = lattice.dimension + 1
        var buffer = [Float](repeating: 0, count: (lattice.vertexCount + 1) * n)
        for i in 0..<lattice.pixelCount {
            for r in 0..<D {
                let id = Int(lattice.offsets[i * D + r]), w = lattice.weights[i * D + r]
                for l in 0..<n { buffer[id * n + l] += w * (values[i * n + l] * 1) }
            }
        }
        return buffer
    }

    private static func blurred(_ lattice: PermutohedralLattice, values: [Float], valuesPerPixel n: Int,
                                splat: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float>) -> [Float] {
        var workspace = [Float](repeating: .nan, count: lattice.workspaceCount(valuesPerPixel: n))
        return workspace.withUnsafeMutableBufferPointer { scratch in
            let first = scratch.baseAddress!
            let result = splat(first, first)
            return Array(UnsafeBufferPointer(start: result, count: (lattice.vertexCount + 1) * n))
        }
    }

    /// Position-only: every vertex sums its pixels in pixel order, so the chunked
    /// splat is bitwise the plain scatter, on any thread count.
    func testPositionLatticeSplatEqualsThePixelOrderScatter() {
        let width = 97, height = 61, n = 4, pixels = width * height
        var features = [Float](repeating: 0, count: 2 * pixels)
        for y in 0..<height {
            for x in 0..<width {
                features[2 * (y * width + x)] = Float(x) / 1.7
                features[2 * (y * width + x) + 1] = Float(y) / 1.7
            }
        }
        var values = [Float](repeating: 0, count: n * pixels)
        for i in values.indices { values[i] = Float((i * 7919) % 1009) / 1009 }
        let saved = Parallel.threadCount
        defer { Parallel.setThreadCount(saved) }
        for threads in [1, 3] {
            Parallel.setThreadCount(threads)
            let lattice = features.withUnsafeBufferPointer { PermutohedralLattice(features: $0.baseAddress!, pixelCount: pixels, dimension: 2) }
            XCTAssertTrue(lattice.deferredSlots.dropFirst().allSatisfy { !$0.isEmpty }, "chunks meet earlier chunks' vertices")
            let expected = Self.referenceSplat(lattice, values, valuesPerPixel: n)
            let chunked = Self.blurred(lattice, values: values, valuesPerPixel: n) { workspace, _ in
                values.withUnsafeBufferPointer { input in
                    // splatAndBlur's splat, then the blur of the plain scatter for comparison.
                    let target = lattice.vertexBuffers(workspace, valuesPerPixel: n).0
                    for c in 0..<PermutohedralLattice.chunkCount {
                        let (own, firstOwned) = lattice.beginChunk(c, target: target, valuesPerPixel: n, workspace: workspace)
                        for i in lattice.pixels(ofChunk: c) {
                            lattice.splat(pixel: i, values: input.baseAddress! + i * n, scale: 1, valuesPerPixel: n, into: own, firstOwned: firstOwned)
                        }
                    }
                    lattice.finishSplat(input.baseAddress!, scaledBy: nil, valuesPerPixel: n, into: target, workspace: workspace)
                    return target
                }
            }
            XCTAssertEqual(chunked, expected, "\(threads) threads: the chunked splat is the pixel-order scatter")
            // And through the whole filter path (splat in parallel, then blur).
            let viaFilter = Self.blurred(lattice, values: values, valuesPerPixel: n) { workspace, _ in
                values.withUnsafeBufferPointer { lattice.splatAndBlur($0.baseAddress!, scaledBy: nil, valuesPerPixel: n, workspace: workspace) }
            }
            var reference = expected
            let viaReference = Self.blurred(lattice, values: values, valuesPerPixel: n) { workspace, _ in
                let target = lattice.vertexBuffers(workspace, valuesPerPixel: n).0
                reference.withUnsafeMutableBufferPointer { target.update(from: $0.baseAddress!, count: $0.count) }
                return lattice.blur(target, valuesPerPixel: n, workspace: workspace)
            }
            XCTAssertEqual(viaFilter, viaReference, "\(threads) threads: splatAndBlur")
        }
    }
}
