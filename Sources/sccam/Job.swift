import ArgumentParser
import Distributed
import Foundation
import Kernels
import Pipeline

/// Flags every computing command shares.
struct RuntimeOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Compute threads per rank (OpenBLAS and our own loops).",
        discussion: """
            Default: SCCAM_THREADS, OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or Slurm's SLURM_CPUS_PER_TASK if set; else the cores \
            this rank is bound to; else this machine's cores divided by its ranks.
            """))
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1 (got \(threads))") }
    }
}

/// What a running command holds: its communicator and the threads it computes with.
struct Job {
    let communicator: Communicator
    let threads: ThreadPolicy.Choice

    static func start(_ options: RuntimeOptions) -> Job {
        let communicator: Communicator
        do {
            communicator = try Launch.makeCommunicator()
        } catch {
            FileHandle.standardError.write(Data("sccam: error: \(error)\n".utf8))
            exit(3)
        }
        let threads = ThreadPolicy.choose(requested: options.threads, ranksOnThisNode: communicator.localSize)
        Parallel.setThreadCount(threads.count)
        return Job(communicator: communicator, threads: threads)
    }

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

    /// Readies the stage's work folder: rank 0 removes the temporaries a
    /// killed writer left there, and every rank must see the folder rank 0
    /// writes into (a folder that is not shared across nodes stops the job).
    func prepareWork(_ path: String) throws {
        let removed = try WorkFolder.prepare(path, communicator: communicator)
        if removed > 0 { log("removed \(removed) temporary file(s) left in \(path) by an interrupted writer") }
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

    /// Runs `body`, turning any error into a clean exit on every rank.
    func run(_ body: () throws -> Void) {
        do {
            try body()
        } catch let code as ExitCode {
            // A deliberate exit status (e.g. 4: stopped on request, checkpoint written), the same on every rank.
            communicator.finalize()
            exit(code.rawValue)
        } catch {
            fail(error)
        }
        communicator.finalize()
    }
}


extension Job {
    /// Runs a training loop with SIGTERM/SIGUSR1 handling: a requested stop
    /// has written its checkpoint, is reported, and exits with code 4.
    func trainStoppable(_ body: () throws -> Training.Summary) throws -> Training.Summary {
        Training.installSignalHandlers()
        do {
            return try body()
        } catch let stopped as Training.Stopped {
            log("\(stopped)")
            communicator.finalize()
            throw ExitCode(4)
        }
    }
}
