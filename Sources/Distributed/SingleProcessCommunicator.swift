import Foundation

/// The communicator of a run started without a launcher: one rank, every
/// collective is the identity. Lets the same binary debug on a laptop.
public final class SingleProcessCommunicator: Communicator, @unchecked Sendable {
    public init() {}

    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var localRank: Int { 0 }
    public var localSize: Int { 1 }
    public var transportDescription: String { "single process (started without an MPI launcher)" }

    public func allreduceSum<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws {}
    public func allreduceMax<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws {}

    public func startAllreduceSum<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws -> CollectiveRequest {
        CompletedRequest()
    }

    public func broadcast<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        guard root == 0 else { throw CommunicatorError("broadcast root \(root) does not exist in a 1-rank job") }
    }

    public func barrier() throws {}

    public func gather<T: CollectiveScalar>(_ values: [T], root: Int) throws -> [[T]]? {
        guard root == 0 else { throw CommunicatorError("gather root \(root) does not exist in a 1-rank job") }
        return [values]
    }

    public func allgather<T: CollectiveScalar>(_ values: [T]) throws -> [[T]] { [values] }

    public func abort(message: String, exitCode: Int32) -> Never {
        FileHandle.standardError.write(Data("sccam: error: \(message)\n".utf8))
        exit(exitCode)
    }

    public func finalize() {}
}

final class CompletedRequest: CollectiveRequest {
    func wait() throws {}
    func test() throws -> Bool { true }
}
