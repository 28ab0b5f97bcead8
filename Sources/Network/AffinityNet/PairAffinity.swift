import Foundation
import Kernels

/// The affinity of a pair of cells, a = exp(-mean over channels |e_to - e_from|)
/// (spec 9.1), for every pair of a `PairGeometry`, and its backward.
enum PairAffinity {
    /// embedding [N, C, h, w] -> affinities [N, 34, P], displacement-major;
    /// 0 where a pair has no target (whole-grid coverage at the grid's edge).
    static func forward(embedding: UnsafePointer<Float>, channels: Int, batch: Int, pairs: PairGeometry,
                        affinities: UnsafeMutablePointer<Float>) {
        let plane = pairs.height * pairs.width, perImage = pairs.pairCount, p = pairs.pairsPerDisplacement
        let out = UncheckedSendable(affinities), displacements = PairGeometry.displacements.count
        pairs.from.withUnsafeBufferPointer { fromCells in
        pairs.targets.withUnsafeBufferPointer { toCells in
        let fromCells = UncheckedSendable(fromCells), toCells = UncheckedSendable(toCells)
        Parallel.forEach(batch * displacements) { job in
            let n = job / displacements, d = job % displacements
            let e = embedding + n * channels * plane
            let row = out.value + n * perImage + d * p
            for k in 0..<p {
                let from = fromCells.value[k], to = toCells.value[d * p + k]
                guard to >= 0 else { row[k] = 0; continue }
                var sum: Float = 0
                for c in 0..<channels { sum += abs(e[c * plane + to] - e[c * plane + from]) }
                row[k] = expf(-(sum / Float(channels)))
            }
        }
        }
        }
    }

    /// Adds d loss / d embedding [N, C, h, w] (overwritten) from d loss / d distance
    /// [N, 34, P]: the distance is the channel mean of |e_to - e_from|, whose
    /// derivative is sign(e_to - e_from) / C (0 where they are equal, as PyTorch's abs).
    static func backward(embedding: UnsafePointer<Float>, channels: Int, batch: Int, pairs: PairGeometry,
                         distanceGradient: UnsafePointer<Float>, embeddingGradient: UnsafeMutablePointer<Float>) {
        precondition(pairs.coverage == .psa, "AffinityNet trains on psa's pairs only")
        let plane = pairs.height * pairs.width, perImage = pairs.pairCount, p = pairs.pairsPerDisplacement
        let gradient = UncheckedSendable(embeddingGradient), displacements = PairGeometry.displacements.count
        // Per image and channel: every pair writes both of its cells, so the
        // channels (not the pairs) are what the threads split, in a fixed order.
        pairs.from.withUnsafeBufferPointer { fromCells in
        pairs.targets.withUnsafeBufferPointer { toCells in
        let fromCells = UncheckedSendable(fromCells), toCells = UncheckedSendable(toCells)
        Parallel.forEach(batch * channels) { job in
            let n = job / channels, c = job % channels
            let e = embedding + (n * channels + c) * plane
            let g = gradient.value + (n * channels + c) * plane
            for i in 0..<plane { g[i] = 0 }
            let scale = 1 / Float(channels)
            for d in 0..<displacements {
                let row = distanceGradient + n * perImage + d * p
                for k in 0..<p {
                    let from = fromCells.value[k], to = toCells.value[d * p + k]
                    let difference = e[to] - e[from]
                    guard difference != 0 else { continue }
                    let step = row[k] * scale * (difference > 0 ? 1 : -1)
                    g[to] += step
                    g[from] -= step
                }
            }
        }
        }
        }
    }
}
