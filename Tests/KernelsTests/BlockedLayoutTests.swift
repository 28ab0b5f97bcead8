import Kernels
import TestSupport
import XCTest

/// Tensors kept blocked (nChw16c) between layers give exactly the numbers
/// the NCHW ones give: the convolutions (on oneDNN's kernels, dilated
/// layers on their phases, in float32 and bf16), the frozen BatchNorm with
/// and without ReLU in every pair of layouts, and the channel dropout.
final class BlockedLayoutTests: XCTestCase {
    private var generator = SeededGenerator(seed: 1616)

    private func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -1...1, using: &generator) } }

    private func convert(_ values: [Float], from: ActivationLayout, to: ActivationLayout, batch: Int, channels: Int,
                         plane: Int) -> [Float] {
        var out = [Float](repeating: .nan, count: values.count)
        values.withUnsafeBufferPointer { source in
            out.withUnsafeMutableBufferPointer {
                ActivationLayout.convert(source.baseAddress!, from: from, into: $0.baseAddress!, to: to, batch: batch,
                                         channels: channels, plane: plane)
            }
        }
        return out
    }

    func testOffsetsAndConversionRoundTrip() {
        XCTAssertEqual(ActivationLayout.blocked16.offset(image: 1, channel: 19, pixel: 5, channels: 32, plane: 7),
                       (1 * 32 + 16) * 7 + 5 * 16 + 3)
        XCTAssertEqual(ActivationLayout.blocked8.offset(image: 1, channel: 19, pixel: 5, channels: 32, plane: 7),
                       (1 * 32 + 16) * 7 + 5 * 8 + 3)
        // oneDNN's own layout on this CPU: 16 channels per block where it dispatches to AVX-512, 8 below.
        XCTAssertEqual(ActivationLayout.blocked, DNNLRuntime.instructionSet.hasPrefix("avx512") ? .blocked16 : .blocked8)
        XCTAssertEqual(ActivationLayout.shared(channels: 48, allBlocked: true), ActivationLayout.blocked)
        XCTAssertEqual(ActivationLayout.shared(channels: 21, allBlocked: true), .plain)
        XCTAssertEqual(ActivationLayout.shared(channels: 48, allBlocked: false), .plain)
        let x = random(2 * 32 * 7)
        for layout in [ActivationLayout.blocked16, .blocked8] {
            let blocked = convert(x, from: .plain, to: layout, batch: 2, channels: 32, plane: 7)
            XCTAssertNotEqual(blocked, x)
            XCTAssertEqual(convert(blocked, from: layout, to: .plain, batch: 2, channels: 32, plane: 7), x)
        }
    }

    typealias Case = DNNLConvolutionTests.Case

    static let cases: [Case] = [
        Case(geometry: ConvolutionGeometry(inputChannels: 32, outputChannels: 16, kernel: 3, padding: 1), batch: 2, height: 9, width: 11, bias: false),
        Case(geometry: ConvolutionGeometry(inputChannels: 16, outputChannels: 32, kernel: 3, stride: 2, padding: 1), batch: 1, height: 13, width: 10, bias: false),
        Case(geometry: ConvolutionGeometry(inputChannels: 32, outputChannels: 64, kernel: 1), batch: 3, height: 7, width: 6, bias: false),
        Case(geometry: ConvolutionGeometry(inputChannels: 64, outputChannels: 64, kernel: 3, padding: 1), batch: 2, height: 15, width: 18, bias: true),
        // Dilated (phases where the engine takes them), odd sizes that leave padded phase rows.
        Case(geometry: ConvolutionGeometry(inputChannels: 32, outputChannels: 16, kernel: 3, padding: 2, dilation: 2), batch: 2, height: 12, width: 9, bias: false),
        Case(geometry: ConvolutionGeometry(inputChannels: 16, outputChannels: 32, kernel: 3, padding: 4, dilation: 4), batch: 1, height: 14, width: 15, bias: false),
        // One side off the 16-blocks stays plain (ASPP into 21 classes).
        Case(geometry: ConvolutionGeometry(inputChannels: 64, outputChannels: 21, kernel: 3, padding: 6, dilation: 6), batch: 2, height: 9, width: 9, bias: true),
    ]

    private struct Results: Equatable { var y, dx, dw, db: [Float] }

    /// Forward and both backward passes with the input side and the output
    /// side in `layouts`; everything handed in and returned is NCHW.
    private func run(_ c: Case, engine: OneDNNConvolutionEngine, layouts: ConvolutionLayouts, x: [Float], w: [Float], b: [Float],
                     r: [Float], start: Results, accumulate: Bool) -> Results {
        let g = c.geometry
        let (outH, outW) = g.outputSize(height: c.height, width: c.width)
        let inPlane = c.height * c.width, outPlane = outH * outW
        func toInner(_ v: [Float], _ layout: ActivationLayout, _ channels: Int, _ plane: Int) -> [Float] {
            convert(v, from: .plain, to: layout, batch: c.batch, channels: channels, plane: plane)
        }
        let xs = toInner(x, layouts.input, g.inputChannels, inPlane), rs = toInner(r, layouts.output, g.outputChannels, outPlane)
        var y = toInner(start.y, layouts.output, g.outputChannels, outPlane)
        var dx = toInner(start.dx, layouts.input, g.inputChannels, inPlane)
        var db = start.db
        // One float past a 64-byte boundary: the weight gradient stays OIHW in every run.
        let memory = UnsafeMutableRawPointer.allocate(byteCount: (w.count + 1) * 4, alignment: 64)
        defer { memory.deallocate() }
        let dw = memory.bindMemory(to: Float.self, capacity: w.count + 1) + 1
        dw.initialize(from: start.dw, count: w.count)
        engine.forward(g, weight: w, bias: c.bias ? b : nil, input: xs, batch: c.batch, height: c.height, width: c.width,
                       output: &y, accumulate: accumulate, layouts: layouts)
        db.withUnsafeMutableBufferPointer { db in
            engine.backward(g, input: xs, weight: w, outputGradient: rs, batch: c.batch, height: c.height, width: c.width,
                            weightGradient: dw, biasGradient: c.bias ? db.baseAddress! : nil, accumulateWeightGradient: accumulate,
                            inputGradient: &dx, accumulateInputGradient: accumulate, layouts: layouts)
        }
        return Results(y: convert(y, from: layouts.output, to: .plain, batch: c.batch, channels: g.outputChannels, plane: outPlane),
                       dx: convert(dx, from: layouts.input, to: .plain, batch: c.batch, channels: g.inputChannels, plane: inPlane),
                       dw: Array(UnsafeBufferPointer(start: dw, count: w.count)), db: db)
    }

    func testBlockedConvolutionsGiveThePlainResults() {
        let engines = [OneDNNConvolutionEngine(dilatedConvolutions: .dilated), OneDNNConvolutionEngine(dilatedConvolutions: .phases),
                       OneDNNConvolutionEngine(algorithm: .winograd, winogradMinimumChannels: 1, dilatedConvolutions: .phases),
                       OneDNNConvolutionEngine(precision: .bf16, dilatedConvolutions: .phases),
                       OneDNNConvolutionEngine(precision: .bf16, winogradMinimumChannels: 1, dilatedConvolutions: .phases)]
        for engine in engines {
            for c in Self.cases {
                let g = c.geometry
                XCTAssertTrue(engine.exchangesBlockedActivations(g, height: c.height, width: c.width))
                let (outH, outW) = g.outputSize(height: c.height, width: c.width)
                let x = random(c.batch * g.inputChannels * c.height * c.width), w = random(g.weightCount)
                let b = random(g.outputChannels), r = random(c.batch * g.outputChannels * outH * outW)
                let both = ConvolutionLayouts(input: .shared(channels: g.inputChannels, allBlocked: true),
                                              output: .shared(channels: g.outputChannels, allBlocked: true))
                for layouts in Set([both, ConvolutionLayouts(input: both.input), ConvolutionLayouts(output: both.output)]) {
                    for accumulate in [false, true] {
                        let start = Results(y: random(r.count), dx: random(x.count), dw: random(w.count), db: random(g.outputChannels))
                        let plain = run(c, engine: engine, layouts: .plain, x: x, w: w, b: b, r: r, start: start, accumulate: accumulate)
                        let blocked = run(c, engine: engine, layouts: layouts, x: x, w: w, b: b, r: r, start: start,
                                          accumulate: accumulate)
                        let label = "\(engine) \(g) \(c.height)x\(c.width) \(layouts) accumulate \(accumulate)"
                        XCTAssertEqual(blocked.y, plain.y, "forward, \(label)")
                        XCTAssertEqual(blocked.dx, plain.dx, "input gradient, \(label)")
                        XCTAssertEqual(blocked.dw, plain.dw, "weight gradient, \(label)")
                        XCTAssertEqual(blocked.db, plain.db, "bias gradient, \(label)")
                    }
                }
            }
        }
    }

    /// Every pair of layouts, planes with and without a ragged 16-pixel tail,
    /// with and without ReLU, writing and accumulating.
    func testBatchNormGivesThePlainResultsInEveryLayout() {
        let batch = 2, channels = 32
        let scale = random(channels), shift = random(channels)
        let all: [ActivationLayout] = [.plain, .blocked16, .blocked8]
        for plane in [1, 7, 16, 37] {
            let count = batch * channels * plane
            let x = random(count), dy = random(count), start = random(count)
            for relu in [true, false] {
                var plainY = [Float](repeating: 0, count: count)
                FrozenBatchNorm.forwardReLU(input: x, output: &plainY, scale: scale, shift: shift, batch: batch, channels: channels,
                                            plane: plane, relu: relu)
                for accumulate in [false, true] where relu || !accumulate {
                    var plainDx = start
                    if relu {
                        FrozenBatchNorm.backwardReLU(output: plainY, outputGradient: dy, inputGradient: &plainDx, accumulate: accumulate,
                                                     scale: scale, batch: batch, channels: channels, plane: plane)
                    } else {
                        FrozenBatchNorm.backward(outputGradient: dy, inputGradient: &plainDx, scale: scale, batch: batch,
                                                 channels: channels, plane: plane)
                    }
                    for input in all {
                        for output in all {
                            let layouts = ConvolutionLayouts(input: input, output: output)
                            let label = "plane \(plane) relu \(relu) accumulate \(accumulate) \(layouts)"
                            func inLayout(_ v: [Float], _ l: ActivationLayout) -> [Float] {
                                convert(v, from: .plain, to: l, batch: batch, channels: channels, plane: plane)
                            }
                            func back(_ v: [Float], _ l: ActivationLayout) -> [Float] {
                                convert(v, from: l, to: .plain, batch: batch, channels: channels, plane: plane)
                            }
                            var y = [Float](repeating: .nan, count: count)
                            FrozenBatchNorm.forwardReLU(input: inLayout(x, input), output: &y, scale: scale, shift: shift, batch: batch,
                                                        channels: channels, plane: plane, relu: relu, layouts: layouts)
                            XCTAssertEqual(back(y, output), plainY, "forward, \(label)")
                            var dx = inLayout(start, input)
                            if relu {
                                FrozenBatchNorm.backwardReLU(output: y, outputGradient: inLayout(dy, output), inputGradient: &dx,
                                                             accumulate: accumulate, scale: scale, batch: batch, channels: channels,
                                                             plane: plane, layouts: layouts)
                            } else {
                                FrozenBatchNorm.backward(outputGradient: inLayout(dy, output), inputGradient: &dx, scale: scale,
                                                         batch: batch, channels: channels, plane: plane, layouts: layouts)
                            }
                            XCTAssertEqual(back(dx, input), plainDx, "backward, \(label)")
                        }
                    }
                }
            }
        }
    }

    /// A dropout carried by the BN-ReLU before it (`dropout:`) gives, bit for
    /// bit, what the separate passes give: relu(bn(x)) then the mask forward;
    /// the mask on dy (in place) then the BN-ReLU's backward. Every pair of
    /// layouts, planes with and without ragged tails.
    func testBatchNormCarryingTheDropoutGivesTheSeparatePasses() {
        let batch = 2, channels = 32
        let scale = random(channels), shift = random(channels)
        let mask = (0..<(batch * channels)).map { $0 % 3 == 1 ? Float(0) : Float(1 / 0.7) }
        let all: [ActivationLayout] = [.plain, .blocked16, .blocked8]
        for plane in [1, 9, 16, 37] {
            let count = batch * channels * plane
            let x = random(count), dy = random(count)
            for input in all {
                for output in all {
                    let layouts = ConvolutionLayouts(input: input, output: output)
                    let label = "plane \(plane) \(layouts)"
                    func inLayout(_ v: [Float], _ l: ActivationLayout) -> [Float] {
                        convert(v, from: .plain, to: l, batch: batch, channels: channels, plane: plane)
                    }
                    let xIn = inLayout(x, input), dyOut = inLayout(dy, output)
                    var separate = [Float](repeating: .nan, count: count), carried = separate
                    FrozenBatchNorm.forwardReLU(input: xIn, output: &separate, scale: scale, shift: shift, batch: batch,
                                                channels: channels, plane: plane, layouts: layouts)
                    ChannelDropout.apply(mask: mask, to: &separate, batch: batch, channels: channels, plane: plane, layout: output)
                    mask.withUnsafeBufferPointer { m in
                        FrozenBatchNorm.forwardReLU(input: xIn, output: &carried, scale: scale, shift: shift, batch: batch,
                                                    channels: channels, plane: plane, layouts: layouts, dropout: m.baseAddress!)
                    }
                    XCTAssertEqual(carried.map(\.bitPattern), separate.map(\.bitPattern), "forward, \(label)")
                    XCTAssertTrue(separate.contains(0) && separate.contains { $0 > 0 }, "the mask and the ReLU both bite, \(label)")

                    var separateDy = dyOut, separateDx = [Float](repeating: .nan, count: count)
                    ChannelDropout.apply(mask: mask, to: &separateDy, batch: batch, channels: channels, plane: plane, layout: output)
                    FrozenBatchNorm.backwardReLU(output: separate, outputGradient: separateDy, inputGradient: &separateDx,
                                                 accumulate: false, scale: scale, batch: batch, channels: channels, plane: plane,
                                                 layouts: layouts)
                    var carriedDy = dyOut, carriedDx = [Float](repeating: .nan, count: count)
                    mask.withUnsafeBufferPointer { m in
                        FrozenBatchNorm.backwardReLU(output: carried, outputGradient: &carriedDy, dropout: m.baseAddress!,
                                                     inputGradient: &carriedDx, accumulate: false, scale: scale, batch: batch,
                                                     channels: channels, plane: plane, layouts: layouts)
                    }
                    XCTAssertEqual(carriedDx.map(\.bitPattern), separateDx.map(\.bitPattern), "backward, \(label)")
                    XCTAssertEqual(carriedDy.map(\.bitPattern), separateDy.map(\.bitPattern), "dy after the mask, \(label)")
                }
            }
        }
    }

    func testChannelDropoutGivesThePlainResultsOnBlockedTensors() {
        let batch = 2, channels = 48, plane = 13
        let mask = (0..<(batch * channels)).map { $0 % 3 == 0 ? Float(0) : 2 }
        let x = random(batch * channels * plane)
        var plain = x
        ChannelDropout.apply(mask: mask, to: &plain, batch: batch, channels: channels, plane: plane)
        for layout in [ActivationLayout.blocked16, .blocked8] {
            var blocked = convert(x, from: .plain, to: layout, batch: batch, channels: channels, plane: plane)
            ChannelDropout.apply(mask: mask, to: &blocked, batch: batch, channels: channels, plane: plane, layout: layout)
            XCTAssertEqual(convert(blocked, from: layout, to: .plain, batch: batch, channels: channels, plane: plane), plain, "\(layout)")
        }
    }
}
