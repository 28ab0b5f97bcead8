import Formats
import Foundation
import Kernels

/// `sccam convert`: any weight file to safetensors with the reference's key
/// names, validated strictly against the model its shapes describe.
public enum WeightConversion {
    public struct Summary: Sendable {
        public let format: WeightFiles.Format
        public let configuration: NetworkConfiguration
        public let hasHeads: Bool
        public let written: Int
        public let ignored: [String]
        /// Model tensors the file did not have (heads only, when allowed).
        public let notLoaded: [String]
        /// What the reader skipped in the file (a training checkpoint's other entries).
        public let notes: [String]
    }

    /// The model a set of tensors describes: the width from conv1a, the round,
    /// the classes and k from the heads (none: an ImageNet backbone, taken as round 1).
    public static func configuration(of tensors: [SafetensorsTensor], path: String) throws -> (NetworkConfiguration, hasHeads: Bool) {
        guard let conv1a = tensors.first(where: { $0.name == "conv1a.weight" }), conv1a.shape.count == 4, conv1a.shape[0] > 0,
              64 % conv1a.shape[0] == 0, NetworkConfiguration.widthDivisors.contains(64 / conv1a.shape[0]) else {
            throw FormatError(path: path, "has no usable conv1a.weight: not a ResNet-38 checkpoint")
        }
        let divisor = 64 / conv1a.shape[0]
        if let head = tensors.first(where: { $0.name == "fc8.weight" }), let classes = head.shape.first, classes > 0 {
            return (NetworkConfiguration(widthDivisor: divisor, round: 0, classes: classes), true)
        }
        let parents = tensors.first(where: { $0.name == "fc8_20.weight" })?.shape.first ?? NetworkConfiguration.vocClasses
        if let sub = tensors.first(where: { $0.name == "fc8_200.weight" }), let rows = sub.shape.first, parents > 0, rows % parents == 0, rows > 0 {
            return (NetworkConfiguration(widthDivisor: divisor, round: 1, subcategoriesPerClass: rows / parents, classes: parents), true)
        }
        return (NetworkConfiguration(widthDivisor: divisor, round: 1), false)
    }

    public static func convert(_ input: String, to output: String, allowMissingHeads: Bool) throws -> Summary {
        var notes: [String] = []
        let (format, tensors) = try WeightFiles.read(input) { notes.append($0) }
        let (configuration, hasHeads) = try configuration(of: tensors, path: input)
        let network = SCCAMNetwork(configuration: configuration)
        let headNames = Set(network.heads.map { "\($0.name).weight" })
        let report = try network.store.load(tensors, from: "\(input) (\(format.rawValue))",
                                            allowMissing: { (allowMissingHeads || !hasHeads) && headNames.contains($0) })
        let kept = Set(report.keptAtInitialization)
        // Heads the file did not have are not invented: only loaded tensors are written.
        let written = network.store.tensors().filter { !kept.contains($0.name) }
        try Safetensors.write(written, metadata: [
            "sccam.converted_from": URL(fileURLWithPath: input).lastPathComponent, "sccam.source_format": format.rawValue,
            "sccam.width_divisor": "\(configuration.widthDivisor)",
        ], to: output)
        return Summary(format: format, configuration: configuration, hasHeads: hasHeads, written: written.count, ignored: report.ignored,
                       notLoaded: report.keptAtInitialization, notes: notes)
    }
}

extension SCCAMNetwork {
    /// The network a weight file describes (width, round and k from its
    /// shapes), with the file loaded strictly. Heads may be absent only with
    /// `allowMissingHeads` or for MXNet ImageNet weights, as the reference allows.
    public static func fromWeights(_ path: String, allowMissingHeads: Bool = false, compute: Compute = Compute(),
                                   note: (String) -> Void = { _ in }) throws -> SCCAMNetwork {
        let (format, tensors) = try WeightFiles.read(path, note: note)
        let (configuration, hasHeads) = try WeightConversion.configuration(of: tensors, path: path)
        let network = SCCAMNetwork(configuration: configuration, compute: compute)
        let headNames = Set(network.heads.map { "\($0.name).weight" })
        let lenient = allowMissingHeads || (!hasHeads && format == .mxnet)
        try network.store.load(tensors, from: "\(path) (\(format.rawValue))", allowMissing: { lenient && headNames.contains($0) })
        return network
    }
}
