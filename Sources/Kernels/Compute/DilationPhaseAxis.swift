/// One axis (rows or columns) of a dilated layer's phase images: where the
/// d phases of that axis lie in the frames the undilated primitive runs on.
///
/// `separate`: each phase is its own frame, all of ceil(L / d) samples (the
/// last ones zero where L is not a multiple of d). `stacked`: the d phases lie
/// one after another in a single frame, `gap` zeros apart (the undilated
/// layer's padding, (k - 1) / 2), so that no output of one phase reads
/// another's pixels: L + (d - 1) gap samples in all. Both give the same sums;
/// they differ in how a tiled kernel covers them. oneDNN's Winograd F(4x4, 3x3)
/// rounds every frame up to whole 4-sample tiles, and at DeepLab's 41 x 41 map
/// with dilation 4 the separate frames of 11 take 12 samples each (48 for
/// the axis), the stacked one 44.
public struct DilationPhaseAxis: Hashable, Sendable {
    public let length: Int
    public let dilation: Int
    /// Zeros between stacked phases: the undilated kernel's reach, (k - 1) / 2.
    public let gap: Int
    public let stacked: Bool

    /// The arrangement whose frames need the fewest `tile`-sample tiles, separate on a tie
    /// (and always for `tile` 1: a direct kernel does no rounding, and separate never has more samples).
    public init(length: Int, dilation: Int, gap: Int, tile: Int) {
        let separate = DilationPhaseAxis(length: length, dilation: dilation, gap: gap, stacked: false)
        let stacked = DilationPhaseAxis(length: length, dilation: dilation, gap: gap, stacked: true)
        self = stacked.tiles(of: tile) < separate.tiles(of: tile) ? stacked : separate
    }

    public init(length: Int, dilation: Int, gap: Int, stacked: Bool) {
        precondition(length > 0 && dilation > 1 && gap >= 0)
        self.length = length
        self.dilation = dilation
        self.gap = gap
        self.stacked = stacked
    }

    /// Frames along this axis.
    public var frames: Int { stacked ? 1 : dilation }

    /// Samples of one frame.
    public var frameLength: Int {
        stacked ? length + (dilation - 1) * gap : (length + dilation - 1) / dilation
    }

    /// Tiles of `tile` samples covering every frame of the axis.
    public func tiles(of tile: Int) -> Int {
        frames * ((frameLength + tile - 1) / tile)
    }

    /// The samples of phase `p`: input positions p, p + d, ... below the length.
    public func count(ofPhase p: Int) -> Int {
        (length - p + dilation - 1) / dilation
    }

    /// The frame that holds phase `p`, and the position of its first sample in it.
    public func start(ofPhase p: Int) -> (frame: Int, position: Int) {
        guard stacked else { return (p, 0) }
        var position = 0
        for earlier in 0..<p { position += count(ofPhase: earlier) + gap }
        return (0, position)
    }

    /// The input position that frame `frame`'s sample `position` holds, or nil for a zero.
    public func source(frame: Int, position: Int) -> Int? {
        guard stacked else {
            let x = frame + dilation * position
            return x < length ? x : nil
        }
        var first = 0
        for p in 0..<dilation {
            let count = count(ofPhase: p)
            if position < first + count { return position >= first ? p + dilation * (position - first) : nil }
            first += count + gap
        }
        return nil
    }

    /// Writes frame `frame`'s samples of one input line: `line[x]` for x in
    /// this axis, zeros in between. `unit` is 1 (NCHW: one float a sample), 16
    /// or 8 (nChw16c, nChw8c: a sample is one pixel's channels of a block).
    @inline(__always)
    func gather(frame: Int, from line: UnsafePointer<Float>, unit: Int, into target: UnsafeMutablePointer<Float>) {
        let d = dilation
        var cursor = 0
        for p in stacked ? 0..<d : frame..<(frame + 1) {
            let count = count(ofPhase: p)
            let from = line + p * unit, to = target + cursor * unit
            if unit == 1 {
                for j in 0..<count { to[j] = from[d * j] }
            } else {
                for j in 0..<count { Self.copy(unit, from + d * j * unit, to + j * unit, accumulate: false) }
            }
            cursor += count
            let zeros = min(stacked ? gap : frameLength, frameLength - cursor)
            if zeros > 0 { (target + cursor * unit).update(repeating: 0, count: zeros * unit) }
            cursor += max(zeros, 0)
        }
    }

    /// Writes (or adds) a frame line's samples back into one output line, the
    /// inverse of `gather` over all frames: phase p's samples go to positions p, p + d, ...
    @inline(__always)
    func scatter(phase p: Int, from frameLine: UnsafePointer<Float>, unit: Int, into line: UnsafeMutablePointer<Float>,
                 accumulate: Bool) {
        let d = dilation, count = count(ofPhase: p)
        let from = frameLine + start(ofPhase: p).position * unit, to = line + p * unit
        if unit == 1 {
            if accumulate {
                for j in 0..<count { to[d * j] += from[j] }
            } else {
                for j in 0..<count { to[d * j] = from[j] }
            }
        } else {
            for j in 0..<count { Self.copy(unit, from + j * unit, to + d * j * unit, accumulate: accumulate) }
        }
    }

    /// One blocked sample (a pixel's 16 or 8 channels), copied or added; the
    /// widths are constants in their loops, so each is whole vectors.
    @inline(__always)
    private static func copy(_ unit: Int, _ a: UnsafePointer<Float>, _ b: UnsafeMutablePointer<Float>, accumulate: Bool) {
        switch (unit, accumulate) {
        case (16, false): for k in 0..<16 { b[k] = a[k] }
        case (16, true): for k in 0..<16 { b[k] += a[k] }
        case (_, false): for k in 0..<8 { b[k] = a[k] }
        case (_, true): for k in 0..<8 { b[k] += a[k] }
        }
    }
}
