/// Weight files written byte by byte from their format descriptions, for
/// tests of the readers (layouts the fixtures do not cover, and fuzzing).

/// Pickle bytes written by hand (protocol 2), as torch.save lays them out.
public enum HandPickle {
    public static func string(_ text: String) -> [UInt8] {
        let bytes = Array(text.utf8)
        return [0x58] + withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { Array($0) } + bytes
    }
    /// BININT, or LONG1 (8 bytes) for what does not fit in 32 bits.
    public static func int(_ value: Int) -> [UInt8] {
        if let small = Int32(exactly: value) { return [0x4A] + withUnsafeBytes(of: small.littleEndian) { Array($0) } }
        return [0x8A, 8] + withUnsafeBytes(of: Int64(value).littleEndian) { Array($0) }
    }
    public static func global(_ module: String, _ name: String) -> [UInt8] { [0x63] + Array("\(module)\n\(name)\n".utf8) }
    public static func tuple(_ items: [[UInt8]]) -> [UInt8] { [0x28] + items.flatMap { $0 } + [0x74] }

    public static func stateDict(entries: [(String, storageKey: String, count: Int, offset: Int, size: [Int], stride: [Int])]) -> [UInt8] {
        var out: [UInt8] = [0x80, 0x02] + global("collections", "OrderedDict") + [0x29, 0x52, 0x28]
        for entry in entries {
            out += string(entry.0)
            out += global("torch._utils", "_rebuild_tensor_v2")
            let persistent = tuple([string("storage"), global("torch", "FloatStorage"), string(entry.storageKey), string("cpu"), int(entry.count)])
            out += tuple([persistent + [0x51], int(entry.offset), tuple(entry.size.map(int)), tuple(entry.stride.map(int)),
                          [0x89], global("collections", "OrderedDict") + [0x29, 0x52]])
            out += [0x52]
        }
        return out + [0x75, 0x2E]
    }

    public static func globalCall(module: String, name: String) -> [UInt8] {
        [0x80, 0x02] + global(module, name) + tuple([string("echo hi")]) + [0x52, 0x2E]
    }
}

/// A zip archive of stored (uncompressed) entries.
public enum HandZip {
    public static func stored(_ entries: [(String, [UInt8])]) -> [UInt8] {
        func le(_ value: Int, _ width: Int) -> [UInt8] { (0..<width).map { UInt8((value >> (8 * $0)) & 0xFF) } }
        var out: [UInt8] = [], directory: [UInt8] = []
        for (name, data) in entries {
            let offset = out.count, nameBytes = Array(name.utf8)
            out += le(0x0403_4B50, 4) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(0, 4)
            out += le(data.count, 4) + le(data.count, 4) + le(nameBytes.count, 2) + le(0, 2) + nameBytes + data
            directory += le(0x0201_4B50, 4) + le(20, 2) + le(20, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(0, 4)
            directory += le(data.count, 4) + le(data.count, 4) + le(nameBytes.count, 2) + le(0, 2) + le(0, 2)
            directory += le(0, 2) + le(0, 2) + le(0, 4) + le(offset, 4) + nameBytes
        }
        let directoryOffset = out.count
        out += directory
        out += le(0x0605_4B50, 4) + le(0, 2) + le(0, 2) + le(entries.count, 2) + le(entries.count, 2)
        out += le(directory.count, 4) + le(directoryOffset, 4) + le(0, 2)
        return out
    }
}

/// MXNet NDArray list files written from the format description, cycling
/// through the current, V1 and legacy array layouts.
public enum HandMXNet {
    public static func le(_ value: UInt64, _ width: Int) -> [UInt8] { (0..<width).map { UInt8((value >> (8 * UInt64($0))) & 0xFF) } }

    public static func file(_ arrays: [(String, [Int], [UInt8])]) -> [UInt8] {
        var out = le(0x112, 8) + le(0, 8) + le(UInt64(arrays.count), 8)
        for (index, (_, shape, payload)) in arrays.enumerated() {
            switch index % 3 {
            case 0: out += le(0xF993_FAC9, 4) + le(0, 4) + le(UInt64(shape.count), 4) + shape.flatMap { le(UInt64($0), 8) }
            case 1: out += le(0xF993_FAC8, 4) + le(UInt64(shape.count), 4) + shape.flatMap { le(UInt64($0), 8) }
            default: out += le(UInt64(shape.count), 4) + shape.flatMap { le(UInt64($0), 4) }
            }
            out += le(1, 4) + le(0, 4) + le(0, 4) + payload  // cpu(0), float32
        }
        out += le(UInt64(arrays.count), 8)
        for (name, _, _) in arrays { out += le(UInt64(name.utf8.count), 8) + Array(name.utf8) }
        return out
    }

    /// The ademxapp name of a reference state-dict key (the inverse of the mapping).
    public static func name(for key: String) -> String {
        let parts = key.split(separator: ".").map(String.init)
        let leaves = ["weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_var"]
        if key == "conv1a.weight" { return "arg:conv1a_weight" }
        if parts[0] == "bn7" { return "aux:bn7_\(leaves[parts[1]]!)" }
        let block = parts[0].dropFirst()  // "4_5" or "2"
        let id = block.contains("_") ? block.replacingOccurrences(of: "_", with: "b") : block + "a"
        let branch = parts[1].split(separator: "_", maxSplits: 1)[1]
        return parts[1].hasPrefix("conv") ? "arg:res\(id)_\(branch)_weight" : "aux:bn\(id)_\(branch)_\(leaves[parts[2]]!)"
    }
}
