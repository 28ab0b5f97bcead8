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

    public func duplicate() throws -> Communicator { SingleProcessCommunicator() }

    public func startAllreduceSum(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>) throws -> CollectiveRequest {
        if let source = send.baseAddress, let target = receive.baseAddress { target.update(from: source, count: min(send.count, receive.count)) }
        return CompletedRequest()
    }

    public func startAlltoallBlocks<T: CollectiveScalar>(send: UnsafeBufferPointer<T>, receive: UnsafeMutableBufferPointer<T>) throws -> CollectiveRequest {
        guard receive.count == send.count else {
            throw CommunicatorError("alltoallBlocks: \(receive.count) receive elements for one block of \(send.count)")
        }
        if let source = send.baseAddress, let target = receive.baseAddress { target.update(from: source, count: send.count) }
        return CompletedRequest()
    }

    public func startAllgatherBlocks<T: CollectiveScalar>(_ buffer: UnsafeMutableBufferPointer<T>) throws -> CollectiveRequest {
        CompletedRequest()
    }

    public func send(_ buffer: UnsafeMutableBufferPointer<UInt8>, to peer: Int) throws {
        throw CommunicatorError("a 1-rank job has no peer \(peer) to send to")
    }

    public func receive(_ buffer: UnsafeMutableBufferPointer<UInt8>, from peer: Int) throws {
        throw CommunicatorError("a 1-rank job has no peer \(peer) to receive from")
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
    func test() throws -> Bool { true }
    func wait() throws {}
}
