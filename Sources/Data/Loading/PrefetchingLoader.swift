import Foundation

/// Produces items 0..<count on background threads, ahead of the consumer,
/// and hands them out in order. At most `capacity` items are ready or in
/// progress beyond the one being consumed, which bounds memory.
public final class PrefetchingLoader<Item: Sendable>: @unchecked Sendable {
    private let count: Int
    private let capacity: Int
    private let produce: @Sendable (Int) throws -> Item
    private let condition = NSCondition()
    private var nextToClaim = 0
    private var nextToDeliver = 0
    private var ready: [Int: Result<Item, Error>] = [:]
    private var stopped = false
    private var threads: [Thread] = []
    /// Seconds the consumer spent waiting for an item that was not ready.
    public private(set) var waitingSeconds = 0.0

    /// - Parameters:
    ///   - threads: decode threads (at least 1).
    ///   - capacity: items prepared ahead of the consumer (at least `threads`).
    public init(count: Int, threads: Int, capacity: Int, produce: @escaping @Sendable (Int) throws -> Item) {
        self.count = count
        self.capacity = max(capacity, threads, 1)
        self.produce = produce
        for t in 0..<max(1, threads) {
            // Each worker holds the loader until it runs out of items or is
            // stopped: a consumer that gives up early calls stop().
            let thread = Thread { self.work() }
            thread.name = "sccam-loader-\(t)"
            self.threads.append(thread)
            thread.start()
        }
    }

    private func work() {
        while true {
            condition.lock()
            while !stopped && nextToClaim < count && nextToClaim >= nextToDeliver + capacity { condition.wait() }
            if stopped || nextToClaim >= count {
                condition.unlock()
                return
            }
            let index = nextToClaim
            nextToClaim += 1
            condition.unlock()
            let result = Result { try produce(index) }
            condition.lock()
            ready[index] = result
            condition.broadcast()
            condition.unlock()
        }
    }

    /// The next item in order, nil after the last; rethrows a producer's error.
    public func next() throws -> Item? {
        condition.lock()
        defer { condition.unlock() }
        guard nextToDeliver < count else { return nil }
        let start = DispatchTime.now().uptimeNanoseconds
        var waited = false
        while ready[nextToDeliver] == nil {
            waited = true
            condition.wait()
        }
        if waited { waitingSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        let result = ready.removeValue(forKey: nextToDeliver)!
        nextToDeliver += 1
        condition.broadcast()
        return try result.get()
    }

    /// Stops the workers (they finish the item in hand).
    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}
