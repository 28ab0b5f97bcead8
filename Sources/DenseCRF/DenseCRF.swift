import Foundation
import Kernels

/// The pairwise terms of a fully connected CRF: a Gaussian (position) kernel
/// and a bilateral (position and colour) kernel, each with Potts compatibility.
public struct CRFParameters: Codable, Sendable, Equatable, CustomStringConvertible {
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

    /// One pairwise term: its lattice, normalisation and Potts weight.
    final class Kernel: @unchecked Sendable {
        let lattice: PermutohedralLattice
        /// Symmetric normalisation 1 / sqrt(K 1), per pixel (owned, immutable after init).
        let normalisation: UnsafeMutablePointer<Float>
        let weight: Float

        init(lattice: PermutohedralLattice, normalisation: [Float], weight: Float) {
            self.lattice = lattice
            self.normalisation = .allocate(capacity: normalisation.count)
            self.normalisation.initialize(from: normalisation, count: normalisation.count)
            self.weight = weight
        }

        deinit { normalisation.deallocate() }
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
        gaussian.withUnsafeMutableBufferPointer { g in
            bilateral.withUnsafeMutableBufferPointer { b in
                let g = UncheckedSendable(g.baseAddress!), b = UncheckedSendable(b.baseAddress!)
                Parallel.forRanges(height, minimumChunk: 16) { rows in
                    for y in rows {
                        for x in 0..<width {
                            let i = y * width + x
                            g.value[2 * i] = Float(x) / p.gaussianSXY
                            g.value[2 * i + 1] = Float(y) / p.gaussianSXY
                            b.value[5 * i] = Float(x) / p.bilateralSXY
                            b.value[5 * i + 1] = Float(y) / p.bilateralSXY
                            for c in 0..<3 { b.value[5 * i + 2 + c] = Float(rgb[3 * i + c]) / p.bilateralSRGB }
                        }
                    }
                }
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
                let eta = UncheckedSendable(out.baseAddress!)
                Parallel.forRanges(n, minimumChunk: 4096) { range in
                    for i in range { eta.value[i] = Float(1 / (Double(eta.value[i]) + 1e-20).squareRoot()) }
                }
            }
            return Kernel(lattice: lattice, normalisation: normalisation, weight: weight)
        }
        // One lattice after the other, each on all threads: building them side by side
        // would leave a thread idle once the cheaper (Gaussian) one is done.
        kernels = Parallel.withSpinningWorkers {
            [(gaussian, 2, p.gaussianCompat), (bilateral, 5, p.bilateralCompat)].map { kernel($0.0, dimension: $0.1, weight: $0.2) }
        }
    }

    /// `inference(t)` of pydensecrf: Q after `iterations` mean-field steps
    /// from the unary -log(clip(p, 1e-5, 1)). `probabilities` and `output`
    /// are [labels][height][width] (they may be the same buffer).
    ///
    /// Each step is A = -U - P_gaussian - P_bilateral, Q = softmax(A), with
    /// P = -w * eta (.) Lattice(eta (.) Q). The scalings run inside the
    /// splat, and the slices, the sum and the softmax in one pass per pixel
    /// (the same float operations, no extra passes over memory).
    public func inference(probabilities: UnsafePointer<Float>, labels: Int, iterations: Int,
                          output: UnsafeMutablePointer<Float>, workspace buffers: CRFWorkspace? = nil) {
        // Some 15 short parallel loops per iteration: the other threads spin between them.
        Parallel.withSpinningWorkers {
            meanField(probabilities: probabilities, labels: labels, iterations: iterations, output: output, workspace: buffers)
        }
    }

    private func meanField(probabilities: UnsafePointer<Float>, labels: Int, iterations: Int,
                           output: UnsafeMutablePointer<Float>, workspace buffers: CRFWorkspace?) {
        precondition(labels >= 1 && iterations >= 0)
        let n = width * height, L = labels
        // Pixel-major inside, so every per-pixel step reads contiguous labels;
        // rows of more than 2 labels padded to a multiple of 4 for the vector
        // loops (the padding lanes are zeros that never meet the real ones).
        let stride = L <= 2 ? L : (L + 3) / 4 * 4
        let latticeCount = kernels.map { $0.lattice.workspaceCount(valuesPerPixel: stride) }.max()!
        let owner = buffers ?? CRFWorkspace()
        defer { withExtendedLifetime(owner) {} }
        let memory = owner.floats(2 * n * stride + kernels.count * latticeCount)
        let unary = memory, q = memory + n * stride, workspace = memory + 2 * n * stride
        let u = UncheckedSendable(unary), qs = UncheckedSendable(q)
        let lower = Float(1e-5)
        Parallel.forRanges(n, minimumChunk: 1024) { range in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: Softmax.scratchCount(labels: L) + L)
            defer { scratch.deallocate() }
            for i in range {
                for l in 0..<L {
                    let energy = -logf(min(max(probabilities[l * n + i], lower), 1))
                    u.value[i * stride + l] = energy
                    scratch[l] = -energy
                }
                for l in L..<stride {
                    u.value[i * stride + l] = 0
                    qs.value[i * stride + l] = 0
                }
                Softmax.row(scratch, into: qs.value + i * stride, labels: L, scratch: scratch + L)
            }
        }
        // Both kernels splat and blur the old Q first; then one pass per pixel slices both,
        // forms A = (-U - P_gaussian) - P_bilateral in a scratch row and writes the new Q
        // (A never goes to memory).
        let latticeBuffers = kernels.indices.map { UncheckedSendable(workspace + $0 * latticeCount) }
        let etas = kernels.map { UncheckedSendable(UnsafePointer($0.normalisation)) }
        let lattices = kernels.map(\.lattice), negativeWeights = kernels.map { -$0.weight }
        for _ in 0..<iterations {
            let blurred = kernels.indices.map { k in
                UncheckedSendable(lattices[k].splatAndBlur(q, scaledBy: etas[k].value, valuesPerPixel: stride, workspace: latticeBuffers[k].value))
            }
            let gaussian = lattices[0], bilateral = lattices[1]
            let gaussianBlurred = blurred[0].value, bilateralBlurred = blurred[1].value
            let gaussianEta = etas[0].value, bilateralEta = etas[1].value
            let gaussianWeight = negativeWeights[0], bilateralWeight = negativeWeights[1]
            // Dealt out in several ranges per thread: the longest loop, kept even on a busy machine.
            Parallel.forBalancedRanges(n, minimumChunk: 256) { range in
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * stride + Softmax.scratchCount(labels: stride))
                defer { scratch.deallocate() }
                let row = scratch, filtered = scratch + stride, softmaxScratch = scratch + 2 * stride
                for i in range {
                    gaussian.slice(pixel: i, from: gaussianBlurred, valuesPerPixel: stride, into: filtered)
                    RowOperations.subtractPairwise(from: row, start: u.value + i * stride, weight: gaussianWeight,
                                                   filtered: filtered, scale: gaussianEta[i], count: stride)
                    bilateral.slice(pixel: i, from: bilateralBlurred, valuesPerPixel: stride, into: filtered)
                    RowOperations.subtractPairwise(from: row, start: nil, weight: bilateralWeight,
                                                   filtered: filtered, scale: bilateralEta[i], count: stride)
                    Softmax.row(row, into: qs.value + i * stride, labels: L, scratch: softmaxScratch)
                }
            }
        }
        let out = UncheckedSendable(output)
        Parallel.forRanges(n, minimumChunk: 1024) { range in
            for l in 0..<L {
                for i in range { out.value[l * n + i] = qs.value[i * stride + l] }
            }
        }
    }
}
