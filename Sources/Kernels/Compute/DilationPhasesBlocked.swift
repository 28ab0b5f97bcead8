/// The phase split and merge of nChw16c tensors: the same map as the NCHW
/// one, moving the 16 channels of one pixel as a unit, so that layers which
/// exchange blocked tensors reach their phase images without a reorder.
extension DilationPhases {
    func splitBlocked(_ source: UnsafePointer<Float>, batch: Int, channels: Int, into phases: UnsafeMutablePointer<Float>) {
        let d = dilation, (h, w, ph, pw) = (height, width, phaseHeight, phaseWidth)
        forEachSlab(batch: batch, channels: channels) { slab, phase in
            let image = source + slab * h * w
            for p in 0..<d {
                for q in 0..<d {
                    let target = phases + phase(p, q)
                    let columns = (w - q + d - 1) / d
                    for i in 0..<ph {
                        let row = target + i * pw * 16
                        let y = p + d * i
                        guard y < h else {
                            row.update(repeating: 0, count: pw * 16)
                            continue
                        }
                        let input = image + (y * w + q) * 16
                        for j in 0..<columns {
                            let from = input + d * j * 16, to = row + j * 16
                            for k in 0..<16 { to[k] = from[k] }
                        }
                        if columns < pw { (row + columns * 16).update(repeating: 0, count: (pw - columns) * 16) }
                    }
                }
            }
        }
    }

    func mergeBlocked(_ phases: UnsafePointer<Float>, batch: Int, channels: Int, into target: UnsafeMutablePointer<Float>,
                      accumulate: Bool) {
        let d = dilation, (h, w, pw) = (height, width, phaseWidth)
        forEachSlab(batch: batch, channels: channels) { slab, phase in
            let image = target + slab * h * w
            for y in 0..<h {
                let p = y % d, i = y / d
                for q in 0..<d {
                    let source = phases + phase(p, q) + i * pw * 16
                    let output = image + (y * w + q) * 16
                    let columns = (w - q + d - 1) / d
                    for j in 0..<columns {
                        let from = source + j * 16, to = output + d * j * 16
                        if accumulate {
                            for k in 0..<16 { to[k] += from[k] }
                        } else {
                            for k in 0..<16 { to[k] = from[k] }
                        }
                    }
                }
            }
        }
    }

    /// Runs `body` for every 16-channel slab (image n, channel block b; `slab`
    /// = n C + 16 b, its first channel's plane index) across the threads, with
    /// the offset of that slab in the phase (p, q) image of a phase batch.
    private func forEachSlab(batch: Int, channels: Int, _ body: (_ slab: Int, _ phase: (Int, Int) -> Int) -> Void) {
        precondition(channels % 16 == 0, "blocked phases need channels in whole blocks of 16, not \(channels)")
        let d = dilation, phaseSize = phaseHeight * phaseWidth, blocks = channels / 16
        PhaseProfiler.measure(.phaseTransforms) {
            Parallel.forRanges(batch * blocks, minimumChunk: 1) { slabs in
                for index in slabs {
                    let n = index / blocks, c = index % blocks * 16
                    body(n * channels + c) { p, q in (((n * d + p) * d + q) * channels + c) * phaseSize }
                }
            }
        }
    }
}
