import Formats
import Foundation

/// What a checkpoint load did.
public struct CheckpointLoadReport: Sendable {
    /// Model tensors the file did not have, kept at their current values
    /// (only where the caller allowed it).
    public let keptAtInitialization: [String]
    /// File entries skipped because they carry nothing for this model
    /// (`num_batches_tracked` counters).
    public let ignored: [String]
}

public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

extension ParameterStore {
    /// Entries of a checkpoint that carry nothing for our model: BatchNorm's
    /// batch counters (the reference never updates BN statistics).
    static func isIgnorable(_ name: String) -> Bool { name.hasSuffix(".num_batches_tracked") }

    /// Copies tensors into the store by name, strictly: every problem (missing,
    /// unexpected, wrongly shaped or non-float tensors) is collected and
    /// reported at once, naming the file.
    ///
    /// - Parameter allowMissing: names that may be absent and then keep their
    ///   current values (the reference loads its ImageNet initialisation
    ///   non-strictly so that the heads keep their Xavier init).
    @discardableResult
    public func load(_ tensors: [SafetensorsTensor], from source: String,
                     allowMissing: (String) -> Bool = { _ in false }) throws -> CheckpointLoadReport {
        var problems: [String] = []
        var ignored: [String] = []
        var seen = Set<String>()
        var accepted: [(Entry, [Float])] = []
        for tensor in tensors {
            if Self.isIgnorable(tensor.name) {
                ignored.append(tensor.name)
                continue
            }
            guard let entry = entry(named: tensor.name) else {
                problems.append("unexpected tensor \(tensor.name) \(tensor.shape)")
                continue
            }
            seen.insert(tensor.name)
            guard tensor.shape == entry.shape else {
                problems.append("\(tensor.name) has shape \(tensor.shape), the model needs \(entry.shape)")
                continue
            }
            do {
                accepted.append((entry, try tensor.floatValues(path: source)))
            } catch {
                problems.append("\(tensor.name): \(error)")
            }
        }
        var kept: [String] = []
        for entry in entries where !seen.contains(entry.name) {
            if allowMissing(entry.name) {
                kept.append(entry.name)
            } else {
                problems.append("missing tensor \(entry.name) \(entry.shape)")
            }
        }
        guard problems.isEmpty else {
            throw CheckpointError(description: """
                \(source) does not fit this model (\(problems.count) problem\(problems.count == 1 ? "" : "s")); \
                check the checkpoint's round, width and k against the command's flags:
                  \(problems.joined(separator: "\n  "))
                """)
        }
        for (entry, values) in accepted {
            values.withUnsafeBufferPointer { source in
                (self.values.baseAddress! + entry.offset).update(from: source.baseAddress!, count: entry.count)
            }
        }
        return CheckpointLoadReport(keptAtInitialization: kept, ignored: ignored)
    }

    /// Every tensor, in state-dict order, with the reference's names and OIHW layout.
    public func tensors() -> [SafetensorsTensor] {
        entries.map { entry in SafetensorsTensor(name: entry.name, shape: entry.shape, floats: floats(of: entry)) }
    }

    /// Writes every tensor atomically, as `tensors()` orders and names them,
    /// straight from the store's buffer.
    public func writeSafetensors(metadata: [String: String], to path: String) throws {
        try Safetensors.write(floats: entries.map { ($0.name, $0.shape, floats(of: $0)) }, metadata: metadata, to: path)
    }

    private func floats(of entry: Entry) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: values.baseAddress! + entry.offset, count: entry.count)
    }
}

extension SCCAMNetwork {
    /// Loads a safetensors checkpoint written by us or by the reference's
    /// conversion. With `allowMissingHeads` the heads may be absent and keep
    /// their current (Xavier) values, as the reference's non-strict load does.
    @discardableResult
    public func loadSafetensors(_ path: String, allowMissingHeads: Bool = false) throws -> CheckpointLoadReport {
        let headNames = Set(heads.map { "\($0.name).weight" })
        return try store.load(try Safetensors.read(path).tensors, from: path,
                              allowMissing: { allowMissingHeads && headNames.contains($0) })
    }

    /// Writes every tensor atomically, with the configuration as metadata.
    public func saveSafetensors(_ path: String, metadata extra: [String: String] = [:]) throws {
        var metadata = extra
        metadata["sccam.width_divisor"] = "\(configuration.widthDivisor)"
        metadata["sccam.round"] = "\(configuration.round)"
        metadata["sccam.k"] = "\(configuration.subcategoriesPerClass)"
        try store.writeSafetensors(metadata: metadata, to: path)
    }
}
