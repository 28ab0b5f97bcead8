import Foundation
import Kernels

/// Splat, blur and slice (spec `dense-crf.md` 4.6-4.8), in pieces that the
/// CRF's mean-field loop can also run inside its own per-pixel pass: chunk
/// by chunk (`beginChunk`, `splat(pixel:...)`), then `finishSplat` and `blur`.
extension PermutohedralLattice {
    /// The pixels of splat chunk `c`.
    @inline(__always)
    func pixels(ofChunk c: Int) -> Range<Int> {
        (pixelCount * c / Self.chunkCount)..<(pixelCount * (c + 1) / Self.chunkCount)
    }

    /// The two vertex buffers of `workspace`; splat into one, blur alternates.
    func vertexBuffers(_ workspace: UnsafeMutablePointer<Float>, valuesPerPixel n: Int) -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
        (workspace, workspace + (vertexCount + 1) * n)
    }

    /// Where chunk `c` splats and the lowest vertex id it may write there (see
    /// `chunkCount`), after zeroing the rows that it alone writes.
    @inline(__always)
    func beginChunk(_ c: Int, target: UnsafeMutablePointer<Float>, valuesPerPixel n: Int,
                    workspace: UnsafeMutablePointer<Float>) -> (UnsafeMutablePointer<Float>, Int32) {
        let rows = vertexCount + 1
        if positionOnly {
            let first = Int(firstOwnedId[c]), end = Int(firstOwnedId[c + 1])
            (target + first * n).update(repeating: 0, count: (end - first) * n)
            return (target, firstOwnedId[c])
        }
        let own = workspace + (2 + c) * rows * n
        own.update(repeating: 0, count: rows * n)
        return (own, 0)
    }

    /// Adds pixel `i`'s values, times `scale`, to its simplex's vertices in
    /// `target` (those from `firstOwned` on; the others wait for `finishSplat`).
    @inline(__always)
    func splat(pixel i: Int, values: UnsafePointer<Float>, scale: Float, valuesPerPixel n: Int,
               into target: UnsafeMutablePointer<Float>, firstOwned: Int32) {
        let D = dimension + 1
        for r in 0..<D {
            let id = offsets[i * D + r]
            if id >= firstOwned {
                RowOperations.addWeighted(target + Int(id) * n, weights[i * D + r], values, scale: scale, count: n)
            }
        }
    }

    /// Completes a splat whose chunks are all done: the deferred contributions,
    /// chunk after chunk, or the sum of the chunk buffers in chunk order.
    func finishSplat(_ input: UnsafePointer<Float>, scaledBy scale: UnsafePointer<Float>?, valuesPerPixel n: Int,
                     into target: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>) {
        let D = dimension + 1
        if positionOnly {
            for c in 1..<Self.chunkCount {
                deferredSlots[c].withUnsafeBufferPointer { slots in
                    for slot in slots {
                        let slot = Int(slot), i = slot / D
                        RowOperations.addWeighted(target + Int(offsets[slot]) * n, weights[slot], input + i * n, scale: scale?[i] ?? 1, count: n)
                    }
                }
            }
            return
        }
        let rows = vertexCount + 1, chunkSize = rows * n, chunks = Self.chunkCount
        let partial = UncheckedSendable(workspace + 2 * chunkSize), out = UncheckedSendable(target)
        for l in 0..<n { target[l] = 0 }
        Parallel.forRanges(vertexCount, minimumChunk: 256) { range in
            for index in range {
                let v = index + 1
                let row = out.value + v * n
                for l in 0..<n { row[l] = partial.value[v * n + l] }
                for chunk in 1..<chunks { RowOperations.addScaled(row, 1, partial.value + chunk * chunkSize + v * n, count: n) }
            }
        }
    }

    /// Blur [1/2, 1, 1/2] along each lattice direction in turn (absent
    /// neighbours read 0), from `splatted`, one of `vertexBuffers`, back and
    /// forth between the two; returns the one holding the result.
    func blur(_ splatted: UnsafeMutablePointer<Float>, valuesPerPixel n: Int,
              workspace: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
        let rows = vertexCount + 1
        let (first, second) = vertexBuffers(workspace, valuesPerPixel: n)
        var current = UncheckedSendable(splatted), next = UncheckedSendable(splatted == first ? second : first)
        for j in 0...dimension {
            let source = current, target = next
            for l in 0..<n { target.value[l] = 0 }
            let table = UncheckedSendable(neighbours + j * rows * 2)
            Parallel.forRanges(vertexCount, minimumChunk: 256) { range in
                for index in range {
                    let v = index + 1
                    let old = source.value + v * n, new = target.value + v * n
                    let plus = source.value + Int(table.value[2 * v]) * n, minus = source.value + Int(table.value[2 * v + 1]) * n
                    RowOperations.blur(new, old, plus, minus, count: n)
                }
            }
            swap(&current, &next)
        }
        return current.value
    }

    /// Splat (every vertex sums its pixels' weighted values in pixel order, as
    /// `chunkCount` describes) and blur; returns the vertex buffer to slice from.
    func splatAndBlur(_ input: UnsafePointer<Float>, scaledBy scale: UnsafePointer<Float>?, valuesPerPixel n: Int,
                      workspace: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
        let target = vertexBuffers(workspace, valuesPerPixel: n).0
        let buffers = UncheckedSendable((target, workspace))
        Parallel.forBalancedRanges(Self.chunkCount, rangesPerThread: Self.chunkCount) { chunks in
            for c in chunks {
                let (own, firstOwned) = beginChunk(c, target: buffers.value.0, valuesPerPixel: n, workspace: buffers.value.1)
                for i in pixels(ofChunk: c) {
                    splat(pixel: i, values: input + i * n, scale: scale?[i] ?? 1, valuesPerPixel: n, into: own, firstOwned: firstOwned)
                }
            }
        }
        finishSplat(input, scaledBy: scale, valuesPerPixel: n, into: target, workspace: workspace)
        return blur(target, valuesPerPixel: n, workspace: workspace)
    }

    /// Applies the lattice filter (splat, blur in directions 0...d, slice) to
    /// `input`, pixel-major [pixelCount][valuesPerPixel], writing `output` in
    /// the same layout (it may be `input`). `workspace` holds
    /// `workspaceCount(valuesPerPixel:)` floats. Rows of one or two values use
    /// densecrf's scalar routine's slice order; longer ones its SSE order, and
    /// run four lanes at a time when their length is a multiple of 4.
    public func filter(_ input: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>, valuesPerPixel n: Int,
                       workspace: UnsafeMutablePointer<Float>) {
        // The splat reads all of `input` before the first slice writes, so `output` may be `input`.
        let buffer = UncheckedSendable(splatAndBlur(input, scaledBy: nil, valuesPerPixel: n, workspace: workspace))
        let out = UncheckedSendable(output)
        Parallel.forRanges(pixelCount, minimumChunk: 256) { range in
            for i in range { slice(pixel: i, from: buffer.value, valuesPerPixel: n, into: out.value + i * n) }
        }
    }

    /// Pixel `i`'s filtered values from the blurred vertex buffer: its
    /// simplex's vertices, weighted and scaled by alpha, summed from 0 in
    /// vertex order.
    @inline(__always)
    func slice(pixel i: Int, from buffer: UnsafePointer<Float>, valuesPerPixel n: Int, into target: UnsafeMutablePointer<Float>) {
        let D = dimension + 1
        for l in 0..<n { target[l] = 0 }
        for r in 0..<D {
            let row = buffer + Int(offsets[i * D + r]) * n
            let w = weights[i * D + r]
            if n <= 2 {
                // The C++ scalar routine's order, used for one or two values.
                for l in 0..<n { target[l] += (w * row[l]) * alpha }
            } else {
                RowOperations.addScaled(target, w * alpha, row, count: n)
            }
        }
    }
}
