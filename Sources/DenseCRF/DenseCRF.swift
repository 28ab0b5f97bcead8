import Foundation
import Kernels

/// The pairwise terms of a fully connected CRF: a Gaussian (position) kernel
/// and a bilateral (position and colour) kernel, each with Potts compatibility.
public struct CRFParameters: Sendable, Equatable, CustomStringConvertible {
    public var gaussianSXY: Float
    public var gaussianCompat: Float
    public var bilateralSXY: Float
    public var bilateralSRGB: Float
    public var bilateralCompat: Float

    public init(gaussianSXY: Float, gaussianCompat: Float, bilateralSXY: Float, bilateralSRGB: Float, bilateralCompat: Float) {
        self.gaussianSXY = gaussianSXY
        self.gaussianCompat = gaussianCompat
        self.bilateralSXY = bilateralSXY
        self.bilateralSRGB = bilateralSRGB
        self.bilateralCompat = bilateralCompat
    }

    /// psa's `crf_inference` (affinity labels, SC-CAM's dCRF): Gaussian 3, 3; bilateral 80, 13, 10.
    public static let psa = CRFParameters(gaussianSXY: 3, gaussianCompat: 3, bilateralSXY: 80, bilateralSRGB: 13, bilateralCompat: 10)
    /// deeplab-pytorch's test-time CRF: Gaussian 1, 3; bilateral 67, 3, 4.
    public static let deeplab = CRFParameters(gaussianSXY: 1, gaussianCompat: 3, bilateralSXY: 67, bilateralSRGB: 3, bilateralCompat: 4)

    public var description: String {
        "Gaussian sxy \(gaussianSXY) compat \(gaussianCompat), bilateral sxy \(bilateralSXY) srgb \(bilateralSRGB) compat \(bilateralCompat)"
    }
}

/// Mean-field inference in a fully connected CRF over one image, exactly as
/// Krähenbühl's densecrf (pydensecrf) computes it: spec `dense-crf.md`. The
/// two lattices are built once here and reused for every label and iteration.
public final class DenseCRF {
    public let width: Int
    public let height: Int
    public let parameters: CRFParameters

    struct Kernel {
        let lattice: PermutohedralLattice
        /// Symmetric normalisation 1 / sqrt(K 1), per pixel.
        let normalisation: [Float]
        let weight: Float
    }
    let kernels: [Kernel]

    public var vertexCounts: [Int] { kernels.map(\.lattice.vertexCount) }

    /// `rgb` is the image, H x W x 3 bytes in memory order (the channels are
    /// used as given: pass RGB, as PIL loads it, to match psa).
    public init(rgb: UnsafePointer<UInt8>, width: Int, height: Int, parameters: CRFParameters) {
        precondition(width > 0 && height > 0)
        self.width = width
        self.height = height
        self.parameters = parameters
        let n = width * height
        var gaussian = [Float](repeating: 0, count: 2 * n)
        var bilateral = [Float](repeating: 0, count: 5 * n)
        let p = parameters
        for y in 0..<height {
            for x in 0..<width {
                let i = y * width + x
                gaussian[2 * i] = Float(x) / p.gaussianSXY
                gaussian[2 * i + 1] = Float(y) / p.gaussianSXY
                bilateral[5 * i] = Float(x) / p.bilateralSXY
                bilateral[5 * i + 1] = Float(y) / p.bilateralSXY
                for c in 0..<3 { bilateral[5 * i + 2 + c] = Float(rgb[3 * i + c]) / p.bilateralSRGB }
            }
        }
        func kernel(_ features: [Float], dimension: Int, weight: Float) -> Kernel {
            let lattice = features.withUnsafeBufferPointer { PermutohedralLattice(features: $0.baseAddress!, pixelCount: n, dimension: dimension) }
            var normalisation = [Float](repeating: 1, count: n)
            var workspace = [Float](repeating: 0, count: lattice.workspaceCount(valuesPerPixel: 1))
            let ones = [Float](repeating: 1, count: n)
            normalisation.withUnsafeMutableBufferPointer { out in
                workspace.withUnsafeMutableBufferPointer { scratch in
                    lattice.filter(ones, into: out.baseAddress!, valuesPerPixel: 1, workspace: scratch.baseAddress!)
                }
                for i in 0..<n { out[i] = Float(1 / (Double(out[i]) + 1e-20).squareRoot()) }
            }
            return Kernel(lattice: lattice, normalisation: normalisation, weight: weight)
        }
        kernels = [kernel(gaussian, dimension: 2, weight: p.gaussianCompat), kernel(bilateral, dimension: 5, weight: p.bilateralCompat)]
    }

    /// `inference(t)` of pydensecrf: Q after `iterations` mean-field steps
    /// from the unary -log(clip(p, 1e-5, 1)). `probabilities` and `output`
    /// are [labels][height][width] (they may be the same buffer).
    public func inference(probabilities: UnsafePointer<Float>, labels: Int, iterations: Int,
                          output: UnsafeMutablePointer<Float>) {
        precondition(labels >= 1 && iterations >= 0)
        let n = width * height, L = labels
        // Pixel-major inside: every per-pixel step then reads contiguous labels.
        var unary = [Float](repeating: 0, count: n * L)
        var q = [Float](repeating: 0, count: n * L)
        var accumulated = [Float](repeating: 0, count: n * L)
        var message = [Float](repeating: 0, count: n * L)
        let scratchCount = kernels.map { $0.lattice.workspaceCount(valuesPerPixel: L) }.max()!
        var scratch = [Float](repeating: 0, count: scratchCount)
        let lower = Float(1e-5)
        unary.withUnsafeMutableBufferPointer { u in
            let u = UncheckedSendable(u.baseAddress!)
            Parallel.forRanges(n, minimumChunk: 1024) { range in
                for i in range {
                    for l in 0..<L { u.value[i * L + l] = -logf(min(max(probabilities[l * n + i], lower), 1)) }
                }
            }
        }
        unary.withUnsafeBufferPointer { u in
            q.withUnsafeMutableBufferPointer { q in
                accumulated.withUnsafeMutableBufferPointer { a in
                    message.withUnsafeMutableBufferPointer { v in
                        scratch.withUnsafeMutableBufferPointer { scratch in
                            let u = u.baseAddress!, q = UncheckedSendable(q.baseAddress!)
                            let a = UncheckedSendable(a.baseAddress!), v = UncheckedSendable(v.baseAddress!)
                            // Q = softmax(-U)
                            Parallel.forRanges(n, minimumChunk: 1024) { range in
                                for i in range {
                                    for l in 0..<L { a.value[i * L + l] = -u[i * L + l] }
                                }
                                Self.softmax(a.value, into: q.value, labels: L, pixels: range)
                            }
                            for _ in 0..<iterations {
                                Parallel.forRanges(n, minimumChunk: 1024) { range in
                                    for i in range {
                                        for l in 0..<L { a.value[i * L + l] = -u[i * L + l] }
                                    }
                                }
                                for kernel in kernels {
                                    kernel.normalisation.withUnsafeBufferPointer { eta in
                                        Parallel.forRanges(n, minimumChunk: 1024) { range in
                                            for i in range {
                                                for l in 0..<L { v.value[i * L + l] = q.value[i * L + l] * eta[i] }
                                            }
                                        }
                                        kernel.lattice.filter(v.value, into: v.value, valuesPerPixel: L, workspace: scratch.baseAddress!)
                                        let negativeWeight = -kernel.weight
                                        Parallel.forRanges(n, minimumChunk: 1024) { range in
                                            for i in range {
                                                for l in 0..<L {
                                                    let pairwise = negativeWeight * (v.value[i * L + l] * eta[i])
                                                    a.value[i * L + l] = a.value[i * L + l] - pairwise
                                                }
                                            }
                                        }
                                    }
                                }
                                Parallel.forRanges(n, minimumChunk: 1024) { range in
                                    Self.softmax(a.value, into: q.value, labels: L, pixels: range)
                                }
                            }
                            for l in 0..<L {
                                for i in 0..<n { output[l * n + i] = q.value[i * L + l] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Per pixel over labels, with the maximum subtracted first.
    static func softmax(_ a: UnsafePointer<Float>, into q: UnsafeMutablePointer<Float>, labels L: Int, pixels: Range<Int>) {
        for i in pixels {
            let row = a + i * L, out = q + i * L
            var largest = row[0]
            for l in 1..<max(1, L) where row[l] > largest { largest = row[l] }
            var sum: Float = 0
            for l in 0..<L {
                let b = expf(row[l] - largest)
                out[l] = b
                sum += b
            }
            for l in 0..<L { out[l] = out[l] / sum }
        }
    }
}
