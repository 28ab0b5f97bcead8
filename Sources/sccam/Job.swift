import ArgumentParser
import Foundation
import Pipeline

/// What a running command holds: its communicator, its threads and how its
/// networks compute.
struct Job {
    let communicator: Communicator
    let threads: ThreadPolicy.Choice
    let compute: Compute

    /// Starts MPI (when launched under it) and this rank's threads.
    static func start(_ options: ThreadOptions, compute computeOptions: ComputeOptions? = nil) -> Job {
        let communicator: Communicator
        do {
            communicator = try Launch.makeCommunicator()
        } catch {
            FileHandle.standardError.write(Data("sccam: error: \(error)\n".utf8))
            exit(3)
        }
        let threads = ThreadPolicy.choose(requested: options.threads, ranksOnThisNode: communicator.localSize)
        let compute = computeOptions?.compute(threads: threads.count) ?? Compute(threads: threads.count)
        compute.startThreads()
        return Job(communicator: communicator, threads: threads, compute: compute)
    }

    static func start(_ options: ComputeOptions) -> Job { start(options.threads, compute: options) }

    var isRoot: Bool { communicator.isRoot }

    /// Prints on rank 0 only, flushed at once so progress shows through mpirun.
    func log(_ message: String) {
        guard isRoot else { return }
        print(message)
        fflush(nil)  // all C streams: Swift 6 forbids touching the `stdout` global
    }

    /// A warning on standard error, from rank 0 only.
    func warn(_ message: String) {
        guard isRoot else { return }
        FileHandle.standardError.write(Data("sccam: warning: \(message)\n".utf8))
    }

    /// The context a stage runs in: the work folder readied (stale temporaries
    /// gone, shared by every rank) and the dataset opened when given.
    func context(work: String?, dataset: DatasetOptions? = nil, runtime: StageRuntime = StageRuntime()) throws -> StageContext {
        let context = StageContext(communicator: communicator, layout: WorkLayout(work ?? "."), compute: compute,
                                   dataset: try dataset.map { try openDataset($0.dataset, root: $0.root) }, runtime: runtime, log: log,
                                   warn: warn)
        if work != nil { try context.prepareWork() }
        return context
    }

    /// Runs one stage in the stage flags' context and prints its result.
    func run<S: Stage>(_ stage: S.Type, _ settings: S.Settings, _ options: StageOptions, runtime: StageRuntime = StageRuntime(),
                       report: (S.Result) -> String = { "\($0)" }) {
        var runtime = runtime
        runtime.skipUnreadable = runtime.skipUnreadable || options.data.skipUnreadable
        self.run {
            let context = try context(work: options.work, dataset: options.data.source, runtime: runtime)
            log(report(try S.run(settings, in: context)))
            try context.finishWork()
        }
    }

    /// Ends the command after an error: on several ranks through MPI_Abort,
    /// since the others may be waiting in a collective.
    func fail(_ error: Error) -> Never {
        if communicator.size > 1 {
            communicator.abort(message: "\(error)", exitCode: 1)
        }
        FileHandle.standardError.write(Data("sccam: error: \(error)\n".utf8))
        exit(1)
    }

    /// Runs `body`, turning any error into a clean exit on every rank; a
    /// training stopped by SIGTERM/SIGUSR1 has written its checkpoint and exits with code 4.
    func run(_ body: () throws -> Void) {
        do {
            try body()
        } catch let stopped as Training.Stopped {
            log("\(stopped)")
            communicator.finalize()
            exit(4)
        } catch let code as ExitCode {
            // A deliberate exit status, the same on every rank.
            communicator.finalize()
            exit(code.rawValue)
        } catch {
            fail(error)
        }
        communicator.finalize()
    }
}
