import CBlockedCopy

extension WinogradConvolution {
    /// Consecutive tile rows of the batch, counted across its images (image
    /// n's tile row ty is row n x tilesY + ty), that one round of transforms
    /// and products covers: the whole batch, or a band (`Bands`). A span's
    /// Winograd-domain matrices hold only its tiles, row (r - first) x tilesX
    /// + tx for tile (r, tx), so a band's stay in the cache between its transforms and its product.
    struct TileSpan: Equatable {
        let first, rows: Int
        var end: Int { first + rows }
        func tiles(_ s: Sizes) -> Int { rows * s.tilesX }
    }

    /// Runs `body(tile row of the batch, image, tile row of the image, block, offset of the slab)`
    /// for every 16-channel slab of every tile row of the span, in parallel. A
    /// task writes whole cache lines of the Winograd-domain rows (one slab of
    /// float32, two of bf16), so no line is shared between tasks.
    static func forEachTileRowSlab(_ s: Sizes, _ span: TileSpan, channels: Int, _ body: (Int, Int, Int, Int, Int) -> Void) {
        let blocks = (channels + 15) / 16, perTask = s.precision == .bf16 ? 2 : 1, groups = (blocks + perTask - 1) / perTask
        Parallel.forEach(span.rows * groups) { index in
            let row = span.first + index / groups, n = row / s.tilesY, ty = row % s.tilesY
            for block in (index % groups * perTask)..<min(blocks, (index % groups + 1) * perTask) {
                body(row, n, ty, block, (n * channels + 16 * block) * s.plane)
            }
        }
    }

    /// V = Bᵀ d B for the span's tiles, [element][tile][padded input channel] in the operands' type, into `v`.
    static func transformInput(_ input: UnsafePointer<Float>, _ s: Sizes, layout: ActivationLayout, span: TileSpan,
                               into v: UnsafeMutableRawPointer) {
        let inputSlab = s.kernels.inputSlab, elementStride = span.tiles(s) * s.inputRow
        PhaseProfiler.measure(.winogradTransforms) {
            forEachTileRowSlab(s, span, channels: s.inputChannels) { row, _, ty, block, slab in
                let target = v + ((row - span.first) * s.tilesX * s.inputRow + 16 * block) * s.operandBytes
                let blocked = layout.channelBlock, channels = min(16, s.inputChannels - 16 * block)
                if s.precision == .bf16 {
                    sccam_winograd_input_slab(input + slab, blocked, channels, s.height, s.width,
                                              target.assumingMemoryBound(to: UInt16.self), elementStride, s.inputRow, ty, 1)
                } else {
                    inputSlab(input + slab, blocked, channels, s.height, s.width,
                              target.assumingMemoryBound(to: Float.self), elementStride, s.inputRow, ty, 1)
                }
            }
        }
    }

    /// dM = A dy Aᵀ for the span's tiles into `dm` (layout of M), and each tile
    /// row's sum of dy per channel into row (tile row of the batch) of `sums`.
    static func transformGradient(_ outputGradient: UnsafePointer<Float>, _ s: Sizes, layout: ActivationLayout, span: TileSpan,
                                  into dm: UnsafeMutableRawPointer, sums: UnsafeMutablePointer<Float>?) {
        let gradientSlab = s.kernels.gradientSlab, elementStride = span.tiles(s) * s.outputRow
        PhaseProfiler.measure(.winogradTransforms) {
            forEachTileRowSlab(s, span, channels: s.outputChannels) { row, _, ty, block, slab in
                let target = dm + ((row - span.first) * s.tilesX * s.outputRow + 16 * block) * s.operandBytes
                let sum = sums.map { $0 + row * s.paddedOutputs + 16 * block }
                let blocked = layout.channelBlock, channels = min(16, s.outputChannels - 16 * block)
                if s.precision == .bf16 {
                    sccam_winograd_gradient_slab(outputGradient + slab, blocked, channels, s.height, s.width,
                                                 target.assumingMemoryBound(to: UInt16.self), elementStride, s.outputRow, ty, 1, sum)
                } else {
                    gradientSlab(outputGradient + slab, blocked, channels, s.height, s.width,
                                 target.assumingMemoryBound(to: Float.self), elementStride, s.outputRow, ty, 1, sum)
                }
            }
        }
    }

    /// y (+)= Aᵀ M A (+ bias) for the span's tiles: output tiles do not overlap, so tile rows run in parallel.
    static func transformOutput(_ m: UnsafePointer<Float>, _ s: Sizes, span: TileSpan, bias: UnsafePointer<Float>?,
                                into output: UnsafeMutablePointer<Float>, layout: ActivationLayout, accumulate: Bool) {
        let outputSlab = s.kernels.outputSlab, elementStride = span.tiles(s) * s.outputRow
        PhaseProfiler.measure(.winogradTransforms) {
            forEachTileRowSlab(s, span, channels: s.outputChannels) { row, _, ty, block, slab in
                outputSlab(m + (row - span.first) * s.tilesX * s.outputRow + 16 * block, elementStride, s.outputRow,
                           bias.map { $0 + 16 * block }, output + slab, layout.channelBlock, min(16, s.outputChannels - 16 * block),
                           s.height, s.width, ty, 1, accumulate ? 1 : 0)
            }
        }
    }

    /// dx (+)= B dV Bᵀ for the span's tiles. Neighbouring tile rows' windows
    /// overlap, so each task takes one slab of one image through the span's
    /// rows of that image in order; without `accumulate`, the spans of an
    /// image must come in order too (each clears the rows it reaches first).
    static func transformInputGradient(_ dv: UnsafePointer<Float>, _ s: Sizes, span: TileSpan, into inputGradient: UnsafeMutablePointer<Float>,
                                       layout: ActivationLayout, accumulate: Bool) {
        let inputGradientSlab = s.kernels.inputGradientSlab, elementStride = span.tiles(s) * s.inputRow
        let firstImage = span.first / s.tilesY, images = (span.end - 1) / s.tilesY - firstImage + 1
        let blocks = (s.inputChannels + 15) / 16
        PhaseProfiler.measure(.winogradTransforms) {
            Parallel.forEach(images * blocks) { index in
                let n = firstImage + index / blocks, block = index % blocks
                let first = max(span.first, n * s.tilesY), end = min(span.end, (n + 1) * s.tilesY)
                inputGradientSlab(dv + (first - span.first) * s.tilesX * s.inputRow + 16 * block, elementStride, s.inputRow,
                                  inputGradient + (n * s.inputChannels + 16 * block) * s.plane, layout.channelBlock,
                                  min(16, s.inputChannels - 16 * block), s.height, s.width, first - n * s.tilesY, end - first,
                                  accumulate ? 1 : 0)
            }
        }
    }
}
