/// Max pooling with Caffe's ceil-mode output size and implicit -inf padding
/// (padded positions never win), as ResNet-101's stem pools (3x3, stride 2,
/// padding 1). Forward records each window's winner so backward routes the
/// gradient to it; ties go to the first maximum in scan order, as PyTorch's
/// CPU kernel picks it.
public struct MaxPoolGeometry: Equatable, Sendable {
    public let kernel, stride, padding: Int

    public init(kernel: Int, stride: Int, padding: Int) {
        precondition(kernel > 0 && stride > 0 && padding >= 0 && padding < kernel)
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
    }

    /// PyTorch's ceil-mode rule: ceil((n + 2p - k) / s) + 1, less one when the
    /// last window would start in the right padding.
    public func outputExtent(_ n: Int) -> Int {
        let span = n + 2 * padding - kernel
        var out = (span + stride - 1) / stride + 1
        if (out - 1) * stride >= n + padding { out -= 1 }
        return out
    }

    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        (outputExtent(height), outputExtent(width))
    }
}

public enum MaxPool {
    /// output[n, c] = window maxima of input[n, c]; `winners` gets the index
    /// of each maximum within its input plane.
    public static func forward(_ g: MaxPoolGeometry, input: UnsafePointer<Float>, planes: Int, height: Int, width: Int,
                               output: UnsafeMutablePointer<Float>, winners: UnsafeMutablePointer<Int32>) {
        let (outH, outW) = g.outputSize(height: height, width: width)
        PhaseProfiler.measure(.elementwise) { Parallel.forEach(planes, minimumChunk: max(1, 16_384 / max(1, outH * outW))) { p in
            let x = input + p * height * width
            let y = output + p * outH * outW, winner = winners + p * outH * outW
            for oy in 0..<outH {
                let y0 = max(0, oy * g.stride - g.padding), y1 = min(height, oy * g.stride - g.padding + g.kernel)
                for ox in 0..<outW {
                    let x0 = max(0, ox * g.stride - g.padding), x1 = min(width, ox * g.stride - g.padding + g.kernel)
                    var best = -Float.infinity, bestIndex = y0 * width + x0
                    for iy in y0..<y1 {
                        for ix in x0..<x1 where x[iy * width + ix] > best || x[iy * width + ix].isNaN {
                            best = x[iy * width + ix]
                            bestIndex = iy * width + ix
                        }
                    }
                    y[oy * outW + ox] = best
                    winner[oy * outW + ox] = Int32(bestIndex)
                }
            }
        } }
    }

    /// inputGradient = the output gradient scattered onto each window's winner.
    public static func backward(_ g: MaxPoolGeometry, outputGradient: UnsafePointer<Float>, winners: UnsafePointer<Int32>,
                                planes: Int, height: Int, width: Int, inputGradient: UnsafeMutablePointer<Float>) {
        let (outH, outW) = g.outputSize(height: height, width: width)
        PhaseProfiler.measure(.elementwise) { Parallel.forEach(planes, minimumChunk: max(1, 16_384 / max(1, outH * outW))) { p in
            let dx = inputGradient + p * height * width
            dx.update(repeating: 0, count: height * width)
            let dy = outputGradient + p * outH * outW, winner = winners + p * outH * outW
            for i in 0..<(outH * outW) { dx[Int(winner[i])] += dy[i] }
        } }
    }
}
