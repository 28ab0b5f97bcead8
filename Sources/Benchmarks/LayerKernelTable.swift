import Foundation
import Kernels
import Network

/// Which kernel each convolution of a network runs on, per engine: one row
/// per distinct layer shape, for `sccam env` and `sccam bench network`.
public enum LayerKernelTable {
    public struct Row: Codable, Sendable {
        /// The first layer of this shape and how many more share it.
        public let layer: String
        public let count: Int
        /// "3x3 d4 1024->2048 at 28x28".
        public let shape: String
        /// The forward kernel on each engine, in the order given.
        public let kernels: [String]
    }

    public static func rows(_ layers: [ConvolutionLayer], batch: Int, engines: [any ConvolutionEngine]) -> [Row] {
        var rows: [Row] = []
        var index: [String: Int] = [:]
        for layer in layers {
            let shape = describe(layer)
            if let row = index[shape] {
                rows[row] = Row(layer: rows[row].layer, count: rows[row].count + 1, shape: shape, kernels: rows[row].kernels)
                continue
            }
            index[shape] = rows.count
            rows.append(Row(layer: layer.name, count: 1, shape: shape, kernels: engines.map { layer.kernelName(on: $0, batch: batch) }))
        }
        return rows
    }

    /// The rows as aligned text under a header naming each engine.
    public static func text(_ rows: [Row], engines: [String]) -> String {
        let header = ["layer", "shape"] + engines
        let cells = [header] + rows.map { row in
            [row.count > 1 ? "\(row.layer) (+\(row.count - 1))" : row.layer, row.shape] + row.kernels
        }
        let widths = header.indices.map { column in cells.map { $0[column].count }.max() ?? 0 }
        return cells.map { line in
            line.enumerated().map { column, cell in
                column == line.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    static func describe(_ layer: ConvolutionLayer) -> String {
        let g = layer.geometry
        var shape = "\(g.kernel)x\(g.kernel)"
        if g.stride > 1 { shape += " s\(g.stride)" }
        if g.dilation > 1 { shape += " d\(g.dilation)" }
        return shape + " \(g.inputChannels)->\(g.outputChannels) at \(layer.height)x\(layer.width)"
    }
}

extension LayerKernelTable {
    /// The kernels of the full-width networks that train longest, at their
    /// reference sizes (ResNet-38 at 224 and DeepLab-v2 at 321, batch 1), on
    /// `compute`: what `sccam env` prints.
    public static func referenceNetworks(on compute: Compute) -> [(title: String, rows: [Row])] {
        let engine = compute.convolutionEngine
        let classifier = SCCAMNetwork(configuration: NetworkConfiguration(), compute: compute)
        let deepLab = DeepLabV2(configuration: DeepLabConfiguration(), compute: compute)
        return [
            ("ResNet-38 (classifier, AffinityNet) at 224", rows(classifier.convolutionLayers(height: 224, width: 224), batch: 1, engines: [engine])),
            ("DeepLab-v2 at 321 (scale 1)", rows(deepLab.convolutionLayers(height: 321, width: 321), batch: 1, engines: [engine])),
        ]
    }
}
