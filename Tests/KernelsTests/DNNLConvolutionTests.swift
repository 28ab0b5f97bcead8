@testable import Kernels
import TestSupport
import XCTest

/// oneDNN's convolutions against the im2col + sgemm reference, on every kind
/// of layer the networks have: 3x3, strided (odd sizes, so oneDNN's right
/// padding is negative), 1x1 direct and strided, dilated 2 and 4 (oneDNN's
/// jit kernels on some CPUs, its gemm fallback on others), the 7x7 stem, a
/// 3-channel input, channel counts off the vector width, bias, batch > 1, and
/// outputs that add to what they hold; float32 on both of oneDNN's algorithms.
final class DNNLConvolutionTests: XCTestCase {
    private var generator = SeededGenerator(seed: 2024)

    private func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -1...1, using: &generator) } }

    struct Case {
        let geometry: ConvolutionGeometry
        let batch, height, width: Int
        let bias: Bool
    }

    static let cases: [Case] = [
        Case(geometry: ConvolutionGeometry(inputChannels: 16, outputChannels: 32, kernel: 3, padding: 1), batch: 2, height: 9, width: 11, bias: false),
        Case(geometry: ConvolutionGeometry(inputChannels: 24, outputChannels: 16, kernel: 3, stride: 2, padding: 1), batch: 1, height: 13, width: 10, bias: false),
        Case(geometry: ConvolutionGeometry(inputChannels: 32, outputChannels: 64, kernel: 1), batch: 3, height: 7, width: 6, bias: false),
        Case(geometry: ConvolutionGeometry(inputChannels: 16, outputChannels: 32, kernel: 1, stride: 2), batch: 2, height: 10, width: 9, bias: false),
        Case(geometry: ConvolutionGeometry(inputChannels: 32, outputChannels: 16, kernel: 3, padding: 2, dilation: 2), batch: 2, height: 12, width: 9, bias: false),
        Case(geometry: ConvolutionGeometry(inputChannels: 16, outputChannels: 24, kernel: 3, padding: 4, dilation: 4), batch: 1, height: 14, width: 15, bias: false),
        Case(geometry: ConvolutionGeometry(inputChannels: 3, outputChannels: 16, kernel: 7, stride: 2, padding: 3), batch: 2, height: 19, width: 17, bias: false),
        Case(geometry: ConvolutionGeometry(inputChannels: 3, outputChannels: 8, kernel: 3, padding: 1), batch: 1, height: 8, width: 8, bias: false),
        // ASPP: dilated with bias into 21 classes; AffinityNet's f9: 1x1 into an odd width.
        Case(geometry: ConvolutionGeometry(inputChannels: 64, outputChannels: 21, kernel: 3, padding: 6, dilation: 6), batch: 2, height: 9, width: 9, bias: true),
        Case(geometry: ConvolutionGeometry(inputChannels: 20, outputChannels: 13, kernel: 1), batch: 2, height: 5, width: 7, bias: true),
        // Winograd's shape (3x3, stride 1) over several 4x4 tiles with ragged edges, with bias.
        Case(geometry: ConvolutionGeometry(inputChannels: 64, outputChannels: 64, kernel: 3, padding: 1), batch: 2, height: 15, width: 18, bias: true),
        // Dilated phase frames under Winograd's 4x4 tiles: rows stacked (9 -> 10: 3 tiles, against 2 x 5: 4), columns separate
        // (case 4 has the columns stacked, case 8 both).
        Case(geometry: ConvolutionGeometry(inputChannels: 16, outputChannels: 32, kernel: 3, padding: 2, dilation: 2), batch: 1, height: 9, width: 12, bias: true),
        // 256 channels: float32 Winograd's rows get their anti-aliasing padding on both sides (first case) or the input side
        // only (second, on phase frames).
        Case(geometry: ConvolutionGeometry(inputChannels: 256, outputChannels: 256, kernel: 3, padding: 1), batch: 1, height: 6, width: 7, bias: true),
        Case(geometry: ConvolutionGeometry(inputChannels: 256, outputChannels: 24, kernel: 3, padding: 2, dilation: 2), batch: 1, height: 9, width: 8, bias: false),
        // A strip two pixels thin: float32 Winograd takes F(2x2, 3x3) there (5 tiles of 16 products against 3 of 36).
        Case(geometry: ConvolutionGeometry(inputChannels: 64, outputChannels: 48, kernel: 3, padding: 1), batch: 2, height: 2, width: 9, bias: true),
    ]

    /// Largest difference relative to the reference's largest magnitude.
    private func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        let scale = max(1e-12, b.map { Double(abs($0)) }.max() ?? 0)
        return zip(a, b).map { Double(abs($0 - $1)) }.max()! / scale
    }

    private struct Results { var y, dx, dw, db: [Float] }

    /// Forward, backward-data and backward-weights of one case on one engine, each
    /// starting from `start` (all zeros, or values that accumulating outputs keep).
    private func run(_ c: Case, engine: any ConvolutionEngine, x: [Float], w: [Float],
                     b: [Float], r: [Float], accumulate: Bool, start: Results, combined: Bool = true) -> Results {
        let g = c.geometry
        var out = start
        // The engine may write the weight gradient blocked (into aligned memory, as the
        // parameter store's): it starts from, and is compared as, OIHW.
        let weightShape = [g.outputChannels, g.inputChannels, g.kernel, g.kernel]
        let alignedGradient = UnsafeMutableRawPointer.allocate(byteCount: start.dw.count * 4, alignment: 64)
        defer { alignedGradient.deallocate() }
        let layout = engine.weightGradientLayout(g, gradient: alignedGradient)
        let storedGradient = layout.stored(start.dw, shape: weightShape)
        let dwPointer = alignedGradient.bindMemory(to: Float.self, capacity: storedGradient.count)
        dwPointer.initialize(from: storedGradient, count: storedGradient.count)
        var scratch = [Float](repeating: 0, count: max(1, g.scratchCount(height: c.height, width: c.width)))
        x.withUnsafeBufferPointer { x in w.withUnsafeBufferPointer { w in b.withUnsafeBufferPointer { b in r.withUnsafeBufferPointer { r in
            scratch.withUnsafeMutableBufferPointer { s in
                let bias = c.bias ? b.baseAddress! : nil
                engine.forward(g, weight: w.baseAddress!, bias: bias, input: x.baseAddress!, batch: c.batch, height: c.height,
                               width: c.width, output: &out.y, accumulate: accumulate, scratch: s.baseAddress!)
                out.db.withUnsafeMutableBufferPointer { db in
                    out.dx.withUnsafeMutableBufferPointer { dx in
                        if combined {
                            engine.backward(g, input: x.baseAddress!, weight: w.baseAddress!, outputGradient: r.baseAddress!,
                                            batch: c.batch, height: c.height, width: c.width, weightGradient: dwPointer,
                                            biasGradient: c.bias ? db.baseAddress! : nil, accumulateWeightGradient: accumulate,
                                            inputGradient: dx.baseAddress!, accumulateInputGradient: accumulate,
                                            scratch: s.baseAddress!)
                            return
                        }
                        engine.backwardInput(g, weight: w.baseAddress!, outputGradient: r.baseAddress!, batch: c.batch,
                                             height: c.height, width: c.width, inputGradient: dx.baseAddress!,
                                             accumulate: accumulate, scratch: s.baseAddress!)
                        engine.backwardWeight(g, input: x.baseAddress!, outputGradient: r.baseAddress!, batch: c.batch,
                                              height: c.height, width: c.width, weightGradient: dwPointer,
                                              biasGradient: c.bias ? db.baseAddress! : nil, accumulate: accumulate,
                                              scratch: s.baseAddress!)
                    }
                }
            }
        } } } }
        out.dw = layout.plain(UnsafeBufferPointer(start: dwPointer, count: storedGradient.count), shape: weightShape)
        return out
    }

    private func compare(precision: ConvolutionPrecision, algorithm: ConvolutionAlgorithm = .direct, winogradMinimumChannels: Int = 64,
                         dilated: DilatedConvolutions = .auto, tolerance: Double) {
        let engine = OneDNNConvolutionEngine(precision: precision, algorithm: algorithm, winogradMinimumChannels: winogradMinimumChannels,
                                             dilatedConvolutions: dilated)
        for (index, c) in Self.cases.enumerated() {
            let g = c.geometry
            let (outH, outW) = g.outputSize(height: c.height, width: c.width)
            let x = random(c.batch * g.inputChannels * c.height * c.width), w = random(g.weightCount)
            let b = random(g.outputChannels), r = random(c.batch * g.outputChannels * outH * outW)
            // bf16's reference is the float32 convolution of the operands bf16 rounds to.
            let rounding: ([Float]) -> [Float] = precision == .bf16 ? { $0.map(BFloat16.rounded) } : { $0 }
            for accumulate in [false, true] {
                let start = accumulate
                    ? Results(y: random(r.count), dx: random(x.count), dw: random(w.count), db: random(g.outputChannels))
                    : Results(y: [Float](repeating: 9, count: r.count), dx: [Float](repeating: 9, count: x.count),
                              dw: [Float](repeating: 9, count: w.count), db: [Float](repeating: 9, count: g.outputChannels))
                let reference = run(c, engine: Im2colConvolutionEngine(), x: rounding(x), w: rounding(w), b: b, r: rounding(r),
                                    accumulate: accumulate, start: start)
                let ours = run(c, engine: engine, x: x, w: w, b: b, r: r,
                               accumulate: accumulate, start: start)
                let label = "case \(index) \(g) batch \(c.batch) \(c.height)x\(c.width) bias \(c.bias) accumulate \(accumulate) "
                    + "\(precision) \(algorithm) dilated \(dilated)"
                XCTAssertLessThan(relativeError(ours.y, reference.y), tolerance, "forward, \(label)")
                XCTAssertLessThan(relativeError(ours.dx, reference.dx), tolerance, "backward-data, \(label)")
                XCTAssertLessThan(relativeError(ours.dw, reference.dw), tolerance, "backward-weights, \(label)")
                if c.bias { XCTAssertLessThan(relativeError(ours.db, reference.db), tolerance, "bias gradient, \(label)") }
            }
        }
    }

    func testFloat32MatchesTheIm2colReferenceOnEveryLayerKind() {
        compare(precision: .fp32, algorithm: .direct, dilated: .dilated, tolerance: 1e-5)
    }

    /// Winograd's transforms round differently from a direct sum, but on these
    /// shapes stay within float32's 1e-5 of the reference too.
    func testWinogradMatchesTheIm2colReferenceOnEveryLayerKind() {
        compare(precision: .fp32, algorithm: .winograd, winogradMinimumChannels: 1, dilated: .dilated, tolerance: 1e-5)
    }

    /// Dilated layers on their phase images (odd sizes that leave padded rows
    /// and columns, dilations 2, 4 and 6, bias, accumulating outputs), on the
    /// direct kernels and on Winograd, match the dilated reference.
    func testDilatedLayersOnTheirPhasesMatchTheReference() {
        compare(precision: .fp32, algorithm: .direct, dilated: .phases, tolerance: 1e-5)
        compare(precision: .fp32, algorithm: .winograd, winogradMinimumChannels: 1, dilated: .phases, tolerance: 1e-5)
        compare(precision: .bf16, dilated: .phases, tolerance: 1e-5)
        // Our bf16 Winograd on the phase frames: within bf16's rounding of its transforms (WinogradConvolutionTests).
        compare(precision: .bf16, algorithm: .winograd, winogradMinimumChannels: 1, dilated: .phases, tolerance: 1e-2)
    }

    /// oneDNN writes the weight gradient in its OIhw16i16o where the channels
    /// fill 16-blocks and the memory is 64-byte aligned (its kernels store
    /// aligned); anywhere else it stays OIHW, and im2col is always OIHW.
    func testWeightGradientsAreBlockedOnlyWhereOneDNNCanWriteThem() {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: 1024, alignment: 64)
        defer { memory.deallocate() }
        let wide = ConvolutionGeometry(inputChannels: 32, outputChannels: 48, kernel: 3, padding: 1)
        let thin = ConvolutionGeometry(inputChannels: 8, outputChannels: 48, kernel: 1)
        let engine = OneDNNConvolutionEngine()
        XCTAssertEqual(engine.weightGradientLayout(wide, gradient: memory), .blocked16)
        XCTAssertEqual(engine.weightGradientLayout(wide, gradient: memory + 4), .plain, "not on a 64-byte boundary")
        XCTAssertEqual(engine.weightGradientLayout(thin, gradient: memory), .plain, "8 inputs do not fill a block")
        XCTAssertEqual(Im2colConvolutionEngine().weightGradientLayout(wide, gradient: memory), .plain)
        // Element (o, i, k) of the blocked layout: tile (o/16, i/16), then tap, then i, with o innermost.
        XCTAssertEqual(WeightGradientLayout.blocked16.element(output: 17, input: 3, tap: 5, inputs: 32, taps: 9),
                       ((1 * 2 + 0) * 9 + 5) * 256 + 3 * 16 + 1)
        let values = (0..<(48 * 32 * 9)).map(Float.init), shape = [48, 32, 3, 3]
        let blocked = WeightGradientLayout.blocked16.stored(values, shape: shape)
        XCTAssertNotEqual(blocked, values)
        XCTAssertEqual(blocked.withUnsafeBufferPointer { WeightGradientLayout.blocked16.plain($0, shape: shape) }, values)
    }

    /// `unblock` puts a band of 16 outputs of a blocked gradient in OIHW rows
    /// (what the optimiser reads), for 1x1, 3-tap and 3x3 kernels: the rows
    /// of `plain`, and the padding between rows untouched.
    func testUnblockingABandGivesThePlainRows() {
        for (outputs, inputs, taps) in [(32, 48, 9), (16, 16, 1), (48, 32, 3)] {
            let shape = [outputs, inputs, taps], count = outputs * inputs * taps
            let values = (0..<count).map { Float($0) * 0.5 - 7 }
            let blocked = WeightGradientLayout.blocked16.stored(values, shape: shape)
            let rowLength = inputs * taps, stride = WeightGradientLayout.paddedRowStride(rowLength)
            for band in 0..<(outputs / 16) {
                var rows = [Float](repeating: .nan, count: 16 * stride)
                blocked.withUnsafeBufferPointer { source in
                    rows.withUnsafeMutableBufferPointer {
                        WeightGradientLayout.unblock(band: band, of: source.baseAddress!, inputs: inputs, taps: taps,
                                                     into: $0.baseAddress!, rowStride: stride)
                    }
                }
                for o in 0..<16 {
                    let start = (band * 16 + o) * rowLength
                    XCTAssertEqual(Array(rows[o * stride..<o * stride + rowLength]), Array(values[start..<start + rowLength]),
                                   "\(shape), band \(band), row \(o)")
                    XCTAssertTrue(rows[o * stride + rowLength..<(o + 1) * stride].allSatisfy(\.isNaN), "\(shape): padding untouched")
                }
            }
        }
    }

    /// Both backward passes in one call (the output gradient converted once)
    /// give exactly what the two separate calls give, on every path.
    func testOneBackwardCallEqualsTheTwoPasses() {
        for engine in [OneDNNConvolutionEngine(dilatedConvolutions: .dilated), OneDNNConvolutionEngine(dilatedConvolutions: .phases),
                       OneDNNConvolutionEngine(algorithm: .winograd, winogradMinimumChannels: 1, dilatedConvolutions: .phases),
                       OneDNNConvolutionEngine(precision: .bf16),
                       OneDNNConvolutionEngine(precision: .bf16, winogradMinimumChannels: 1, dilatedConvolutions: .phases)] {
            for c in Self.cases {
                let g = c.geometry
                let (outH, outW) = g.outputSize(height: c.height, width: c.width)
                let x = random(c.batch * g.inputChannels * c.height * c.width), w = random(g.weightCount)
                let b = random(g.outputChannels), r = random(c.batch * g.outputChannels * outH * outW)
                for accumulate in [false, true] {
                    let start = Results(y: random(r.count), dx: random(x.count), dw: random(w.count), db: random(g.outputChannels))
                    let one = run(c, engine: engine, x: x, w: w, b: b, r: r, accumulate: accumulate, start: start)
                    let two = run(c, engine: engine, x: x, w: w, b: b, r: r, accumulate: accumulate, start: start, combined: false)
                    let label = "\(engine) \(g) \(c.height)x\(c.width) accumulate \(accumulate)"
                    XCTAssertEqual(one.dx, two.dx, "input gradient, \(label)")
                    XCTAssertEqual(one.dw, two.dw, "weight gradient, \(label)")
                    XCTAssertEqual(one.db, two.db, "bias gradient, \(label)")
                }
            }
        }
    }

    /// Splitting into phase frames and merging back is the identity (zeros
    /// dropped), and every frame holds the pixels d apart where the
    /// arrangement puts them: separate frames of ceil(L / d), or the d phases
    /// stacked in one frame, (k - 1) / 2 zeros apart. Every arrangement of both
    /// axes, NCHW and nChw16c.
    func testPhaseFramesHoldThePixelsDilationApart() {
        for (d, kernel, height, width) in [(2, 3, 5, 4), (4, 3, 14, 15), (3, 3, 7, 7), (6, 3, 9, 9), (2, 5, 7, 6), (4, 3, 3, 2)] {
            let g = ConvolutionGeometry(inputChannels: 16, outputChannels: 5, kernel: kernel, padding: d * (kernel - 1) / 2, dilation: d)
            let gap = (kernel - 1) / 2
            for (stackRows, stackColumns) in [(false, false), (true, false), (false, true), (true, true)] {
                let phases = DilationPhases(g, rows: DilationPhaseAxis(length: height, dilation: d, gap: gap, stacked: stackRows),
                                            columns: DilationPhaseAxis(length: width, dilation: d, gap: gap, stacked: stackColumns))
                // Where each input position lands on its axis, worked out here from the definition.
                func layout(_ length: Int, stacked: Bool) -> (frames: Int, size: Int, place: (Int) -> (frame: Int, at: Int)) {
                    let counts: [Int] = (0..<d).map { p in Array(stride(from: p, to: length, by: d)).count }
                    var starts: [Int] = [0]
                    for p in 1..<d { starts.append(starts[p - 1] + counts[p - 1] + gap) }
                    if stacked { return (1, length + (d - 1) * gap, { position in (0, starts[position % d] + position / d) }) }
                    return (d, (length + d - 1) / d, { position in (position % d, position / d) })
                }
                let rowLayout = layout(height, stacked: stackRows), columnLayout = layout(width, stacked: stackColumns)
                XCTAssertEqual(phases.frameCount, rowLayout.frames * columnLayout.frames)
                XCTAssertEqual(phases.frameHeight, rowLayout.size)
                XCTAssertEqual(phases.frameWidth, columnLayout.size)
                let batch = 2, channels = 16, (fh, fw) = (phases.frameHeight, phases.frameWidth)
                let x = random(batch * channels * height * width)
                // The expected frames: zeros, then every pixel at its place.
                var expected = [Float](repeating: 0, count: phases.frameFloats(batch: batch, channels: channels))
                for n in 0..<batch {
                    for c in 0..<channels {
                        for y in 0..<height {
                            for x0 in 0..<width {
                                let (fy, r) = rowLayout.place(y), (fx, s) = columnLayout.place(x0)
                                let frame = n * phases.frameCount + fy * columnLayout.frames + fx
                                expected[((frame * channels + c) * fh + r) * fw + s] = x[((n * channels + c) * height + y) * width + x0]
                            }
                        }
                    }
                }
                let label = "d \(d) k \(kernel) \(height)x\(width) stacked rows \(stackRows) columns \(stackColumns)"
                for layout in [ActivationLayout.plain, .blocked16, .blocked8] {
                    var source = x, wanted = expected
                    ActivationLayout.convert(x, from: .plain, into: &source, to: layout, batch: batch, channels: channels,
                                             plane: height * width)
                    ActivationLayout.convert(expected, from: .plain, into: &wanted, to: layout, batch: batch * phases.frameCount,
                                             channels: channels, plane: fh * fw)
                    var split = [Float](repeating: .nan, count: expected.count)
                    phases.split(source, batch: batch, channels: channels, layout: layout, into: &split)
                    XCTAssertEqual(split, wanted, "\(label) \(layout)")
                    var merged = [Float](repeating: 1, count: x.count)
                    phases.merge(split, batch: batch, channels: channels, layout: layout, into: &merged, accumulate: true)
                    XCTAssertEqual(merged, source.map { $0 + 1 }, "merge adds every pixel back once, \(label) \(layout)")
                    phases.merge(split, batch: batch, channels: channels, layout: layout, into: &merged, accumulate: false)
                    XCTAssertEqual(merged, source, "\(label) \(layout)")
                }
            }
        }
        XCTAssertNil(DilationPhases(ConvolutionGeometry(inputChannels: 3, outputChannels: 3, kernel: 3, stride: 2, padding: 2, dilation: 2),
                                    height: 8, width: 8), "strided layers have no phase form")
        XCTAssertNil(DilationPhases(ConvolutionGeometry(inputChannels: 3, outputChannels: 3, kernel: 3, padding: 1, dilation: 2),
                                    height: 8, width: 8), "only the same-size padding keeps phases apart")
        XCTAssertNil(DilationPhases(ConvolutionGeometry(inputChannels: 3, outputChannels: 3, kernel: 3, padding: 1), height: 8, width: 8))
    }

    /// Each axis takes the arrangement a kernel of that tile covers with the
    /// fewest tiles, separate on a tie: DeepLab-v2's maps at 321 under
    /// oneDNN's 4x4 Winograd tiles, ResNet-38's at 224, and our bf16 2x2 tiles.
    func testPhaseFramesTakeTheArrangementWithFewestTiles() {
        func axis(_ length: Int, _ d: Int, tile: Int) -> DilationPhaseAxis {
            DilationPhaseAxis(length: length, dilation: d, gap: 1, tile: tile)
        }
        // 41 at dilation 4: separate, 4 frames of 11 (3 tiles each, 12); stacked, 44 (11 tiles).
        XCTAssertTrue(axis(41, 4, tile: 4).stacked)
        XCTAssertEqual(axis(41, 4, tile: 4).frameLength, 44)
        XCTAssertEqual(axis(41, 4, tile: 4).tiles(of: 4), 11)
        XCTAssertTrue(axis(41, 2, tile: 4).stacked, "2 x 21 (12 tiles) against 42 (11)")
        XCTAssertTrue(axis(21, 4, tile: 4).stacked, "4 x 6 (8 tiles) against 24 (6)")
        XCTAssertFalse(axis(31, 4, tile: 4).stacked, "4 x 8 (8 tiles) against 34 (9)")
        XCTAssertFalse(axis(31, 2, tile: 4).stacked, "a tie, 2 x 16 against 32: separate")
        XCTAssertFalse(axis(28, 2, tile: 4).stacked, "ResNet-38 at 224: 2 x 14 (8 tiles) against 29 (8)")
        XCTAssertFalse(axis(28, 4, tile: 4).stacked, "ResNet-38 at 224: 4 x 7 (8 tiles) against 31 (8)")
        XCTAssertFalse(axis(28, 2, tile: 2).stacked, "bf16 tiles: 2 x 14 (14 tiles) against 29 (15)")
        XCTAssertTrue(axis(41, 2, tile: 2).stacked, "bf16 tiles: 2 x 21 (22 tiles) against 42 (21)")
        for length in [21, 31, 41, 97] {
            for d in [2, 4, 6] {
                XCTAssertFalse(axis(length, d, tile: 1).stacked, "direct kernels round nothing: never stacked (\(length), \(d))")
            }
        }
        let g = ConvolutionGeometry(inputChannels: 512, outputChannels: 512, kernel: 3, padding: 4, dilation: 4)
        let framed = DilationPhases(g, height: 41, width: 41)!.framed(forTile: 4)
        XCTAssertEqual([framed.frameCount, framed.frameHeight, framed.frameWidth], [1, 44, 44])
        XCTAssertEqual(framed.description, "16 phases in one frame of 44x44")
        XCTAssertEqual(DilationPhases(g, height: 31, width: 31)!.framed(forTile: 4).description, "16 phases of 8x8")
    }

    /// auto takes the phases where the undilated layer runs Winograd (oneDNN's
    /// in float32 on AVX-512, ours on AVX2 and in bf16 on AVX512-BF16) and for bf16 on AMX, the dilated kernels elsewhere.
    func testAutoTakesThePhasesWhereTheyWin() {
        let wide = ConvolutionGeometry(inputChannels: 64, outputChannels: 64, kernel: 3, padding: 4, dilation: 4)
        let thin = ConvolutionGeometry(inputChannels: 64, outputChannels: 21, kernel: 3, padding: 6, dilation: 6)
        func kernel(_ g: ConvolutionGeometry, _ precision: ConvolutionPrecision, _ algorithm: ConvolutionAlgorithm,
                    _ dilated: DilatedConvolutions = .auto) -> LayerKernel {
            OneDNNConvolutionEngine(precision: precision, algorithm: algorithm, dilatedConvolutions: dilated)
                .kernel(for: g, height: 28, width: 28)
        }
        let phases = DilationPhases(wide, height: 28, width: 28)!
        XCTAssertEqual(kernel(wide, .fp32, .winograd), .phases(phases, .winograd))
        XCTAssertEqual(kernel(wide, .fp32, .direct), .oneDNN(.direct), "direct kernels: the dilated ones are as fast")
        XCTAssertEqual(kernel(thin, .fp32, .winograd), .oneDNN(.direct), "21 channels: too thin for Winograd")
        XCTAssertEqual(kernel(wide, .bf16, .winograd), DNNLRuntime.hasAMX ? .phases(phases, .direct) : .oneDNN(.direct),
                       "64 channels: too thin for bf16's Winograd")
        XCTAssertEqual(kernel(wide, .bf16, .direct), DNNLRuntime.hasAMX ? .phases(phases, .direct) : .oneDNN(.direct))
        let wider = ConvolutionGeometry(inputChannels: 128, outputChannels: 128, kernel: 3, padding: 4, dilation: 4)
        let widerPhases = DilationPhases(wider, height: 28, width: 28)!
        XCTAssertEqual(kernel(wider, .bf16, .winograd),
                       WinogradConvolution.winsOnThisCPU ? .phases(widerPhases, .winograd)
                           : DNNLRuntime.hasAMX ? .phases(widerPhases, .direct) : .oneDNN(.direct))
        XCTAssertEqual(kernel(wide, .fp32, .winograd, .dilated), .oneDNN(WinogradConvolution.runsFloat32Here ? .direct : .winograd),
                       "oneDNN's Winograd resolves per pass (direct for dilated layers); ours is asked only where it fits")
        XCTAssertEqual(kernel(wide, .fp32, .direct, .phases), .phases(phases, .direct))
    }

    /// Where oneDNN has no Winograd kernels (AVX2), float32 runs ours on the
    /// 3x3 stride-1 layers wide enough, the dilated ones on their phase
    /// frames (laid out for its 4x4 tiles), and oneDNN's direct kernels on the rest.
    func testFloat32WinogradIsOursWhereOneDNNHasNone() throws {
        try XCTSkipUnless(WinogradConvolution.runsFloat32Here, "oneDNN has Winograd kernels of its own here (\(DNNLRuntime.instructionSet))")
        func kernel(_ c: Case, minimumChannels: Int = 64, dilated: DilatedConvolutions = .auto) -> String {
            OneDNNConvolutionEngine(algorithm: .winograd, winogradMinimumChannels: minimumChannels, dilatedConvolutions: dilated)
                .forwardImplementation(c.geometry, batch: c.batch, height: c.height, width: c.width, hasBias: c.bias)
        }
        let ours = WinogradConvolution.kernelName(.fp32, .fourByFour)
        XCTAssertTrue(kernel(Self.cases[10]).hasPrefix(ours), kernel(Self.cases[10]))
        XCTAssertFalse(kernel(Self.cases[0]).contains("wino"), "16 to 32 channels: too thin for Winograd to pay")
        XCTAssertTrue(kernel(Self.cases[0], minimumChannels: 1).hasPrefix(ours))
        for index in [1, 2, 6] {
            XCTAssertFalse(kernel(Self.cases[index], minimumChannels: 1).contains("wino"), "case \(index) has no Winograd form")
        }
        XCTAssertFalse(kernel(Self.cases[4], minimumChannels: 1, dilated: .dilated).contains("wino"))
        let onPhases = kernel(Self.cases[4], minimumChannels: 1)
        XCTAssertTrue(onPhases.contains("phases") && onPhases.contains(ours), onPhases)
        XCTAssertEqual(ConvolutionAlgorithm.winograd.outputTile(precision: .fp32), 4)
        let strip = kernel(Self.cases[14], minimumChannels: 1)
        XCTAssertTrue(strip.hasPrefix(WinogradConvolution.kernelName(.fp32, .twoByTwo)), strip)
    }

    /// Where oneDNN has Winograd kernels (AVX-512), eligible layers use them and
    /// the others (strided, dilated, 1x1) fall back to direct ones; bf16 runs
    /// `WinogradConvolution` on AVX512-BF16 CPUs.
    func testWinogradRunsWhereOneDNNHasItAndDirectElsewhere() throws {
        try XCTSkipUnless(DNNLRuntime.hasWinograd, "oneDNN has no Winograd kernels for this CPU (\(DNNLRuntime.instructionSet))")
        func kernel(_ c: Case, _ precision: ConvolutionPrecision, _ algorithm: ConvolutionAlgorithm, minimumChannels: Int = 64,
                    dilated: DilatedConvolutions = .dilated) -> String {
            OneDNNConvolutionEngine(precision: precision, algorithm: algorithm, winogradMinimumChannels: minimumChannels,
                                    dilatedConvolutions: dilated)
                .forwardImplementation(c.geometry, batch: c.batch, height: c.height, width: c.width, hasBias: c.bias)
        }
        let wide = Self.cases[10]
        XCTAssertTrue(kernel(wide, .fp32, .winograd).contains("wino"), kernel(wide, .fp32, .winograd))
        XCTAssertFalse(kernel(wide, .fp32, .direct).contains("wino"))
        XCTAssertFalse(kernel(wide, .bf16, .direct).contains("wino"))
        XCTAssertFalse(kernel(wide, .bf16, .winograd).contains("wino"), "64 channels: too thin for bf16's Winograd")
        XCTAssertEqual(kernel(wide, .bf16, .winograd, minimumChannels: 32).contains(WinogradConvolution.kernelName(.bf16, .twoByTwo)),
                       WinogradConvolution.winsOnThisCPU,
                       "oneDNN's Winograd is float32 only; bf16 runs ours where the CPU's bf16 is AVX512-BF16, from twice the threshold")
        XCTAssertFalse(kernel(Self.cases[0], .fp32, .winograd).contains("wino"), "16 to 32 channels: too thin for Winograd to pay")
        XCTAssertTrue(kernel(Self.cases[0], .fp32, .winograd, minimumChannels: 1).contains("wino"),
                      "without the threshold, 16 channels run Winograd")
        for index in [1, 2, 4, 6] {
            XCTAssertFalse(kernel(Self.cases[index], .fp32, .winograd, minimumChannels: 1).contains("wino"), "case \(index) has no Winograd form")
        }
        let onPhases = kernel(Self.cases[4], .fp32, .winograd, minimumChannels: 1, dilated: .auto)
        XCTAssertTrue(onPhases.hasPrefix("4 phases in 2 frames of 6x10: ") && onPhases.contains("wino"),
                      "a dilated layer's phases run Winograd, the 9 columns stacked (10: 3 tiles, not 2 x 5: 4): \(onPhases)")
    }

    /// Native (AMX, AVX512-BF16) or emulated, bf16 multiplies the operands
    /// rounded to bfloat16 and accumulates in float32: the float32 reference on
    /// rounded operands is the same up to summation order.
    func testBFloat16IsTheFloat32ConvolutionOfRoundedOperands() {
        compare(precision: .bf16, dilated: .dilated, tolerance: 1e-5)
    }

    func testBFloat16RoundsToNearestEven() {
        XCTAssertEqual(BFloat16.rounded(1), 1)
        XCTAssertEqual(BFloat16.rounded(1 + 0x1p-8), 1, "a tie goes to the even neighbour, 1")
        XCTAssertEqual(BFloat16.rounded(1 + 3 * 0x1p-8), 1 + 0x1p-6, "a tie goes to the even neighbour, 1 + 2^-6")
        XCTAssertEqual(BFloat16.rounded(1 + 0x1p-8 + 0x1p-20), 1 + 0x1p-7, "above the tie rounds up")
        XCTAssertEqual(BFloat16.rounded(-3.14159265), -3.140625)
        XCTAssertEqual(BFloat16.rounded(.infinity), .infinity)
        var values: [Float] = (0..<200_000).map { Float($0) * 1.0001 - 7 }
        let expected = values.map(BFloat16.rounded)
        values.withUnsafeMutableBufferPointer { BFloat16.round($0.baseAddress!, count: $0.count) }
        XCTAssertEqual(values, expected, "the parallel in-place rounding is the scalar one")
    }

    func testPlansAreCreatedOncePerShape() {
        let c = Self.cases[0]
        let g = c.geometry
        let (outH, outW) = g.outputSize(height: c.height, width: c.width)
        let x = random(c.batch * g.inputChannels * c.height * c.width), w = random(g.weightCount)
        var y = [Float](repeating: 0, count: c.batch * g.outputChannels * outH * outW)
        func forward(height: Int) {
            OneDNNConvolutionEngine().forward(g, weight: w, bias: nil, input: x, batch: 1, height: height, width: c.width, output: &y)
        }
        forward(height: c.height)
        let before = DNNLConvolution.cachedPlanCount
        for _ in 0..<3 { forward(height: c.height) }
        XCTAssertEqual(DNNLConvolution.cachedPlanCount, before, "the same shape reuses its plan")
        forward(height: c.height - 1)
        XCTAssertEqual(DNNLConvolution.cachedPlanCount, min(before + 1, DNNLConvolution.planCapacity), "a new size is a new plan")
    }
}
