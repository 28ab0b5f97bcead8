/// The shape of one 2-D convolution (cross-correlation, OIHW weights, zero padding).
public struct ConvolutionGeometry: Hashable, Sendable {
    public let inputChannels: Int
    public let outputChannels: Int
    public let kernel: Int
    public let stride: Int
    public let padding: Int
    public let dilation: Int

    public init(inputChannels: Int, outputChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1) {
        precondition(inputChannels > 0 && outputChannels > 0 && kernel > 0 && stride > 0 && dilation > 0 && padding >= 0)
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
    }

    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        let span = dilation * (kernel - 1) + 1
        return ((height + 2 * padding - span) / stride + 1, (width + 2 * padding - span) / stride + 1)
    }

    /// A 1x1, stride-1, unpadded convolution is a plain matrix product on the
    /// input as it lies in memory: no im2col.
    public var isDirectGEMM: Bool { kernel == 1 && stride == 1 && padding == 0 }

    /// Rows of the im2col matrix: one per (input channel, kernel row, kernel column).
    public var columnRows: Int { inputChannels * kernel * kernel }

    public var weightCount: Int { outputChannels * columnRows }

    /// Floats of im2col scratch one image needs (0 for direct GEMM).
    public func scratchCount(height: Int, width: Int) -> Int {
        if isDirectGEMM { return 0 }
        let out = outputSize(height: height, width: width)
        return columnRows * out.height * out.width
    }

    /// Multiply-accumulates per image.
    public func macs(height: Int, width: Int) -> Int {
        let out = outputSize(height: height, width: width)
        return out.height * out.width * outputChannels * columnRows
    }
}

/// Convolution forward and both backward passes over a batch of NCHW images,
/// via im2col and OpenBLAS sgemm, one image at a time (each image's output
/// [Cout, Ho*Wo] is contiguous in NCHW, so it is one GEMM's C).
public enum Convolution {
    /// Unfolds one image [Cin, H, W] into columns [Cin*k*k, Ho*Wo].
    public static func im2col(_ g: ConvolutionGeometry, input: UnsafePointer<Float>, height: Int, width: Int,
                              columns: UnsafeMutablePointer<Float>) {
        let (outH, outW) = g.outputSize(height: height, width: width)
        let k = g.kernel, plane = height * width, outPlane = outH * outW
        PhaseProfiler.measure(.im2col) { Parallel.forEach(g.inputChannels) { c in
            let source = input + c * plane
            for ky in 0..<k {
                for kx in 0..<k {
                    let row = columns + ((c * k + ky) * k + kx) * outPlane
                    let dy = ky * g.dilation - g.padding, dx = kx * g.dilation - g.padding
                    let (xStart, xEnd) = validRange(offset: dx, stride: g.stride, inputExtent: width, outputExtent: outW)
                    for oy in 0..<outH {
                        let target = row + oy * outW
                        let y = oy * g.stride + dy
                        guard y >= 0 && y < height && xStart < xEnd else {
                            target.update(repeating: 0, count: outW)
                            continue
                        }
                        if xStart > 0 { target.update(repeating: 0, count: xStart) }
                        let sourceRow = source + y * width + dx
                        if g.stride == 1 {
                            (target + xStart).update(from: sourceRow + xStart, count: xEnd - xStart)
                        } else {
                            for ox in xStart..<xEnd { target[ox] = sourceRow[ox * g.stride] }
                        }
                        if xEnd < outW { (target + xEnd).update(repeating: 0, count: outW - xEnd) }
                    }
                }
            }
        } }
    }

    /// Folds column gradients [Cin*k*k, Ho*Wo] back onto one image [Cin, H, W],
    /// adding to what the image gradient already holds.
    public static func col2imAdding(_ g: ConvolutionGeometry, columns: UnsafePointer<Float>, height: Int, width: Int,
                                    inputGradient: UnsafeMutablePointer<Float>) {
        let (outH, outW) = g.outputSize(height: height, width: width)
        let k = g.kernel, plane = height * width, outPlane = outH * outW
        PhaseProfiler.measure(.col2im) { Parallel.forEach(g.inputChannels) { c in
            let target = inputGradient + c * plane
            for ky in 0..<k {
                for kx in 0..<k {
                    let row = columns + ((c * k + ky) * k + kx) * outPlane
                    let dy = ky * g.dilation - g.padding, dx = kx * g.dilation - g.padding
                    let (xStart, xEnd) = validRange(offset: dx, stride: g.stride, inputExtent: width, outputExtent: outW)
                    guard xStart < xEnd else { continue }
                    for oy in 0..<outH {
                        let y = oy * g.stride + dy
                        guard y >= 0 && y < height else { continue }
                        let source = row + oy * outW
                        let targetRow = target + y * width + dx
                        if g.stride == 1 {
                            for ox in xStart..<xEnd { targetRow[ox] += source[ox] }
                        } else {
                            for ox in xStart..<xEnd { targetRow[ox * g.stride] += source[ox] }
                        }
                    }
                }
            }
        } }
    }

    /// The output columns ox whose input column ox*stride + offset lies in [0, extent).
    @inline(__always)
    static func validRange(offset: Int, stride: Int, inputExtent: Int, outputExtent: Int) -> (Int, Int) {
        // smallest ox with ox*stride + offset >= 0
        let start = offset >= 0 ? 0 : (-offset + stride - 1) / stride
        // largest ox with ox*stride + offset <= extent - 1, plus one
        let last = inputExtent - 1 - offset
        let end = last < 0 ? 0 : last / stride + 1
        return (min(start, outputExtent), min(max(end, 0), outputExtent))
    }

    /// output[n] (+)= weight * im2col(input[n]) (+ bias), for every image of the batch.
    /// With `accumulate` the result is added to what `output` holds (a residual sum for free).
    public static func forward(_ g: ConvolutionGeometry, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               input: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                               output: UnsafeMutablePointer<Float>, accumulate: Bool = false,
                               scratch: UnsafeMutablePointer<Float>) {
        let (outH, outW) = g.outputSize(height: height, width: width)
        let inSize = g.inputChannels * height * width, outPlane = outH * outW, outSize = g.outputChannels * outPlane
        for n in 0..<batch {
            let columns: UnsafePointer<Float>
            if g.isDirectGEMM {
                columns = input + n * inSize
            } else {
                im2col(g, input: input + n * inSize, height: height, width: width, columns: scratch)
                columns = UnsafePointer(scratch)
            }
            sgemm(transposeA: false, transposeB: false, m: g.outputChannels, n: outPlane, k: g.columnRows,
                  alpha: 1, a: weight, lda: g.columnRows, b: columns, ldb: outPlane,
                  beta: accumulate ? 1 : 0, c: output + n * outSize, ldc: outPlane)
            if let bias {
                let image = output + n * outSize
                Parallel.forEach(g.outputChannels, minimumChunk: 16) { o in
                    let row = image + o * outPlane, value = bias[o]
                    for i in 0..<outPlane { row[i] += value }
                }
            }
        }
    }

    /// inputGradient[n] (+)= col2im(weightᵀ * outputGradient[n]).
    public static func backwardInput(_ g: ConvolutionGeometry, weight: UnsafePointer<Float>,
                                     outputGradient: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                                     inputGradient: UnsafeMutablePointer<Float>, accumulate: Bool,
                                     scratch: UnsafeMutablePointer<Float>) {
        let (outH, outW) = g.outputSize(height: height, width: width)
        let inSize = g.inputChannels * height * width, outPlane = outH * outW, outSize = g.outputChannels * outPlane
        for n in 0..<batch {
            let target = inputGradient + n * inSize
            if g.isDirectGEMM {
                sgemm(transposeA: true, transposeB: false, m: g.columnRows, n: outPlane, k: g.outputChannels,
                      alpha: 1, a: weight, lda: g.columnRows, b: outputGradient + n * outSize, ldb: outPlane,
                      beta: accumulate ? 1 : 0, c: target, ldc: outPlane)
                continue
            }
            sgemm(transposeA: true, transposeB: false, m: g.columnRows, n: outPlane, k: g.outputChannels,
                  alpha: 1, a: weight, lda: g.columnRows, b: outputGradient + n * outSize, ldb: outPlane,
                  beta: 0, c: scratch, ldc: outPlane)
            if !accumulate { target.update(repeating: 0, count: inSize) }
            col2imAdding(g, columns: scratch, height: height, width: width, inputGradient: target)
        }
    }

    /// weightGradient (+)= Σₙ outputGradient[n] * im2col(input[n])ᵀ, and the
    /// bias gradient (+)= Σ over images and positions.
    public static func backwardWeight(_ g: ConvolutionGeometry, input: UnsafePointer<Float>,
                                      outputGradient: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                                      weightGradient: UnsafeMutablePointer<Float>, biasGradient: UnsafeMutablePointer<Float>?,
                                      accumulate: Bool, scratch: UnsafeMutablePointer<Float>) {
        let (outH, outW) = g.outputSize(height: height, width: width)
        let inSize = g.inputChannels * height * width, outPlane = outH * outW, outSize = g.outputChannels * outPlane
        for n in 0..<batch {
            let columns: UnsafePointer<Float>
            if g.isDirectGEMM {
                columns = input + n * inSize
            } else {
                im2col(g, input: input + n * inSize, height: height, width: width, columns: scratch)
                columns = UnsafePointer(scratch)
            }
            sgemm(transposeA: false, transposeB: true, m: g.outputChannels, n: g.columnRows, k: outPlane,
                  alpha: 1, a: outputGradient + n * outSize, lda: outPlane, b: columns, ldb: outPlane,
                  beta: (accumulate || n > 0) ? 1 : 0, c: weightGradient, ldc: g.columnRows)
            if let biasGradient {
                let image = outputGradient + n * outSize
                for o in 0..<g.outputChannels {
                    var sum: Float = (accumulate || n > 0) ? biasGradient[o] : 0
                    let row = image + o * outPlane
                    for i in 0..<outPlane { sum += row[i] }
                    biasGradient[o] = sum
                }
            }
        }
    }
}
