import Foundation

/// A sum of 3x3, stride-1 convolutions at several dilations, each padded by
/// its dilation, all reading one input and adding into one output: DeepLab-v2's
/// ASPP (deeplab-v2.md 1.5), computed tap by tap with sgemm.
///
/// oneDNN 2.6 has no fast kernel for these layers: thin outputs (the classes)
/// under dilations of 12 to 24 send several of their backward passes to its
/// im2col + gemm fallback, which multiplies mostly zero columns. Here each tap
/// (ky, kx) of each branch is a row block of one tap matrix, so every pass is
/// one sgemm as deep as the input's channels:
///
/// - forward: Z = Wt X (Wt: the taps' weights, R x C; X: the input, C x HW);
///   each output pixel then adds its taps' entries of Z, shifted by (dy, dx);
/// - backward: G = the output gradient shifted under each tap (R x HW, zero
///   where a tap reads padding); dWtᵀ += X Gᵀ; dX = Wtᵀ G.
///
/// Taps that read padding only (a dilation at least the map's size) are left
/// out, and the forward pass and the weight gradient span only the input rows
/// each kernel row reaches. The multiply-adds are the layers' own; they are
/// summed in another order than oneDNN's or im2col's.
public struct DilatedBranchSum: Hashable, Sendable {
    public let inputChannels: Int
    public let outputChannels: Int
    public let dilations: [Int]

    public init(inputChannels: Int, outputChannels: Int, dilations: [Int]) {
        precondition(!dilations.isEmpty && dilations.allSatisfy { $0 >= 1 }, "dilations must be positive")
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.dilations = dilations
    }

    /// One branch's taps in one kernel row that reach the image: the rows of one sgemm.
    struct KernelRow {
        let branch, ky, dilation: Int
        /// The kernel columns whose taps reach the image.
        let columns: Range<Int>
        /// The first of this row's `columns.count x outputChannels` rows of the tap matrix.
        let firstTapRow: Int
        /// The input rows these taps read; output row y reads input row y + dy.
        let inputRows: Range<Int>

        var dy: Int { (ky - 1) * dilation }
        func dx(_ kx: Int) -> Int { (kx - 1) * dilation }
        /// The tap matrix row of column kx, output channel k.
        func tapRow(_ kx: Int, _ k: Int, outputs: Int) -> Int { firstTapRow + (kx - columns.lowerBound) * outputs + k }
    }

    /// The kernel rows that reach a `height` x `width` map, and the tap matrix's row count.
    func kernelRows(height: Int, width: Int) -> (rows: [KernelRow], tapRows: Int) {
        var rows: [KernelRow] = []
        var next = 0
        for (branch, d) in dilations.enumerated() {
            // An offset of d or more along a side reads padding only there.
            let columns = d < width ? 0..<3 : 1..<2
            for ky in (d < height ? 0..<3 : 1..<2) {
                let dy = (ky - 1) * d
                let row = KernelRow(branch: branch, ky: ky, dilation: d, columns: columns, firstTapRow: next,
                                    inputRows: max(0, dy)..<min(height, height + dy))
                rows.append(row)
                next += columns.count * outputChannels
            }
        }
        return (rows, next)
    }

    /// The tap matrix's rows for a `height` x `width` map: the taps that reach it, times the outputs.
    public func tapRowCount(height: Int, width: Int) -> Int { kernelRows(height: height, width: width).tapRows }

    /// output (+)= Σ_b conv_b(input) + bias_b, for the whole batch. The input
    /// lies in `inputLayout`, the output is NCHW; `weights[b]` is branch b's OIHW weight.
    public func forward(weights: [UnsafePointer<Float>], biases: [UnsafePointer<Float>]?, input: UnsafePointer<Float>,
                        inputLayout: ActivationLayout, batch: Int, height: Int, width: Int,
                        output: UnsafeMutablePointer<Float>, accumulate: Bool) {
        precondition(weights.count == dilations.count && (biases?.count ?? dilations.count) == dilations.count,
                     "one weight (and bias) per branch")
        let (rows, tapRows) = kernelRows(height: height, width: width)
        let plane = height * width, channels = inputChannels, outputs = outputChannels
        ScratchBuffers.lock.withLock {
            let packed = ScratchBuffers.buffer(Slot.packedWeights, count: tapRows * channels)
            pack(weights, rows: rows, into: packed)
            let z = ScratchBuffers.buffer(Slot.tapOutputs, count: tapRows * plane)
            let plainInput = ScratchBuffers.buffer(Slot.plainInput, count: inputLayout == .plain ? 1 : channels * plane)
            for n in 0..<batch {
                var x = input + n * channels * plane
                if inputLayout != .plain {
                    ActivationLayout.relayout(x, from: inputLayout, into: plainInput, to: .plain, channels: channels, plane: plane,
                                              accumulate: false)
                    x = UnsafePointer(plainInput)
                }
                for row in rows {
                    let first = row.inputRows.lowerBound * width
                    teamSGEMM(transposeA: false, transposeB: false, m: row.columns.count * outputs, n: row.inputRows.count * width,
                              k: channels, alpha: 1, a: packed + row.firstTapRow * channels, lda: channels,
                              b: x + first, ldb: plane, beta: 0, c: z + row.firstTapRow * plane + first, ldc: plane)
                }
                let image = output + n * outputs * plane
                PhaseProfiler.measure(.phaseTransforms) { Parallel.forEach(outputs) { k in
                    let target = image + k * plane
                    if let biases {
                        let bias = biases.reduce(Float(0)) { $0 + $1[k] }
                        if accumulate {
                            for i in 0..<plane { target[i] += bias }
                        } else {
                            target.update(repeating: bias, count: plane)
                        }
                    } else if !accumulate {
                        target.update(repeating: 0, count: plane)
                    }
                    for row in rows {
                        for kx in row.columns {
                            let dx = row.dx(kx)
                            let source = z + row.tapRow(kx, k, outputs: outputs) * plane
                            let columns = max(0, -dx)..<min(width, width - dx)
                            for y in (row.inputRows.lowerBound - row.dy)..<(row.inputRows.upperBound - row.dy) {
                                let from = source + (y + row.dy) * width + dx, to = target + y * width
                                for x in columns { to[x] += from[x] }
                            }
                        }
                    }
                } }
            }
        }
    }

    /// The weight and bias gradients (+)= of every branch (when given, in
    /// their layouts) and the input gradient (+)= (when given, in
    /// `inputLayout`, like the input), from the output gradient (NCHW).
    public func backward(weights: [UnsafePointer<Float>], input: UnsafePointer<Float>, inputLayout: ActivationLayout,
                         outputGradient: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                         weightGradients: [(pointer: UnsafeMutablePointer<Float>, layout: WeightGradientLayout)]?,
                         biasGradients: [UnsafeMutablePointer<Float>]?, accumulateWeightGradient: Bool,
                         inputGradient: UnsafeMutablePointer<Float>?, accumulateInputGradient: Bool) {
        precondition(weights.count == dilations.count, "one weight per branch")
        let (rows, tapRows) = kernelRows(height: height, width: width)
        let plane = height * width, channels = inputChannels, outputs = outputChannels
        let blocked = inputLayout != .plain
        ScratchBuffers.lock.withLock {
            let packed = ScratchBuffers.buffer(Slot.packedWeights, count: inputGradient == nil ? 1 : tapRows * channels)
            if inputGradient != nil { pack(weights, rows: rows, into: packed) }
            let shifted = ScratchBuffers.buffer(Slot.tapOutputs, count: tapRows * plane)
            let packedGradient = ScratchBuffers.buffer(Slot.packedGradient, count: weightGradients == nil ? 1 : tapRows * channels)
            if weightGradients != nil { packedGradient.update(repeating: 0, count: tapRows * channels) }
            let plainInput = ScratchBuffers.buffer(Slot.plainInput, count: blocked && weightGradients != nil ? channels * plane : 1)
            let plainGradient = ScratchBuffers.buffer(Slot.plainGradient, count: blocked && inputGradient != nil ? channels * plane : 1)
            var biasSums = [Double](repeating: 0, count: outputs)
            for n in 0..<batch {
                let dy = outputGradient + n * outputs * plane
                shift(dy, rows: rows, height: height, width: width, into: shifted)
                if weightGradients != nil {
                    var x = input + n * channels * plane
                    if blocked {
                        ActivationLayout.relayout(x, from: inputLayout, into: plainInput, to: .plain, channels: channels,
                                                  plane: plane, accumulate: false)
                        x = UnsafePointer(plainInput)
                    }
                    // dWtᵀ (C x R) += X Gᵀ: the channels as the long side ran 190 GFLOP/s against 153 for G Xᵀ.
                    for row in rows {
                        let first = row.inputRows.lowerBound * width
                        teamSGEMM(transposeA: false, transposeB: true, m: channels, n: row.columns.count * outputs,
                                  k: row.inputRows.count * width, alpha: 1, a: x + first, lda: plane,
                                  b: shifted + row.firstTapRow * plane + first, ldb: plane, beta: 1,
                                  c: packedGradient + row.firstTapRow, ldc: tapRows)
                    }
                }
                if biasGradients != nil {
                    for k in 0..<outputs {
                        var sum = 0.0
                        for i in 0..<plane { sum += Double(dy[k * plane + i]) }
                        biasSums[k] += sum
                    }
                }
                if let inputGradient {
                    let image = inputGradient + n * channels * plane
                    teamSGEMM(transposeA: true, transposeB: false, m: channels, n: plane, k: tapRows, alpha: 1,
                              a: packed, lda: channels, b: shifted, ldb: plane,
                              beta: !blocked && accumulateInputGradient ? 1 : 0, c: blocked ? plainGradient : image, ldc: plane)
                    if blocked {
                        ActivationLayout.relayout(plainGradient, from: .plain, into: image, to: inputLayout, channels: channels,
                                                  plane: plane, accumulate: accumulateInputGradient)
                    }
                }
            }
            if let weightGradients {
                unpack(packedGradient, tapRows: tapRows, rows: rows, into: weightGradients, accumulate: accumulateWeightGradient)
            }
            if let biasGradients {
                for gradient in biasGradients {
                    for k in 0..<outputs { gradient[k] = (accumulateWeightGradient ? gradient[k] : 0) + Float(biasSums[k]) }
                }
            }
        }
    }

    // MARK: Tap matrices

    /// The scratch slots (`ScratchBuffers`) of these passes, after the phases' 0-2.
    private enum Slot {
        static let packedWeights = 3, tapOutputs = 4, plainInput = 5, packedGradient = 6, plainGradient = 7
    }

    /// Wt[tap row of (b, ky, kx, k), c] = weights[b][k, c, ky, kx].
    private func pack(_ weights: [UnsafePointer<Float>], rows: [KernelRow], into packed: UnsafeMutablePointer<Float>) {
        let channels = inputChannels, outputs = outputChannels
        PhaseProfiler.measure(.oneDNNWeightReorder) { Parallel.forEach(rows.count * outputs) { index in
            let row = rows[index / outputs], k = index % outputs
            let weight = weights[row.branch] + k * channels * 9 + row.ky * 3
            for kx in row.columns {
                let target = packed + row.tapRow(kx, k, outputs: outputs) * channels
                for c in 0..<channels { target[c] = weight[c * 9 + kx] }
            }
        } }
    }

    /// gradients[b][k, c, ky, kx] (+)= dWtᵀ[c, tap row of (b, ky, kx, k)]; taps that reach no pixel get 0.
    private func unpack(_ packed: UnsafePointer<Float>, tapRows: Int, rows: [KernelRow],
                        into gradients: [(pointer: UnsafeMutablePointer<Float>, layout: WeightGradientLayout)], accumulate: Bool) {
        let channels = inputChannels, outputs = outputChannels
        PhaseProfiler.measure(.oneDNNWeightReorder) { Parallel.forEach(dilations.count * outputs) { index in
            let branch = index / outputs, k = index % outputs
            let (gradient, layout) = gradients[branch]
            if !accumulate {
                for c in 0..<channels {
                    for tap in 0..<9 { gradient[layout.element(output: k, input: c, tap: tap, inputs: channels, taps: 9)] = 0 }
                }
            }
            for row in rows where row.branch == branch {
                for kx in row.columns {
                    let source = packed + row.tapRow(kx, k, outputs: outputs)
                    let tap = row.ky * 3 + kx
                    for c in 0..<channels {
                        gradient[layout.element(output: k, input: c, tap: tap, inputs: channels, taps: 9)] += source[c * tapRows]
                    }
                }
            }
        } }
    }

    /// G[tap row of (b, ky, kx, k), input pixel] = dY[k] at that pixel minus the tap's offset, 0 where none.
    private func shift(_ outputGradient: UnsafePointer<Float>, rows: [KernelRow], height: Int, width: Int,
                       into shifted: UnsafeMutablePointer<Float>) {
        let plane = height * width, outputs = outputChannels
        PhaseProfiler.measure(.phaseTransforms) { Parallel.forEach(rows.count * outputs) { index in
            let row = rows[index / outputs], k = index % outputs
            let source = outputGradient + k * plane
            for kx in row.columns {
                let dx = row.dx(kx)
                let target = shifted + row.tapRow(kx, k, outputs: outputs) * plane
                target.update(repeating: 0, count: plane)
                let columns = max(0, dx)..<min(width, width + dx)
                for r in row.inputRows {
                    let from = source + (r - row.dy) * width - dx, to = target + r * width
                    for x in columns { to[x] = from[x] }
                }
            }
        } }
    }
}
