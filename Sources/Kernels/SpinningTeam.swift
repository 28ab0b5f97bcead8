import Foundation
import Synchronization

/// Worker threads that wait for the next parallel loop by spinning instead of
/// sleeping. On a virtual machine, waking a sleeping core costs 60-120 us on
/// average (up to milliseconds: the host must schedule the halted vCPU again),
/// which is a tenth of a dense-CRF iteration's loops on two threads; a spinning
/// worker starts within a microsecond. Loops run as numbered tasks that every
/// thread, the caller included, takes in turn: a core that the machine slows
/// down takes fewer of them. See `Parallel.withSpinningWorkers`.
@usableFromInline
final class SpinningTeam: @unchecked Sendable {
    /// Bumped for every loop; -1 tells the workers to leave.
    private let generation = Atomic<Int>(0)
    private let nextTask = Atomic<Int>(0)
    private let finishedTasks = Atomic<Int>(0)
    /// Workers done with the current loop: each one takes part in every loop
    /// and lets go of its body before the loop returns (the body is the
    /// caller's non-escaping closure).
    private let departedWorkers = Atomic<Int>(0)
    private let exitedWorkers = Atomic<Int>(0)
    private let workerCount: Int
    // Written by the owner before `generation` is bumped (release), read by the
    // workers after they see the bump (acquire).
    private var taskCount = 0
    private var body: ((Int) -> Void)?
    /// True while a loop runs: a loop started from inside one runs inline.
    @usableFromInline private(set) var isRunning = false
    /// The thread that made the team: the only one whose loops it runs.
    private let owner = pthread_self()
    @usableFromInline var isOwnedByThisThread: Bool { pthread_equal(owner, pthread_self()) != 0 }

    /// Spins before each yield of the core: bounded, so that more threads than
    /// cores (tests, oversubscribed launches) still make progress.
    private static let spinsBeforeYield = 2000

    init(workers: Int) {
        workerCount = workers
        for _ in 0..<workers {
            let thread = Thread { [self] in self.work() }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    private func work() {
        var seen = 0
        while true {
            var current = generation.load(ordering: .acquiring)
            var spins = 0
            while current == seen {
                spins += 1
                if spins > Self.spinsBeforeYield { sched_yield() }
                current = generation.load(ordering: .acquiring)
            }
            if current < 0 { break }
            seen = current
            takeTasks()
            departedWorkers.add(1, ordering: .releasing)
        }
        exitedWorkers.add(1, ordering: .releasing)
    }

    @inline(never)
    private func takeTasks() {
        guard let body else { return }
        let count = taskCount
        while true {
            let task = nextTask.add(1, ordering: .relaxed).oldValue
            if task >= count { return }
            body(task)
            finishedTasks.add(1, ordering: .releasing)
        }
    }

    /// Runs `body(t)` for t in 0..<count on the team and this thread; returns when all are done.
    @usableFromInline
    func perform(_ count: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { body in
            self.body = body
            taskCount = count
            nextTask.store(0, ordering: .relaxed)
            finishedTasks.store(0, ordering: .relaxed)
            departedWorkers.store(0, ordering: .relaxed)
            isRunning = true
            generation.add(1, ordering: .releasing)
            takeTasks()
            var spins = 0
            while finishedTasks.load(ordering: .acquiring) < count || departedWorkers.load(ordering: .acquiring) < workerCount {
                spins += 1
                if spins > Self.spinsBeforeYield { sched_yield() }
            }
            isRunning = false
            self.body = nil
        }
    }

    /// Sends the workers away and waits until they have left.
    func stop() {
        generation.store(-1, ordering: .releasing)
        while exitedWorkers.load(ordering: .acquiring) < workerCount { sched_yield() }
    }
}
