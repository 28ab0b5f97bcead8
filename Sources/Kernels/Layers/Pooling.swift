/// Global average pooling over each NCHW plane.
public enum GlobalAveragePool {
    /// output[n, c] = mean of input[n, c, :, :]
    public static func forward(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                               batch: Int, channels: Int, plane: Int) {
        PhaseProfiler.measure(.elementwise) { Parallel.forEach(batch * channels, minimumChunk: max(1, 16_384 / max(1, plane))) { index in
            let x = input + index * plane
            var sum: Float = 0
            for i in 0..<plane { sum += x[i] }
            output[index] = sum / Float(plane)
        } }
    }

    /// inputGradient[n, c, :, :] = outputGradient[n, c] / plane
    public static func backward(outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>,
                                batch: Int, channels: Int, plane: Int) {
        PhaseProfiler.measure(.elementwise) { Parallel.forEach(batch * channels, minimumChunk: max(1, 16_384 / max(1, plane))) { index in
            (inputGradient + index * plane).update(repeating: outputGradient[index] / Float(plane), count: plane)
        } }
    }
}
