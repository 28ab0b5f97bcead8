/// The element-wise steps around ResNet-101's residual sums, parallel over chunks.
public enum Elementwise {
    /// out = relu(a + b); out may be a or b.
    public static func addReLU(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        PhaseProfiler.measure(.elementwise) { Parallel.forRanges(count, minimumChunk: 16_384) { range in
            for i in range { out[i] = max(0, a[i] + b[i]) }
        } }
    }

    /// out = dy where the ReLU's output was positive, else 0.
    public static func reluGradient(output: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                    into out: UnsafeMutablePointer<Float>, count: Int) {
        PhaseProfiler.measure(.elementwise) { Parallel.forRanges(count, minimumChunk: 16_384) { range in
            for i in range { out[i] = output[i] > 0 ? outputGradient[i] : 0 }
        } }
    }
}
