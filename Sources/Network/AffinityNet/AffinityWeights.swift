import Formats
import Foundation
import Kernels

extension AffinityNetwork {
    /// The AffinityNet a weight file describes (its width from conv1a),
    /// loaded strictly: `sccam train-aff`'s safetensors, or psa's
    /// `resnet38_aff` state dict in any format `WeightFiles` reads. With
    /// `backboneOnly` (ImageNet or classifier weights, the start of training)
    /// the four new layers keep their initialisation and classifier heads are
    /// skipped.
    /// `headSeed` initialises the new layers that the file does not have.
    public static func fromWeights(_ path: String, backboneOnly: Bool = false, headSeed: UInt64 = 0, compute: Compute = Compute(),
                                   note: (String) -> Void = { _ in }) throws -> AffinityNetwork {
        let (format, tensors) = try WeightFiles.read(path, note: note)
        let (configuration, _) = try WeightConversion.configuration(of: tensors, path: path)
        let network = AffinityNetwork(widthDivisor: configuration.widthDivisor, compute: compute)
        network.initializeHeads(seed: headSeed)
        let heads = Set(headNames.map { "\($0).weight" })
        let classifierHeads: Set = ["fc8.weight", "fc8_20.weight", "fc8_200.weight"]
        let kept = backboneOnly ? tensors.filter { !classifierHeads.contains($0.name) } : tensors
        if backboneOnly && kept.count != tensors.count {
            note("\(path): the classifier's heads (\(tensors.filter { classifierHeads.contains($0.name) }.map(\.name).joined(separator: ", "))) are not part of AffinityNet; skipped")
        }
        try network.store.load(kept, from: "\(path) (\(format.rawValue))", allowMissing: { backboneOnly && heads.contains($0) })
        return network
    }

    /// Writes every tensor atomically, with the width as metadata.
    public func saveSafetensors(_ path: String, metadata extra: [String: String] = [:]) throws {
        var metadata = extra
        metadata["sccam.width_divisor"] = "\(widthDivisor)"
        metadata["sccam.network"] = "affinitynet"
        try store.writeSafetensors(metadata: metadata, to: path)
    }
}
