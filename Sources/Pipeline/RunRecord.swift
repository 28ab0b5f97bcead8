import Formats
import Foundation

/// WORK/run.json: the settings a pipeline run was started with and, per
/// stage, its inputs, outputs, status and result. A rerun with the same
/// settings skips the stages recorded as done whose outputs still exist; a
/// rerun with other settings is refused, since the finished files would mix
/// two experiments.
public struct RunRecord: Codable, Sendable {
    public struct Stage: Codable, Sendable {
        public var name: String
        /// "running" until the stage returns, then "done".
        public var status: String
        public var inputs: [String]
        public var outputs: [String]
        public var started: String
        public var finished: String?
        public var seconds: Double?
        /// The stage's typed result, as JSON (`result(as:)` reads it back).
        public var result: JSONValue?

        /// The result as the stage's own type (nil when absent or of another shape).
        public func result<Result: Decodable>(as type: Result.Type) -> Result? {
            try? result?.decoded(as: type)
        }
    }

    public var settings: SCCAMPipeline.Settings
    public var stages: [Stage] = []

    public init(settings: SCCAMPipeline.Settings) { self.settings = settings }

    public static func read(_ path: String) throws -> RunRecord? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(RunRecord.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw FormatError(path: path, "is not a run record this version can read (\(error)); move it away to start the run afresh")
        }
    }

    public func write(to path: String) throws { try AtomicFile.writeJSON(self, to: path) }

    public func stage(_ name: String) -> Stage? { stages.last { $0.name == name } }

    /// A stage's typed result, when it finished and recorded one.
    public func result<Result: Decodable>(of name: String, as type: Result.Type) -> Result? { stage(name)?.result(as: type) }

    public mutating func update(_ stage: Stage) {
        if let index = stages.lastIndex(where: { $0.name == stage.name }) { stages[index] = stage } else { stages.append(stage) }
    }

    static func timestamp() -> String {
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: Date())
    }
}
