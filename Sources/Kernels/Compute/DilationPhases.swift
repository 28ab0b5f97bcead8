import Foundation

/// A dilated convolution as an undilated one on phase-subsampled images.
///
/// With stride 1, dilation d and "same" padding d (k - 1) / 2, output pixel
/// (p + d i, q + d j) reads only input pixels of the same phase (p, q), d
/// apart. So the layer equals a dilation-1 convolution (padding (k - 1) / 2)
/// on the batch of N d² phase images X_pq[i, j] = X[p + d i, q + d j], the
/// image padded with zeros up to multiples of d: the same multiply-adds in a
/// different order, and every 3x3 layer then runs on oneDNN's undilated
/// kernels (Winograd in float32, the brgemm / AMX kernels in bf16), which
/// oneDNN 2.6 has no dilated form of.
///
/// Phase images are laid out as a batch: image n's phase (p, q) is batch
/// entry (n d + p) d + q, in the layout of the tensor they come from (NCHW,
/// or nChw16c, where whole 16-channel pixels move at once).
public struct DilationPhases: Hashable, Sendable, CustomStringConvertible {
    /// The dilated layer and the undilated one that runs on its phases.
    public let dilated: ConvolutionGeometry
    public let undilated: ConvolutionGeometry
    public let height, width: Int
    /// Rows and columns of one phase image: the input rounded up to multiples of d, over d.
    public let phaseHeight, phaseWidth: Int

    public var dilation: Int { dilated.dilation }
    public var phaseCount: Int { dilation * dilation }

    /// The phases of a layer of this shape, or nil when it is not a stride-1
    /// "same" dilated convolution (the only kind this decomposition covers).
    public init?(_ g: ConvolutionGeometry, height: Int, width: Int) {
        let d = g.dilation
        guard d > 1, g.stride == 1, g.kernel % 2 == 1, g.padding == d * (g.kernel - 1) / 2 else { return nil }
        dilated = g
        undilated = ConvolutionGeometry(inputChannels: g.inputChannels, outputChannels: g.outputChannels, kernel: g.kernel,
                                        stride: 1, padding: (g.kernel - 1) / 2, dilation: 1)
        self.height = height
        self.width = width
        phaseHeight = (height + d - 1) / d
        phaseWidth = (width + d - 1) / d
    }

    public var description: String {
        "\(phaseCount) phases of \(phaseHeight)x\(phaseWidth)"
    }

    /// Floats of a phase batch of `channels` channels for `batch` images.
    public func phaseCount(batch: Int, channels: Int) -> Int {
        batch * phaseCount * channels * phaseHeight * phaseWidth
    }

    /// Splits `batch` NCHW images into their phase images (zeros where the
    /// padded grid lies outside the image).
    public func split(_ source: UnsafePointer<Float>, batch: Int, channels: Int, layout: ActivationLayout = .plain,
                      into phases: UnsafeMutablePointer<Float>) {
        if layout == .blocked16 { return splitBlocked(source, batch: batch, channels: channels, into: phases) }
        let d = dilation, (h, w, ph, pw) = (height, width, phaseHeight, phaseWidth)
        forEachPlane(batch: batch, channels: channels) { plane, phase in
            let image = source + plane * h * w
            for p in 0..<d {
                for q in 0..<d {
                    let target = phases + phase(p, q)
                    let columns = (w - q + d - 1) / d
                    for i in 0..<ph {
                        let row = target + i * pw
                        let y = p + d * i
                        if y >= h {
                            row.update(repeating: 0, count: pw)
                            continue
                        }
                        let input = image + y * w + q
                        for j in 0..<columns { row[j] = input[d * j] }
                        if columns < pw { (row + columns).update(repeating: 0, count: pw - columns) }
                    }
                }
            }
        }
    }

    /// Gathers phase images back into `batch` NCHW images (dropping the
    /// padding), writing or adding to `target`.
    public func merge(_ phases: UnsafePointer<Float>, batch: Int, channels: Int, layout: ActivationLayout = .plain,
                      into target: UnsafeMutablePointer<Float>, accumulate: Bool) {
        if layout == .blocked16 {
            return mergeBlocked(phases, batch: batch, channels: channels, into: target, accumulate: accumulate)
        }
        let d = dilation, (h, w, pw) = (height, width, phaseWidth)
        forEachPlane(batch: batch, channels: channels) { plane, phase in
            let image = target + plane * h * w
            for y in 0..<h {
                let p = y % d, i = y / d
                let output = image + y * w
                for q in 0..<d {
                    let source = phases + phase(p, q) + i * pw
                    let columns = (w - q + d - 1) / d
                    if accumulate {
                        for j in 0..<columns { output[q + d * j] += source[j] }
                    } else {
                        for j in 0..<columns { output[q + d * j] = source[j] }
                    }
                }
            }
        }
    }

    /// Runs `body` for every image plane (image n, channel c; `plane` = n C + c)
    /// across the threads, with the offset of that plane's phase (p, q) image
    /// in a phase batch.
    private func forEachPlane(batch: Int, channels: Int, _ body: (_ plane: Int, _ phase: (Int, Int) -> Int) -> Void) {
        let d = dilation, phaseSize = phaseHeight * phaseWidth
        PhaseProfiler.measure(.phaseTransforms) {
            Parallel.forRanges(batch * channels, minimumChunk: 4) { planes in
                for plane in planes {
                    let n = plane / channels, c = plane % channels
                    body(plane) { p, q in (((n * d + p) * d + q) * channels + c) * phaseSize }
                }
            }
        }
    }
}
