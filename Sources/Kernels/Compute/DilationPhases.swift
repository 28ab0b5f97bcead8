import Foundation

/// A dilated convolution as an undilated one on phase-subsampled images.
///
/// With stride 1, dilation d and "same" padding d (k - 1) / 2, output pixel
/// (p + d i, q + d j) reads only input pixels of the same phase (p, q), d
/// apart. So the layer equals a dilation-1 convolution (padding (k - 1) / 2)
/// on the phase images X_pq[i, j] = X[p + d i, q + d j]: the same
/// multiply-adds in a different order, and every 3x3 layer then runs on
/// oneDNN's undilated kernels (Winograd in float32, the brgemm / AMX kernels
/// in bf16), which oneDNN 2.6 has no dilated form of.
///
/// The phase images lie in frames, a batch of them per image: along each
/// axis the d phases are either separate frames or stacked in one, (k - 1) / 2
/// zeros apart (`DilationPhaseAxis`), whichever a kernel of `tile`-sample
/// tiles covers with fewer tiles. Image n's frame (fy, fx) is batch entry
/// n F + fy Fx + fx (F frames an image, Fx of them across), in the layout of
/// the tensor it comes from (NCHW, or nChw16c, where whole 16-channel pixels move at once).
public struct DilationPhases: Hashable, Sendable, CustomStringConvertible {
    /// The dilated layer and the undilated one that runs on its phases.
    public let dilated: ConvolutionGeometry
    public let undilated: ConvolutionGeometry
    public let rows: DilationPhaseAxis
    public let columns: DilationPhaseAxis

    public var dilation: Int { dilated.dilation }
    public var height: Int { rows.length }
    public var width: Int { columns.length }
    /// Frames an image's phases take, and the size of one.
    public var frameCount: Int { rows.frames * columns.frames }
    public var frameHeight: Int { rows.frameLength }
    public var frameWidth: Int { columns.frameLength }

    /// The phases of a layer of this shape, or nil when it is not a stride-1
    /// "same" dilated convolution (the only kind this decomposition covers);
    /// framed for a kernel that covers its outputs in `tile` x `tile` tiles
    /// (1: separate frames, the phase images themselves).
    public init?(_ g: ConvolutionGeometry, height: Int, width: Int, tile: Int = 1) {
        let d = g.dilation
        guard d > 1, g.stride == 1, g.kernel % 2 == 1, g.padding == d * (g.kernel - 1) / 2 else { return nil }
        let gap = (g.kernel - 1) / 2
        self.init(g, rows: DilationPhaseAxis(length: height, dilation: d, gap: gap, tile: tile),
                  columns: DilationPhaseAxis(length: width, dilation: d, gap: gap, tile: tile))
    }

    /// The same phases in frames chosen for `tile` x `tile` tiles.
    public func framed(forTile tile: Int) -> DilationPhases {
        DilationPhases(dilated, height: height, width: width, tile: tile)!
    }

    init(_ g: ConvolutionGeometry, rows: DilationPhaseAxis, columns: DilationPhaseAxis) {
        dilated = g
        undilated = ConvolutionGeometry(inputChannels: g.inputChannels, outputChannels: g.outputChannels, kernel: g.kernel,
                                        stride: 1, padding: (g.kernel - 1) / 2, dilation: 1)
        self.rows = rows
        self.columns = columns
    }

    public var description: String {
        frameCount == dilation * dilation ? "\(frameCount) phases of \(frameHeight)x\(frameWidth)"
            : "\(dilation * dilation) phases in \(frameCount == 1 ? "one frame" : "\(frameCount) frames") of \(frameHeight)x\(frameWidth)"
    }

    /// Floats of the frames of `batch` images of `channels` channels.
    public func frameFloats(batch: Int, channels: Int) -> Int {
        batch * frameCount * channels * frameHeight * frameWidth
    }

    /// Splits `batch` images into their phase frames (zeros wherever no input pixel lands).
    public func split(_ source: UnsafePointer<Float>, batch: Int, channels: Int, layout: ActivationLayout = .plain,
                      into frames: UnsafeMutablePointer<Float>) {
        let (h, w, fh, fw) = (height, width, frameHeight, frameWidth)
        forEachSlab(batch: batch, channels: channels, layout: layout) { slab, unit, frameAt in
            let image = source + slab * h * w
            for fy in 0..<rows.frames {
                for fx in 0..<columns.frames {
                    let frame = frames + frameAt(fy, fx)
                    for r in 0..<fh {
                        let row = frame + r * fw * unit
                        guard let y = rows.source(frame: fy, position: r) else {
                            row.update(repeating: 0, count: fw * unit)
                            continue
                        }
                        columns.gather(frame: fx, from: image + y * w * unit, unit: unit, into: row)
                    }
                }
            }
        }
    }

    /// Gathers phase frames back into `batch` images (dropping the zeros),
    /// writing or adding to `target`.
    public func merge(_ frames: UnsafePointer<Float>, batch: Int, channels: Int, layout: ActivationLayout = .plain,
                      into target: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let d = dilation, (h, w, fw) = (height, width, frameWidth)
        forEachSlab(batch: batch, channels: channels, layout: layout) { slab, unit, frameAt in
            let image = target + slab * h * w
            for y in 0..<h {
                let (fy, first) = rows.start(ofPhase: y % d)
                let r = first + y / d
                for q in 0..<d {
                    let frameLine = frames + frameAt(fy, columns.start(ofPhase: q).frame) + r * fw * unit
                    columns.scatter(phase: q, from: frameLine, unit: unit, into: image + y * w * unit, accumulate: accumulate)
                }
            }
        }
    }

    /// Runs `body` across the threads for every slab: one channel plane of
    /// one image (NCHW), or one block of channels (nChw16c, nChw8c), with the
    /// floats a sample takes (1, 16 or 8), its first channel's plane index n C + c, and
    /// the offset of that slab in the image's frame (fy, fx).
    private func forEachSlab(batch: Int, channels: Int, layout: ActivationLayout,
                             _ body: (_ slab: Int, _ unit: Int, _ frameAt: (Int, Int) -> Int) -> Void) {
        let unit = max(1, Int(layout.channelBlock))
        precondition(channels % unit == 0, "blocked phases need channels in whole blocks of \(unit), not \(channels)")
        let slabs = channels / unit, frameSize = frameHeight * frameWidth, (framesPerImage, across) = (frameCount, columns.frames)
        PhaseProfiler.measure(.phaseTransforms) {
            Parallel.forRanges(batch * slabs, minimumChunk: unit == 1 ? 4 : 1) { range in
                for index in range {
                    let n = index / slabs, c = index % slabs * unit
                    body(n * channels + c, unit) { fy, fx in ((n * framesPerImage + fy * across + fx) * channels + c) * frameSize }
                }
            }
        }
    }
}
