import Formats
import Foundation
import Kernels

/// DeepLab's weights in and out: our safetensors, the repository's `.pth`
/// state dicts (the trained MSC model with `base.` keys, or the converted
/// COCO initialisation `deeplabv1_resnet101-coco.pth` without a prefix and
/// with a 91-class `fc`), the DeepLab authors' `.caffemodel` read natively
/// with `convert.py`'s key mapping, and, as a documented alternative, a
/// torchvision ImageNet ResNet-101 `.pth`.
extension DeepLabV2 {
    public enum WeightSource: String, Sendable {
        case msc = "DeepLab MSC state dict", cocoInit = "DeepLab COCO initialisation", caffe = "Caffe model",
             torchvision = "torchvision ResNet-101"
    }

    /// Loads weights in any supported format. Initialisations (COCO, Caffe,
    /// torchvision) keep the ASPP at its N(0, 0.01) start, as the reference's
    /// non-strict load does; their classifier (`fc`) is dropped.
    @discardableResult
    public func loadWeights(_ path: String) throws -> (source: WeightSource, report: CheckpointLoadReport) {
        let tensors: [SafetensorsTensor]
        var source: WeightSource
        if path.hasSuffix(".caffemodel") {
            tensors = try caffeTensors(try CaffeModel.read(path), path: path)
            source = .caffe
        } else {
            let raw = try WeightFiles.read(path).tensors
            let names = Set(raw.map(\.name))
            if names.contains(where: { $0.hasPrefix(Self.prefix) }) {
                (tensors, source) = (raw, .msc)
            } else if names.contains("layer1.conv1.conv.weight") {
                tensors = raw.filter { !$0.name.hasPrefix("fc.") }.map { $0.renamed(Self.prefix + $0.name) }
                source = .cocoInit
            } else if names.contains("conv1.weight") && names.contains("layer1.0.conv1.weight") {
                tensors = raw.compactMap { tensor in Self.torchvisionName(tensor.name).map { tensor.renamed(Self.prefix + $0) } }
                source = .torchvision
            } else {
                throw FormatError(path: path, "holds neither a DeepLab state dict (base.layer1.conv1.conv.weight or layer1.conv1.conv.weight) nor a torchvision ResNet-101 (conv1.weight, layer1.0.conv1.weight)")
            }
        }
        let aspp = Set(asppWeightNames + asppBiasNames)
        let report = try store.load(tensors, from: "\(path) (\(source.rawValue))",
                                    allowMissing: { source != .msc && aspp.contains($0) })
        return (source, report)
    }

    /// Writes every tensor atomically, with the configuration as metadata.
    public func saveSafetensors(_ path: String, metadata extra: [String: String] = [:]) throws {
        var metadata = extra
        metadata["sccam.network"] = "deeplab-v2"
        metadata["sccam.width_divisor"] = "\(configuration.widthDivisor)"
        metadata["sccam.classes"] = "\(configuration.classes)"
        try store.writeSafetensors(metadata: metadata, to: path)
    }

    /// Labelled pixels per MSC output (scale 1, each extra scale, the max)
    /// of labels [N, H, W], as the loss normalises them.
    public func labelledCounts(labels: UnsafePointer<Int32>, batch: Int, height: Int, width: Int) -> [Int] {
        let sizes = scaleSizes(height: height, width: width).map { outputSize(height: $0.height, width: $0.width) }
        return (sizes + [sizes[0]]).map { size in
            var resized = [Int32](repeating: 0, count: batch * size.height * size.width)
            NearestResize.resize(labels, planes: batch, height: height, width: width, output: &resized,
                                 newHeight: size.height, newWidth: size.width)
            return SoftmaxCrossEntropy.labelledCount(resized, count: resized.count)
        }
    }

    // MARK: Names

    /// torchvision's ResNet names to the repository's: its layer index is one
    /// lower, blocks count from 0, conv1/2/3 are reduce/conv3x3/increase and
    /// downsample.0/1 the shortcut; nil for the ImageNet classifier.
    public static func torchvisionName(_ name: String) -> String? {
        if name.hasPrefix("fc.") { return nil }
        if name.hasPrefix("conv1.") { return "layer1.conv1.conv." + name.dropFirst(6) }
        if name.hasPrefix("bn1.") { return "layer1.conv1.bn." + name.dropFirst(4) }
        let parts = name.split(separator: ".").map(String.init)
        guard parts.count >= 4, parts[0].hasPrefix("layer"), let layer = Int(parts[0].dropFirst(5)), let block = Int(parts[1]) else { return nil }
        let unit: String
        var rest = Array(parts[3...])
        switch parts[2] {
        case "conv1": unit = "reduce.conv"
        case "bn1": unit = "reduce.bn"
        case "conv2": unit = "conv3x3.conv"
        case "bn2": unit = "conv3x3.bn"
        case "conv3": unit = "increase.conv"
        case "bn3": unit = "increase.bn"
        case "downsample":
            guard let index = rest.first, index == "0" || index == "1" else { return nil }
            unit = index == "0" ? "shortcut.conv" : "shortcut.bn"
            rest.removeFirst()
        default: return nil
        }
        return "layer\(layer + 1).block\(block + 1).\(unit).\(rest.joined(separator: "."))"
    }

    /// `convert.py`'s `translate_layer_name` (deeplab-v2.md 2.4), without the
    /// `base.` prefix; nil for names it does not translate.
    public static func caffeKeyPrefix(_ name: String) -> String? {
        let tokens = name.split(separator: "_").map(String.init)
        guard let first = tokens.first else { return nil }
        if first.contains("pool") { return "layer1.pool" }
        if first.contains("fc") { return tokens.count == 3 ? "aspp.\(tokens[2])" : "fc" }
        if first.contains("conv1") { return "layer1.conv1.conv" }
        if tokens.count > 1, tokens[1].contains("conv1") { return "layer1.conv1.bn" }
        guard tokens.count == 2, tokens[1].hasPrefix("branch") else { return nil }
        let kind: String, stem: Substring
        if first.hasPrefix("res") { (kind, stem) = ("conv", first.dropFirst(3)) } else if first.hasPrefix("bn") { (kind, stem) = ("bn", first.dropFirst(2)) } else { return nil }
        guard let stage = stem.first?.wholeNumberValue else { return nil }
        let suffix = stem.dropFirst()
        let block: Int
        switch suffix {
        case "a": block = 1
        case "b": block = 2
        case "c": block = 3
        default:
            guard suffix.hasPrefix("b"), let k = Int(suffix.dropFirst()) else { return nil }
            block = k + 1
        }
        let units = ["1": "shortcut", "2a": "reduce", "2b": "conv3x3", "2c": "increase"]
        guard let unit = units[String(tokens[1].dropFirst(6))] else { return nil }
        return "layer\(stage).block\(block).\(unit).\(kind)"
    }

    /// The tensors `convert.py` makes of a Caffe model, under our keys, shaped
    /// as the model's (blob shapes are never read); the geometry each layer
    /// records is checked against the network.
    func caffeTensors(_ layers: [CaffeModel.Layer], path: String) throws -> [SafetensorsTensor] {
        var tensors: [SafetensorsTensor] = []
        var problems: [String] = []
        var lastNorm: String?
        func add(_ key: String, _ values: [Float]) {
            guard let entry = store.entry(named: Self.prefix + key) else {
                if !key.hasPrefix("fc.") { problems.append("\(key): no such tensor in the model") }
                return
            }
            guard values.count == entry.count else {
                problems.append("\(key): \(values.count) values, the model needs \(entry.count) (\(entry.shape))")
                return
            }
            values.withUnsafeBufferPointer { tensors.append(SafetensorsTensor(name: entry.name, shape: entry.shape, floats: $0)) }
        }
        for layer in layers where !layer.name.contains("res075") && !layer.name.contains("res05") {
            if layer.type.contains("Scale") {
                guard let norm = lastNorm, layer.blobs.count >= 2 else {
                    problems.append("Scale layer \(layer.name) does not follow a BatchNorm with its two blobs")
                    continue
                }
                add("\(norm).weight", layer.blobs[0].data)
                add("\(norm).bias", layer.blobs[1].data)
                lastNorm = nil
                continue
            }
            lastNorm = nil
            guard let key = Self.caffeKeyPrefix(layer.name) else { continue }
            if layer.type.contains("Convolution") || layer.type.contains("InnerProduct") {
                guard let weight = layer.blobs.first else { problems.append("\(layer.name) has no weight blob"); continue }
                add("\(key).weight", weight.data)
                if layer.blobs.count >= 2 { add("\(key).bias", layer.blobs[1].data) }
                if let parameters = layer.convolution, let conv = convolution(named: Self.prefix + key) {
                    let g = conv.geometry
                    let recorded = (parameters.kernel.first ?? 1, parameters.stride.first ?? 1, parameters.pad.first ?? 0,
                                    parameters.dilation.first ?? 1)
                    if recorded != (g.kernel, g.stride, g.padding, g.dilation) {
                        problems.append("\(layer.name): kernel/stride/pad/dilation \(recorded), the model has \((g.kernel, g.stride, g.padding, g.dilation))")
                    }
                }
            } else if layer.type.contains("BatchNorm") {
                guard layer.blobs.count >= 3, let factor = layer.blobs[2].data.first else {
                    problems.append("BatchNorm \(layer.name) needs 3 blobs (mean, variance, scale factor), has \(layer.blobs.count)")
                    continue
                }
                if let eps = layer.batchNormEpsilon, abs(Double(eps) - FrozenBatchNorm.epsilon) > 1e-7 {
                    problems.append("BatchNorm \(layer.name) has eps \(eps), the model uses \(FrozenBatchNorm.epsilon)")
                }
                // In double, rounded once, as convert.py's NumPy division; a zero factor gives 0, as Caffe does.
                func normalized(_ blob: CaffeModel.Blob) -> [Float] { blob.data.map { factor == 0 ? 0 : Float(Double($0) / Double(factor)) } }
                add("\(key).running_mean", normalized(layer.blobs[0]))
                add("\(key).running_var", normalized(layer.blobs[1]))
                lastNorm = key
            } else if layer.type.contains("Pooling"), let pooling = layer.pooling,
                      (pooling.kernel, pooling.stride, pooling.pad) != (backbone.pool.kernel, backbone.pool.stride, backbone.pool.padding) {
                problems.append("\(layer.name): pooling \(pooling), the model pools 3/2/1")
            }
        }
        guard problems.isEmpty else {
            throw CheckpointError(description: "\(path) does not fit this DeepLab (\(problems.count) problem\(problems.count == 1 ? "" : "s")); check --width-divisor:\n  " + problems.joined(separator: "\n  "))
        }
        return tensors
    }

    func convolution(named key: String) -> Conv2D? {
        (backbone.allUnits.map(\.conv) + aspp.branches).first { $0.name == key }
    }
}

extension SafetensorsTensor {
    func renamed(_ name: String) -> SafetensorsTensor { SafetensorsTensor(name: name, type: type, shape: shape, payload: payload) }
}
