import Foundation

/// Reads PyTorch checkpoints without Python: the zip format `torch.save`
/// writes since 1.6 and the legacy pickle-stream format before it (in which
/// the reference's published weights were saved). Only state dicts of tensors
/// are understood; the reader never executes anything from the file.
public enum TorchCheckpoint {
    /// The first pickle of a legacy file: LONG1 0x1950a86a20f9469cfc6c.
    static let legacyMagic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    public static func isZip(_ bytes: [UInt8]) -> Bool { bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) }

    public static func isLegacy(_ bytes: [UInt8]) -> Bool {
        bytes.count > 14 && bytes[0] == 0x80 && bytes[2] == 0x8A && bytes[3] == 0x0A && Array(bytes[4..<14]) == legacyMagic
    }

    /// The tensors of the file's state dict, in the file's order, as
    /// contiguous little-endian arrays (strides and storage offsets applied).
    /// A training checkpoint's dict under `state_dict`, `model` or `net` is
    /// found, and `note` names the entries skipped beside it (epoch,
    /// optimiser state); a `module.` prefix (DataParallel) is removed.
    /// Storages saved on a GPU (`cuda:0`) load like CPU ones.
    public static func read(_ path: String, note: (String) -> Void = { _ in }) throws -> [SafetensorsTensor] {
        try decode(try AtomicFile.read(path), path: path, note: note)
    }

    public static func decode(_ bytes: [UInt8], path: String, note: (String) -> Void = { _ in }) throws -> [SafetensorsTensor] {
        let (root, storages) = try isZip(bytes) ? decodeZip(bytes, path: path)
            : isLegacy(bytes) ? decodeLegacy(bytes, path: path)
            : { throw FormatError(path: path, "is not a PyTorch checkpoint (neither the zip format nor the legacy magic number)") }()
        let entries = try stateDict(in: root, path: path, note: note)
        var tensors: [SafetensorsTensor] = []
        for (name, reference) in entries {
            guard let data = storages[reference.storage.key] else {
                throw FormatError(path: path, "tensor \(name) refers to storage \(reference.storage.key), which the file lacks")
            }
            tensors.append(try materialize(name: name, reference, data: data, path: path))
        }
        let prefix = "module."
        if !tensors.isEmpty, tensors.allSatisfy({ $0.name.hasPrefix(prefix) }) {
            tensors = tensors.map { SafetensorsTensor(name: String($0.name.dropFirst(prefix.count)), type: $0.type, shape: $0.shape, payload: $0.payload) }
        }
        return tensors
    }

    // MARK: Containers

    static func decodeZip(_ bytes: [UInt8], path: String) throws -> (PickleValue, [String: ArraySlice<UInt8>]) {
        let archive = try ZipArchive(bytes, path: path)
        guard let pickleName = archive.names.first(where: { $0.hasSuffix("data.pkl") }), let pickleRange = archive.entries[pickleName] else {
            throw FormatError(path: path, "zip archive without data.pkl: not a torch.save file")
        }
        let prefix = String(pickleName.dropLast("data.pkl".count))
        if let order = archive.entries[prefix + "byteorder"], String(decoding: bytes[order], as: UTF8.self) != "little" {
            throw FormatError(path: path, "was saved big-endian, which is not supported")
        }
        var storages: [String: ArraySlice<UInt8>] = [:]
        var unpickler = Unpickler(Array(bytes[pickleRange]), path: path) { pid in
            let reference = try storageReference(pid, path: path)
            guard let range = archive.entries["\(prefix)data/\(reference.key)"] else {
                throw FormatError(path: path, "storage \(reference.key) is missing from the archive")
            }
            storages[reference.key] = bytes[range]
            return .storage(reference)
        }
        return (try unpickler.load(), storages)
    }

    static func decodeLegacy(_ bytes: [UInt8], path: String) throws -> (PickleValue, [String: ArraySlice<UInt8>]) {
        var references: [String: TorchStorageReference] = [:]
        var unpickler = Unpickler(bytes, path: path) { pid in
            let reference = try storageReference(pid, path: path)
            references[reference.key] = reference
            return .storage(reference)
        }
        guard case .bigInt(let magic) = try unpickler.load(), magic == legacyMagic else {
            throw FormatError(path: path, "bad legacy magic number: not a PyTorch checkpoint")
        }
        guard case .int(let protocolVersion) = try unpickler.load(), protocolVersion == 1001 else {
            throw FormatError(path: path, "unknown legacy protocol version (1001 expected)")
        }
        if case .dict(let info) = try unpickler.load(),
           let little = info.first(where: { $0.key.asString == "little_endian" })?.value, case .bool(false) = little {
            throw FormatError(path: path, "was saved big-endian, which is not supported")
        }
        let root = try unpickler.load()
        guard case .list(let keys) = try unpickler.load() else { throw FormatError(path: path, "legacy storage key list missing") }
        var reader = ByteReader(bytes, at: unpickler.reader.position, path: path)
        var storages: [String: ArraySlice<UInt8>] = [:]
        for key in keys {
            guard let name = key.asString, let reference = references[name] else {
                throw FormatError(path: path, "legacy storage key list names an unknown storage")
            }
            let count = try reader.int64()
            guard count >= 0, count <= reader.remaining else { throw reader.failure("implausible storage size \(count)") }
            storages[name] = try reader.take(count * (try elementSize(reference.type, path: path)))
        }
        return (root, storages)
    }

    static func storageReference(_ pid: PickleValue, path: String) throws -> TorchStorageReference {
        guard let fields = pid.asTuple, fields.count >= 5, fields[0].asString == "storage",
              case .global(let type) = fields[1], let key = fields[2].asString, let count = fields[4].asInt, count >= 0 else {
            throw FormatError(path: path, "malformed storage reference in the pickle")
        }
        return TorchStorageReference(type: String(type.dropFirst("torch ".count)), key: key, count: count)
    }

    // MARK: State dict

    /// Keys under which training scripts keep the model's state dict.
    static let stateDictWrappers = ["state_dict", "model", "net"]

    static func stateDict(in root: PickleValue, path: String, note: (String) -> Void,
                          within: [String] = []) throws -> [(String, TorchTensorReference)] {
        guard case .dict(let pairs) = root else { throw FormatError(path: path, "holds no dict: not a state dict") }
        let tensors: [(String, TorchTensorReference)] = pairs.compactMap { pair in
            guard let name = pair.key.asString, case .tensor(let reference) = pair.value else { return nil }
            return (name, reference)
        }
        func describe(_ key: PickleValue) -> String {
            if let text = key.asString { return text }
            if let number = key.asInt { return "\(number)" }
            return "?"
        }
        let place = within.isEmpty ? "" : " under " + within.map { "'\($0)'" }.joined(separator: " / ")
        if !tensors.isEmpty {
            let others = pairs.filter { if case .tensor = $0.value { return false }; return true }
            if !others.isEmpty {
                note("\(path): skipped \(others.count) entr\(others.count == 1 ? "y" : "ies") that are not tensors\(place): \(others.map { describe($0.key) }.joined(separator: ", "))")
            }
            return tensors
        }
        if within.count < 3 {
            for wrapper in stateDictWrappers {
                if let inner = pairs.first(where: { $0.key.asString == wrapper })?.value, case .dict = inner {
                    let skipped = pairs.map { describe($0.key) }.filter { $0 != wrapper }
                    if !skipped.isEmpty {
                        note("\(path): reading the state dict under '\(wrapper)'\(place); skipped \(skipped.joined(separator: ", "))")
                    }
                    return try stateDict(in: inner, path: path, note: note, within: within + [wrapper])
                }
            }
        }
        throw FormatError(path: path, "holds no tensors (looked at the top level and under \(stateDictWrappers.joined(separator: " / ")))\(place)")
    }

    static func elementSize(_ storageType: String, path: String) throws -> Int {
        switch storageType {
        case "FloatStorage", "IntStorage": return 4
        case "DoubleStorage", "LongStorage": return 8
        case "HalfStorage", "BFloat16Storage": return 2
        case "ByteStorage": return 1
        default: throw FormatError(path: path, "unsupported storage type \(storageType)")
        }
    }

    static func dataType(_ storageType: String) -> SafetensorsTensor.DataType {
        switch storageType {
        case "DoubleStorage": return .float64
        case "HalfStorage": return .float16
        case "BFloat16Storage": return .bfloat16
        case "LongStorage": return .int64
        case "IntStorage": return .int32
        case "ByteStorage": return .uint8
        default: return .float32
        }
    }

    /// Gathers a (possibly strided, offset) view into a contiguous array,
    /// checking every element against the storage's bounds.
    static func materialize(name: String, _ reference: TorchTensorReference, data: ArraySlice<UInt8>, path: String) throws -> SafetensorsTensor {
        let size = try elementSize(reference.storage.type, path: path)
        let available = data.count / size
        guard reference.shape.allSatisfy({ $0 >= 0 }), reference.offset >= 0 else {
            throw FormatError(path: path, "tensor \(name) has a negative size or offset")
        }
        var count = 1
        for dimension in reference.shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow, product <= available else { throw FormatError(path: path, "tensor \(name) is larger than its storage") }
            count = product
        }
        var payload = [UInt8](repeating: 0, count: count * size)
        if count > 0 {
            // The largest storage index the view touches must exist.
            var last = reference.offset
            for (dimension, stride) in zip(reference.shape, reference.stride) {
                guard stride >= 0 else { throw FormatError(path: path, "tensor \(name) has a negative stride") }
                let (step, overflow) = (dimension - 1).multipliedReportingOverflow(by: stride)
                guard !overflow else { throw FormatError(path: path, "tensor \(name) has an absurd stride") }
                last += step
            }
            guard last < available else {
                throw FormatError(path: path, "tensor \(name) reaches element \(last) of a storage of \(available)")
            }
            var index = [Int](repeating: 0, count: reference.shape.count)
            let base = data.startIndex
            for element in 0..<count {
                var position = reference.offset
                for d in 0..<index.count { position += index[d] * reference.stride[d] }
                let source = base + position * size
                for b in 0..<size { payload[element * size + b] = data[source + b] }
                var d = index.count - 1
                while d >= 0 {
                    index[d] += 1
                    if index[d] < reference.shape[d] { break }
                    index[d] = 0
                    d -= 1
                }
            }
        }
        return SafetensorsTensor(name: name, type: dataType(reference.storage.type), shape: reference.shape, payload: payload)
    }
}
