import CBlockedCopy
import CDNNL

/// 3x3 convolutions (stride 1, padding 1, undilated, or dilated ones on their
/// phase images) as Winograd convolutions: for each element of the
/// Winograd-domain tile, one product of tiles x input channels by input x
/// output channels on `BatchedMatmul`. Ours, in the two places oneDNN 2.6 has
/// no Winograd:
///
/// - bf16 on AVX512-BF16, F(2x2, 3x3) (16 elements, 2.25x fewer multiplies
///   than the direct convolution): the transforms (`winograd_bf16.h`) run in
///   float32 and round their outputs to bf16, so the products see the
///   transformed operands rounded once, where the direct kernels see the raw
///   ones rounded once; both accumulate in float32. oneDNN's direct bf16
///   kernels already run at 90-93% of the dot-product peak there, so this is
///   the only way to fewer cycles. F(4x4, 3x3)'s larger constants would lose
///   bf16's 8 bits.
/// - float32 on AVX2 (oneDNN's own Winograd is AVX-512 only), F(4x4, 3x3)
///   (36 elements, 4x fewer multiplies; `winograd4x3_f32.h`), as oneDNN's on
///   AVX-512. oneDNN's direct AVX2 kernels run at about 65% of the FMA peak,
///   its float32 matmul at 80-90% (docs/performance.md).
///
/// A pass runs its tiles as one span, or, for wide maps with few channels, a
/// band of tile rows at a time whose Winograd-domain matrices stay in the
/// cache (`Bands`, `TileSpan`). Every pass runs under `DNNLConvolution`'s
/// lock, on buffers of its own.
enum WinogradConvolution {
    /// A Winograd form F(m x m, 3x3): m x m output tiles from (m + 2) x (m + 2) input tiles.
    enum Tile {
        /// F(2x2, 3x3): 16 elements, constants 0, 1 and 1/2; transforms exact on small integers.
        case twoByTwo
        /// F(4x4, 3x3): 36 elements, constants up to 8 and down to 1/30 (points 0, ±1, 1/2, -2).
        case fourByFour

        /// Output pixels a side.
        var outputSize: Int { self == .twoByTwo ? 2 : 4 }
        /// Winograd-domain elements: the products per layer pass.
        var elements: Int { (outputSize + 2) * (outputSize + 2) }
        var name: String { self == .twoByTwo ? "2x3" : "4x3" }
        /// Winograd-domain products (per channel pair) for one height x width
        /// map: whole tiles, so a ragged edge costs a whole tile.
        func products(height: Int, width: Int) -> Int {
            elements * ((height + outputSize - 1) / outputSize) * ((width + outputSize - 1) / outputSize)
        }
    }

    /// The form each precision runs on maps of more than a few pixels a side
    /// (and the tile the dilated layers' phase frames are laid out for): bf16
    /// keeps F(2x2, 3x3), whose transforms bf16's 8 bits hold; float32 takes
    /// F(4x4, 3x3), which ran ResNet-38's and DeepLab-v2's steps faster on
    /// Zen 3 than F(2x2, 3x3) (docs/performance.md).
    static func tile(_ precision: ConvolutionPrecision) -> Tile {
        precision == .bf16 ? .twoByTwo : .fourByFour
    }

    /// The form a layer runs, decided per map size: in float32, F(4x4, 3x3)
    /// unless F(2x2, 3x3) needs fewer products there (maps of 1 or 2 pixels a
    /// side, or strips a few pixels thin, where a 4x4 tile is mostly waste).
    /// Per output pixel F(4x4, 3x3)'s transforms are also the cheaper ones
    /// (36 elements per 16 pixels, not 16 per 4), so it keeps the ties.
    static func tile(_ precision: ConvolutionPrecision, height: Int, width: Int) -> Tile {
        let preferred = tile(precision)
        guard preferred == .fourByFour else { return preferred }
        return Tile.twoByTwo.products(height: height, width: width) < preferred.products(height: height, width: width)
            ? .twoByTwo : preferred
    }

    /// How `sccam env` and `bench network` name it (oneDNN's name for the matmul kernel follows).
    static func kernelName(_ precision: ConvolutionPrecision, _ tile: Tile) -> String {
        "wino_\(tile.name) \(precision == .bf16 ? "bf16" : "f32") + matmul"
    }

    /// Whether `DNNLConvolution`'s calls in this precision, with this resolved algorithm, come here.
    static func runs(_ precision: ConvolutionPrecision, _ algorithm: ConvolutionAlgorithm) -> Bool {
        algorithm == .winograd && (precision == .bf16 || runsFloat32Here)
    }

    /// The kernel a forward pass of this shape runs on, e.g. "wino_2x3 bf16 + matmul
    /// brg:avx512_core_bf16", and its bands (`Bands`); the caller holds `DNNLConvolution`'s lock.
    static func implementation(_ g: ConvolutionGeometry, precision: ConvolutionPrecision, batch: Int, height: Int, width: Int) -> String {
        let s = Sizes(batch: batch, height: height, width: width, inputChannels: g.inputChannels, outputChannels: g.outputChannels,
                      precision: precision, tile: tile(precision, height: height, width: width))
        let spans = s.spans(rows: Bands.rows(s))
        let bands = spans.count > 1 ? ", bands of \(spans[0].rows) tile rows" : ""
        return kernelName(precision, s.tile) + " " + BatchedMatmul.plan(s.forwardProduct(tiles: spans[0].tiles(s))).implementation + bands
    }

    /// Whether a layer is a 3x3, stride-1, padding-1, undilated convolution.
    static func fits(_ g: ConvolutionGeometry) -> Bool {
        g.kernel == 3 && g.stride == 1 && g.padding == 1 && g.dilation == 1
    }

    /// Whether this CPU runs the bf16 products on AVX512-BF16's dot products
    /// (not AMX, where oneDNN's direct bf16 kernels reach several times
    /// float32's rate and the transforms would dominate; unmeasured).
    /// Read once: every convolution call resolves its algorithm through it.
    static let winsOnThisCPU: Bool = dnnl_get_effective_cpu_isa() == dnnl_cpu_isa_avx512_core_bf16

    /// Whether float32 Winograd is ours on this CPU: AVX2 and FMA, and no
    /// Winograd kernels in oneDNN (which has them on AVX-512, and faster: F(4x4, 3x3)).
    static let runsFloat32Here: Bool = !DNNLRuntime.hasWinograd && CPUFeatures.current().vectorLevel >= .avx2

    /// Whether the kernels of a precision can run here at all (tests): AVX-512
    /// (bf16) or AVX2 (float32) for the transforms, and oneDNN's matmul for its operands.
    static func isAvailable(_ precision: ConvolutionPrecision) -> Bool {
        guard CPUFeatures.current().vectorLevel >= (precision == .bf16 ? .avx512 : .avx2) else { return false }
        return DNNLConvolution.withLock {
            (try? BatchedMatmul.Plan(.init(batch: tile(precision).elements, rows: 16, inner: 16, columns: 16, operands: precision))) != nil
        }
    }

    /// The sizes of one call's Winograd-domain matrices.
    struct Sizes {
        let batch, height, width, inputChannels, outputChannels: Int
        let precision: ConvolutionPrecision
        let tile: Tile
        var elements: Int { tile.elements }
        var kernels: Kernels { Kernels(precision: precision, tile: tile) }
        var tilesY: Int { (height + tile.outputSize - 1) / tile.outputSize }
        var tilesX: Int { (width + tile.outputSize - 1) / tile.outputSize }
        var tilesPerImage: Int { tilesY * tilesX }
        var tiles: Int { batch * tilesPerImage }
        /// Channels rounded up to whole 16-channel slabs (the padding reads as zero).
        var paddedInputs: Int { (inputChannels + 15) / 16 * 16 }
        var paddedOutputs: Int { (outputChannels + 15) / 16 * 16 }
        /// The bf16 transforms (AVX-512 only) read and write plain or nChw16c tensors, the float32 ones nChw8c too.
        func require(_ layouts: ConvolutionLayouts) {
            precondition(precision == .fp32 || (layouts.input != .blocked8 && layouts.output != .blocked8),
                         "bf16 Winograd reads plain or nChw16c tensors, not nChw8c")
            precondition(precision == .fp32 || tile == .twoByTwo, "bf16 Winograd is F(2x2, 3x3) only")
        }
        /// Elements from one Winograd-domain row to the next: of V and dV (input channels), of U, M, dM and dU (output channels).
        var inputRow: Int { paddedInputs + rowPadding(paddedInputs) }
        var outputRow: Int { paddedOutputs + rowPadding(paddedOutputs) }
        /// Floats left unused after a row of `channels` in float32: rows of
        /// a multiple of 256 floats (1 KB) alias in the cache as oneDNN's jit
        /// sgemm packs them, and 16 more lifted those products from 100-130 to
        /// 145-170 GFLOP/s on Zen 3, while rows of 64 and 128 lost a little
        /// with them (docs/performance.md). bf16 rows stay dense: its brgemm
        /// kernels run on AVX-512 only, where this was not measured.
        func rowPadding(_ channels: Int) -> Int { precision == .fp32 && channels % 256 == 0 ? 16 : 0 }
        var plane: Int { height * width }
        /// Bytes of one transformed operand: bf16 or float32 (products are float32 in both).
        var operandBytes: Int { precision == .bf16 ? 2 : 4 }
        /// M = V U: tiles x inputs by inputs x outputs, for each element (the span's tiles).
        func forwardProduct(tiles: Int) -> BatchedMatmul.Shape {
            .init(batch: elements, rows: tiles, inner: paddedInputs, columns: paddedOutputs, operands: precision,
                  leftRowLength: inputRow, rightRowLength: outputRow, resultRowLength: outputRow)
        }
        /// dU (+)= Vᵀ dM: inputs x tiles by tiles x outputs (V read transposed);
        /// `accumulate` adds the product of a later span to dU.
        func weightGradientProduct(tiles: Int, accumulate: Bool) -> BatchedMatmul.Shape {
            .init(batch: elements, rows: paddedInputs, inner: tiles, columns: paddedOutputs, operands: precision, transposedLeft: true,
                  leftRowLength: inputRow, rightRowLength: outputRow, resultRowLength: outputRow, accumulate: accumulate)
        }
        /// dV = dM Uᵀ: tiles x outputs by outputs x inputs (U read transposed).
        func inputGradientProduct(tiles: Int) -> BatchedMatmul.Shape {
            .init(batch: elements, rows: tiles, inner: paddedOutputs, columns: paddedInputs, operands: precision, transposedRight: true,
                  leftRowLength: outputRow, rightRowLength: outputRow, resultRowLength: inputRow)
        }
        /// The batch's tile rows in spans of `rows` (the last one shorter), or as one span.
        func spans(rows: Int?) -> [TileSpan] {
            let total = batch * tilesY, step = max(1, min(rows ?? total, total))
            return stride(from: 0, to: total, by: step).map { TileSpan(first: $0, rows: min(step, total - $0)) }
        }
    }

    nonisolated(unsafe) private static var pool = BufferPool()
    nonisolated(unsafe) private static var layoutNumbers: [Int: Int] = [:]

    private enum Slot: Int { case transformedInput, product, transformedGradient, weightProduct, transformedWeights, biasSums }

    private static func buffer<T>(_ slot: Slot, _ count: Int, as: T.Type) -> UnsafeMutablePointer<T> {
        pool.buffer(slot: slot.rawValue, bytes: max(count, 1) * MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: count)
    }

    /// A transformed operand's buffer (bf16 or float32), `count` operands long.
    private static func operands(_ slot: Slot, _ count: Int, _ s: Sizes) -> UnsafeMutableRawPointer {
        pool.buffer(slot: slot.rawValue, bytes: max(count, 1) * s.operandBytes)
    }

    // MARK: Passes

    static func forward(_ g: ConvolutionGeometry, precision: ConvolutionPrecision, weight: UnsafePointer<Float>,
                        bias: UnsafePointer<Float>?, input: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                        output: UnsafeMutablePointer<Float>, accumulate: Bool, layouts: ConvolutionLayouts, weightEpoch: Int?,
                        tile: Tile? = nil, bandRows: Int? = nil) {
        let s = Sizes(batch: batch, height: height, width: width, inputChannels: g.inputChannels, outputChannels: g.outputChannels,
                      precision: precision, tile: tile ?? Self.tile(precision, height: height, width: width))
        s.require(layouts)
        DNNLConvolution.withLock {
            DNNLRuntime.applyThreadCount()
            let u = transformedWeights(weight, s, epoch: weightEpoch)
            let spans = s.spans(rows: bandRows ?? Bands.rows(s)), capacity = spans[0].tiles(s)
            let v = operands(.transformedInput, s.elements * capacity * s.inputRow, s)
            let m = buffer(.product, s.elements * capacity * s.outputRow, as: Float.self)
            for span in spans {
                transformInput(input, s, layout: layouts.input, span: span, into: v)
                BatchedMatmul.plan(s.forwardProduct(tiles: span.tiles(s))).execute(left: v, right: u, result: m)
                transformOutput(m, s, span: span, bias: bias, into: output, layout: layouts.output, accumulate: accumulate)
            }
        }
    }

    /// The weight gradient (+)= (when given, with the bias gradient) and the input gradient (+)= (when given).
    static func backward(_ g: ConvolutionGeometry, precision: ConvolutionPrecision, input: UnsafePointer<Float>?,
                         weight: UnsafePointer<Float>?, outputGradient: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                         weightGradient: UnsafeMutablePointer<Float>?, weightGradientLayout: WeightGradientLayout,
                         biasGradient: UnsafeMutablePointer<Float>?, accumulateWeightGradient: Bool,
                         inputGradient: UnsafeMutablePointer<Float>?, accumulateInputGradient: Bool,
                         layouts: ConvolutionLayouts, weightEpoch: Int?, tile: Tile? = nil, bandRows: Int? = nil) {
        let s = Sizes(batch: batch, height: height, width: width, inputChannels: g.inputChannels, outputChannels: g.outputChannels,
                      precision: precision, tile: tile ?? Self.tile(precision, height: height, width: width))
        s.require(layouts)
        DNNLConvolution.withLock {
            DNNLRuntime.applyThreadCount()
            let spans = s.spans(rows: bandRows ?? Bands.rows(s)), capacity = spans[0].tiles(s)
            // One row of bias sums per tile row of the batch, added up below.
            let sums = biasGradient == nil ? nil : buffer(.biasSums, s.batch * s.tilesY * s.paddedOutputs, as: Float.self)
            sums?.initialize(repeating: 0, count: s.batch * s.tilesY * s.paddedOutputs)
            let dm = operands(.transformedGradient, s.elements * capacity * s.outputRow, s)
            // What each gradient asked for needs: V and dU for the weights', U and dV for the input's.
            let weights = weightGradient.flatMap { dw in
                input.map { (input: $0, dw: dw, v: operands(.transformedInput, s.elements * capacity * s.inputRow, s),
                             du: buffer(.weightProduct, s.elements * s.paddedInputs * s.outputRow, as: Float.self)) }
            }
            let inputs = inputGradient.flatMap { dx in
                weight.map { (dx: dx, u: transformedWeights($0, s, epoch: weightEpoch),
                              dv: buffer(.product, s.elements * capacity * s.inputRow, as: Float.self)) }
            }
            for (index, span) in spans.enumerated() {
                let tiles = span.tiles(s)
                transformGradient(outputGradient, s, layout: layouts.output, span: span, into: dm, sums: sums)
                if let weights {
                    transformInput(weights.input, s, layout: layouts.input, span: span, into: weights.v)
                    BatchedMatmul.plan(s.weightGradientProduct(tiles: tiles, accumulate: index > 0))
                        .execute(left: weights.v, right: dm, result: weights.du)
                }
                if let inputs {
                    BatchedMatmul.plan(s.inputGradientProduct(tiles: tiles)).execute(left: dm, right: inputs.u, result: inputs.dv)
                    transformInputGradient(inputs.dv, s, span: span, into: inputs.dx, layout: layouts.input,
                                           accumulate: accumulateInputGradient)
                }
            }
            if let weights {
                let gradientRow = s.kernels.weightGradientRow
                // Like U's transform, it streams Winograd-domain weights, 4x the weights' size (a row of its own).
                PhaseProfiler.measure(.winogradWeightGradientTransform) {
                    Parallel.forEach(g.inputChannels) { channel in
                        gradientRow(weights.du + channel * s.outputRow, s.paddedInputs * s.outputRow, channel, weights.dw,
                                    weightGradientLayout == .blocked16 ? 1 : 0, g.outputChannels, g.inputChannels,
                                    accumulateWeightGradient ? 1 : 0)
                    }
                }
            }
            if let biasGradient, let sums {
                for c in 0..<g.outputChannels {
                    var total: Float = 0
                    for row in 0..<(s.batch * s.tilesY) { total += sums[row * s.paddedOutputs + c] }
                    biasGradient[c] = accumulateWeightGradient ? biasGradient[c] + total : total
                }
            }
        }
    }

    /// U = G g Gᵀ, [element][padded input][output row] in the operands'
    /// type: converted once per network pass (`ConvertedWeights`), for the
    /// forward pass and the input gradient alike.
    private static func transformedWeights(_ weight: UnsafePointer<Float>, _ s: Sizes, epoch: Int?) -> UnsafeMutableRawPointer {
        let count = s.elements * s.paddedInputs * s.outputRow
        var target = operands(.transformedWeights, count, s), isCurrent = false
        if let epoch, let copy = ConvertedWeights.copy(of: weight, layout: layoutNumber(s), bytes: count * s.operandBytes, epoch: epoch) {
            target = copy.buffer
            isCurrent = copy.isCurrent
        }
        if !isCurrent {
            PhaseProfiler.measure(.winogradWeightTransform) {
                let outputTiles = s.paddedOutputs / 16, inputTiles = (s.inputChannels + 15) / 16
                let weightTile = s.kernels.weightTile
                Parallel.forEach(outputTiles * inputTiles) { index in
                    let first = index % outputTiles * 16, firstInput = index / outputTiles * 16
                    let column = target + first * s.operandBytes
                    if s.precision == .bf16 {
                        sccam_winograd_weight_tile(weight, s.outputChannels, s.inputChannels, first, firstInput,
                                                   column.assumingMemoryBound(to: UInt16.self), s.paddedInputs * s.outputRow,
                                                   s.outputRow)
                    } else {
                        weightTile(weight, s.outputChannels, s.inputChannels, first, firstInput,
                                   column.assumingMemoryBound(to: Float.self), s.paddedInputs * s.outputRow, s.outputRow)
                    }
                }
                // The padding rows of the inputs stay zero (all bits zero in both types).
                for element in 0..<s.elements where s.paddedInputs > s.inputChannels {
                    let rows = element * s.paddedInputs * s.outputRow + s.inputChannels * s.outputRow
                    (target + rows * s.operandBytes).initializeMemory(as: UInt8.self, repeating: 0,
                                                                      count: (s.paddedInputs - s.inputChannels) * s.outputRow * s.operandBytes)
                }
            }
        }
        return target
    }

    /// The number `ConvertedWeights` knows this shape's transformed weights by.
    private static func layoutNumber(_ s: Sizes) -> Int {
        let key = s.paddedInputs << 32 | s.paddedOutputs << 8 | s.elements << 1 | (s.precision == .bf16 ? 1 : 0)
        if let number = layoutNumbers[key] { return number }
        var desc = BatchedMatmul.operandDescriptor(batch: s.elements, outer: s.paddedInputs, inner: s.paddedOutputs, transposed: false,
                                                   rowLength: s.outputRow, type: s.precision == .bf16 ? dnnl_bf16 : dnnl_f32)
        let number = ConvertedWeights.layoutNumber(&desc)
        layoutNumbers[key] = number
        return number
    }
}
