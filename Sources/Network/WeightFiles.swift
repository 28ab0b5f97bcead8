import Formats
import Foundation

/// Model weights from any of the formats users have, recognised by content:
/// safetensors (ours), PyTorch checkpoints (zip or legacy), and MXNet
/// `.params` (the ImageNet ResNet-38, renamed by the reference's rules).
public enum WeightFiles {
    public enum Format: String, Sendable { case safetensors, torchZip = "pytorch (zip)", torchLegacy = "pytorch (legacy)", mxnet }

    public static func detect(_ bytes: [UInt8], path: String) throws -> Format {
        if TorchCheckpoint.isZip(bytes) { return .torchZip }
        if TorchCheckpoint.isLegacy(bytes) { return .torchLegacy }
        if MXNetParams.isParams(bytes) { return .mxnet }
        if bytes.count > 9, bytes[8] == UInt8(ascii: "{") { return .safetensors }
        throw FormatError(path: path, "is not a weight file sccam knows (safetensors, PyTorch .pth, MXNet .params)")
    }

    /// The tensors under the reference's state-dict names; `note` hears what
    /// was skipped (a training checkpoint's epoch and optimiser state).
    public static func read(_ path: String, note: (String) -> Void = { _ in }) throws -> (format: Format, tensors: [SafetensorsTensor]) {
        let bytes = try AtomicFile.read(path)
        let format = try detect(bytes, path: path)
        switch format {
        case .safetensors: return (format, try Safetensors.decode(bytes, path: path).tensors)
        case .torchZip, .torchLegacy: return (format, try TorchCheckpoint.decode(bytes, path: path, note: note))
        case .mxnet:
            var renamed: [SafetensorsTensor] = []
            for tensor in try MXNetParams.decode(bytes, path: path) {
                guard let name = referenceName(mxnet: tensor.name) else { continue }
                renamed.append(SafetensorsTensor(name: name, type: tensor.type, shape: tensor.shape, payload: tensor.payload))
            }
            return (format, renamed)
        }
    }

    /// The reference's `convert_mxnet_to_torch` renaming (spec 8), or nil for
    /// the dropped ImageNet classifier.
    public static func referenceName(mxnet raw: String) -> String? {
        var name = raw
        for prefix in ["arg:", "aux:"] where name.hasPrefix(prefix) { name = String(name.dropFirst(prefix.count)) }
        let tokens = name.split(separator: "_").map(String.init)
        guard let t0 = tokens.first, let last = tokens.last else { return nil }
        if t0.contains("conv1a") { return "conv1a.weight" }
        if t0.contains("linear1000") { return nil }
        let leaf: String
        switch last {
        case "gamma": leaf = "weight"
        case "beta": leaf = "bias"
        case "mean": leaf = "running_mean"
        case "var": leaf = "running_var"
        default: leaf = last
        }
        if tokens.count > 1, tokens[1].contains("branch") {
            let characters = Array(t0)
            guard characters.count >= 3 else { return nil }
            let block = characters.last != "a" ? "b\(characters[characters.count - 3])_\(characters[characters.count - 1])"
                : "b\(characters[characters.count - 2])"
            return t0.contains("res") ? "\(block).conv_\(tokens[1]).weight" : "\(block).bn_\(tokens[1]).\(leaf)"
        }
        return "bn7.\(leaf)"
    }
}

extension SCCAMNetwork {
    /// Loads weights in any supported format. MXNet ImageNet weights and
    /// `allowMissingHeads` keep the heads at their initialisation, as the
    /// reference's non-strict load does; the report lists what was kept.
    @discardableResult
    public func loadWeights(_ path: String, allowMissingHeads: Bool = false) throws -> CheckpointLoadReport {
        let (format, tensors) = try WeightFiles.read(path)
        let headNames = Set(heads.map { "\($0.name).weight" })
        let lenient = allowMissingHeads || format == .mxnet
        return try store.load(tensors, from: "\(path) (\(format.rawValue))", allowMissing: { lenient && headNames.contains($0) })
    }
}
