@testable import Kernels
import TestSupport
import XCTest

/// Our Winograd convolutions, F(2x2, 3x3) in bf16 and float32 and F(4x4, 3x3)
/// in float32, against the im2col reference. On small integers every value
/// F(2x2, 3x3) rounds (transformed inputs, gradients and weights: integers up
/// to 32 and quarters up to 5) is exact in bf16 and every sum exact in
/// float32, so there it must equal the reference to the last bit, which any
/// wrong transform, index or edge breaks. F(4x4, 3x3)'s weight transform
/// divides by 6 and 24, so it cannot be exact; a wrong index or edge still
/// shows as an error of the order of the values, a million times its bound.
/// On random values both must stay within the precision's rounding.
/// The kernels are called directly, so the float32 ones are tested on AVX-512
/// CPUs too, where the engine sends float32 Winograd to oneDNN's own.
final class WinogradConvolutionTests: XCTestCase {
    private var generator = SeededGenerator(seed: 31)

    struct Case {
        let inputChannels, outputChannels, batch, height, width: Int
        let layouts: ConvolutionLayouts
        let weightGradientLayout: WeightGradientLayout
        let bias: Bool
    }

    static let cases: [Case] = [
        // Odd sizes (ragged last tiles), plain tensors, bias.
        Case(inputChannels: 16, outputChannels: 32, batch: 2, height: 9, width: 11, layouts: .plain, weightGradientLayout: .plain, bias: true),
        // Blocked activations and the blocked weight gradient, as the full-width networks run.
        Case(inputChannels: 32, outputChannels: 48, batch: 2, height: 8, width: 7,
             layouts: ConvolutionLayouts(input: .blocked16, output: .blocked16), weightGradientLayout: .blocked16, bias: false),
        // One side of each layout.
        Case(inputChannels: 16, outputChannels: 16, batch: 3, height: 6, width: 5,
             layouts: ConvolutionLayouts(input: .blocked16, output: .plain), weightGradientLayout: .blocked16, bias: true),
        // Channels off the 16-slab, a map thinner than one tile.
        Case(inputChannels: 5, outputChannels: 3, batch: 2, height: 1, width: 4, layouts: .plain, weightGradientLayout: .plain, bias: true),
        Case(inputChannels: 20, outputChannels: 17, batch: 1, height: 5, width: 3, layouts: .plain, weightGradientLayout: .plain, bias: false),
        // nChw8c, oneDNN's AVX2 layout (float32 only): both sides, then each side against plain.
        Case(inputChannels: 32, outputChannels: 48, batch: 2, height: 8, width: 7,
             layouts: ConvolutionLayouts(input: .blocked8, output: .blocked8), weightGradientLayout: .plain, bias: true),
        Case(inputChannels: 16, outputChannels: 32, batch: 1, height: 7, width: 9,
             layouts: ConvolutionLayouts(input: .blocked8, output: .plain), weightGradientLayout: .blocked16, bias: false),
        Case(inputChannels: 32, outputChannels: 16, batch: 2, height: 5, width: 6,
             layouts: ConvolutionLayouts(input: .plain, output: .blocked8), weightGradientLayout: .plain, bias: true),
        // More outputs than the weight gradient's chunk of 512 (the last chunk short, and ragged in the plain case).
        Case(inputChannels: 3, outputChannels: 530, batch: 1, height: 5, width: 4, layouts: .plain, weightGradientLayout: .plain, bias: true),
        Case(inputChannels: 16, outputChannels: 544, batch: 2, height: 4, width: 6,
             layouts: ConvolutionLayouts(input: .blocked16, output: .blocked16), weightGradientLayout: .blocked16, bias: false),
    ]

    private struct Results { var y, dx, dw, db: [Float] }

    private func run(_ c: Case, winograd: Bool, precision: ConvolutionPrecision, tile: WinogradConvolution.Tile, bandRows: Int?, x: [Float], w: [Float], b: [Float], dy: [Float], start: Results, accumulate: Bool) -> Results {
        let g = ConvolutionGeometry(inputChannels: c.inputChannels, outputChannels: c.outputChannels, kernel: 3, padding: 1)
        let plane = c.height * c.width
        func laid(_ values: [Float], _ layout: ActivationLayout, _ channels: Int) -> [Float] {
            var out = values
            ActivationLayout.convert(values, from: .plain, into: &out, to: layout, batch: c.batch, channels: channels, plane: plane)
            return out
        }
        func plain(_ values: [Float], _ layout: ActivationLayout, _ channels: Int) -> [Float] {
            var out = values
            ActivationLayout.convert(values, from: layout, into: &out, to: .plain, batch: c.batch, channels: channels, plane: plane)
            return out
        }
        let layouts = winograd ? c.layouts : .plain
        let gradientLayout = winograd ? c.weightGradientLayout : .plain
        let shape = [g.outputChannels, g.inputChannels, 3, 3]
        let xs = laid(x, layouts.input, g.inputChannels), dys = laid(dy, layouts.output, g.outputChannels)
        var y = laid(start.y, layouts.output, g.outputChannels), dx = laid(start.dx, layouts.input, g.inputChannels)
        var dw = gradientLayout.stored(start.dw, shape: shape), db = start.db
        var scratch = [Float](repeating: 0, count: g.scratchCount(height: c.height, width: c.width))
        let bias = c.bias ? b : nil
        if winograd {
            WinogradConvolution.forward(g, precision: precision, weight: w, bias: bias, input: xs, batch: c.batch, height: c.height,
                                width: c.width, output: &y, accumulate: accumulate, layouts: layouts, weightEpoch: nil, tile: tile,
                                bandRows: bandRows)
            db.withUnsafeMutableBufferPointer { db in
                WinogradConvolution.backward(g, precision: precision, input: xs, weight: w, outputGradient: dys, batch: c.batch,
                                     height: c.height, width: c.width, weightGradient: &dw, weightGradientLayout: gradientLayout,
                                     biasGradient: c.bias ? db.baseAddress : nil, accumulateWeightGradient: accumulate,
                                     inputGradient: &dx, accumulateInputGradient: accumulate, layouts: layouts, weightEpoch: nil,
                                     tile: tile, bandRows: bandRows)
            }
        } else {
            let engine = Im2colConvolutionEngine()
            engine.forward(g, weight: w, bias: bias, input: xs, batch: c.batch, height: c.height, width: c.width, output: &y,
                           accumulate: accumulate, scratch: &scratch)
            db.withUnsafeMutableBufferPointer { db in
                engine.backward(g, input: xs, weight: w, outputGradient: dys, batch: c.batch, height: c.height, width: c.width,
                                weightGradient: &dw, biasGradient: c.bias ? db.baseAddress : nil, accumulateWeightGradient: accumulate,
                                inputGradient: &dx, accumulateInputGradient: accumulate, scratch: &scratch)
            }
        }
        return Results(y: plain(y, layouts.output, g.outputChannels), dx: plain(dx, layouts.input, g.inputChannels),
                       dw: dw.withUnsafeBufferPointer { gradientLayout.plain($0, shape: shape) }, db: db)
    }

    /// Largest difference relative to the reference's largest magnitude.
    private func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        XCTAssertEqual(a.count, b.count)
        let scale = max(1e-12, b.map { Double(abs($0)) }.max() ?? 0)
        return zip(a, b).map { Double(abs($0 - $1)) }.max()! / scale
    }

    private func compare(_ precision: ConvolutionPrecision, tile: WinogradConvolution.Tile = .twoByTwo, bandRows: Int? = nil,
                         values: () -> Float, tolerance: Double) throws {
        try XCTSkipUnless(WinogradConvolution.isAvailable(precision),
                          precision == .bf16 ? "the bf16 Winograd kernels need AVX-512 and oneDNN's bf16 matmul"
                                             : "the float32 Winograd kernels need AVX2")
        for c in Self.cases where precision == .fp32 || (c.layouts.input != .blocked8 && c.layouts.output != .blocked8) {
            let outputs = c.batch * c.outputChannels * c.height * c.width, inputs = c.batch * c.inputChannels * c.height * c.width
            let x = (0..<inputs).map { _ in values() }, w = (0..<(c.outputChannels * c.inputChannels * 9)).map { _ in values() }
            let b = (0..<c.outputChannels).map { _ in values() }, dy = (0..<outputs).map { _ in values() }
            for accumulate in [false, true] {
                let start = accumulate
                    ? Results(y: (0..<outputs).map { _ in values() }, dx: (0..<inputs).map { _ in values() },
                              dw: (0..<w.count).map { _ in values() }, db: b.map { -$0 })
                    : Results(y: [Float](repeating: 9, count: outputs), dx: [Float](repeating: 9, count: inputs),
                              dw: [Float](repeating: 9, count: w.count), db: [Float](repeating: 9, count: b.count))
                let reference = run(c, winograd: false, precision: precision, tile: tile, bandRows: nil, x: x, w: w, b: b, dy: dy, start: start, accumulate: accumulate)
                let ours = run(c, winograd: true, precision: precision, tile: tile, bandRows: bandRows, x: x, w: w, b: b, dy: dy, start: start, accumulate: accumulate)
                let label = "F(\(tile.name)) bands \(bandRows.map(String.init) ?? "none") \(c) accumulate \(accumulate)"
                XCTAssertLessThanOrEqual(relativeError(ours.y, reference.y), tolerance, "forward, \(label)")
                XCTAssertLessThanOrEqual(relativeError(ours.dx, reference.dx), tolerance, "input gradient, \(label)")
                XCTAssertLessThanOrEqual(relativeError(ours.dw, reference.dw), tolerance, "weight gradient, \(label)")
                if c.bias { XCTAssertLessThanOrEqual(relativeError(ours.db, reference.db), tolerance, "bias gradient, \(label)") }
            }
        }
    }

    func testBFloat16ExactOnSmallIntegers() throws {
        try compare(.bf16, values: { Float(Int.random(in: -2...2, using: &generator)) }, tolerance: 0)
    }

    /// bf16 keeps 8 significant bits; measured here: at most 0.5% of the largest magnitude.
    func testWithinBFloat16RoundingOnRandomValues() throws {
        try compare(.bf16, values: { Float.random(in: -1...1, using: &generator) }, tolerance: 1e-2)
    }

    func testFloat32TwoByTwoExactOnSmallIntegers() throws {
        try compare(.fp32, tile: .twoByTwo, values: { Float(Int.random(in: -2...2, using: &generator)) }, tolerance: 0)
    }

    /// Measured here: at most 1.6e-6 of the largest magnitude (an input gradient); Lavin and Gray's points gave 3.5e-6.
    func testFloat32FourByFourOnSmallIntegers() throws {
        try compare(.fp32, tile: .fourByFour, values: { Float(Int.random(in: -2...2, using: &generator)) }, tolerance: 5e-6)
    }

    /// The goldens' float32 bound.
    func testWithinFloat32RoundingOnRandomValues() throws {
        for tile in [WinogradConvolution.Tile.twoByTwo, .fourByFour] {
            try compare(.fp32, tile: tile, values: { Float.random(in: -1...1, using: &generator) }, tolerance: 1e-5)
        }
    }

    /// Bands of 1, 2 and 3 tile rows (some crossing from one image into the
    /// next, the last one shorter): each band's transforms and products run on
    /// its own tiles, the input gradient's overlapping windows add up across
    /// bands (and start from zero without accumulation), and the bands' weight
    /// gradients add up through the product's sum. On small integers every
    /// sum is still exact, so F(2x2, 3x3) must equal the reference to the last bit.
    func testBandsOfTileRows() throws {
        for rows in [1, 2, 3] {
            try compare(.fp32, tile: .twoByTwo, bandRows: rows, values: { Float(Int.random(in: -2...2, using: &generator)) }, tolerance: 0)
            try compare(.fp32, tile: .fourByFour, bandRows: rows, values: { Float(Int.random(in: -2...2, using: &generator)) },
                        tolerance: 5e-6)
            try compare(.fp32, tile: .fourByFour, bandRows: rows, values: { Float.random(in: -1...1, using: &generator) }, tolerance: 1e-5)
        }
        try compare(.bf16, bandRows: 2, values: { Float(Int.random(in: -2...2, using: &generator)) }, tolerance: 0)
    }

    /// Which layers run in bands, and how many tile rows a band holds: the
    /// wide maps with few channels (ResNet-38's first layer and b2 at batch
    /// 2), not the layers whose U is large (b3 on), nor the small ones, nor bf16.
    func testBandsPerLayerShape() {
        func rows(_ inputs: Int, _ outputs: Int, batch: Int, side: Int, precision: ConvolutionPrecision = .fp32) -> Int? {
            WinogradConvolution.Bands.rows(.init(batch: batch, height: side, width: side, inputChannels: inputs, outputChannels: outputs,
                                                 precision: precision, tile: WinogradConvolution.tile(precision, height: side, width: side)))
        }
        // b2: 28 tiles a row, 36 x 28 x (128 + 128) floats = 1 MB of V and M per tile row.
        XCTAssertEqual(rows(128, 128, batch: 2, side: 112), 4)
        // conv1a: 3 -> 64 channels (inputs padded to 16), 56 tiles a row: 645 KB per tile row.
        XCTAssertEqual(rows(3, 64, batch: 2, side: 224), 6)
        XCTAssertNil(rows(256, 256, batch: 2, side: 56), "b3: a 10 MB U, read again for every band")
        XCTAssertNil(rows(64, 64, batch: 2, side: 81), "8 MB of V: runs whole")
        XCTAssertNotNil(rows(64, 64, batch: 10, side: 81))
        XCTAssertNil(rows(128, 128, batch: 2, side: 112, precision: .bf16))
        let s = WinogradConvolution.Sizes(batch: 2, height: 9, width: 11, inputChannels: 16, outputChannels: 16, precision: .fp32,
                                          tile: .fourByFour)
        XCTAssertEqual(s.spans(rows: 4), [.init(first: 0, rows: 4), .init(first: 4, rows: 2)])
        XCTAssertEqual(s.spans(rows: nil), [.init(first: 0, rows: 6)])
        XCTAssertEqual(s.spans(rows: 10), [.init(first: 0, rows: 6)])
    }

    /// The tile each precision runs, per map size: float32 keeps F(2x2, 3x3)
    /// only where it needs fewer products (16 per 2x2 tile against 36 per 4x4).
    func testEachPrecisionsTilePerMapSize() {
        XCTAssertEqual(WinogradConvolution.tile(.bf16), .twoByTwo)
        XCTAssertEqual(WinogradConvolution.tile(.fp32), .fourByFour)
        XCTAssertEqual(WinogradConvolution.tile(.bf16, height: 56, width: 56), .twoByTwo)
        for (height, width, tile) in [(1, 1, WinogradConvolution.Tile.twoByTwo), (2, 2, .twoByTwo), (1, 8, .twoByTwo), (2, 9, .twoByTwo),
                                      (3, 3, .fourByFour), (5, 5, .fourByFour), (7, 7, .fourByFour), (4, 40, .fourByFour),
                                      (21, 21, .fourByFour), (112, 112, .fourByFour)] {
            XCTAssertEqual(WinogradConvolution.tile(.fp32, height: height, width: width), tile, "\(height)x\(width)")
        }
    }
}
