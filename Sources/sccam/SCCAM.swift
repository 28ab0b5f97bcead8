import ArgumentParser
import Pipeline

@main
struct SCCAM: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "sccam",
        abstract: "SC-CAM weakly-supervised segmentation: a distributed CPU trainer over MPI.",
        discussion: """
            Run any command alone for a single-process run, or under `mpirun -np N` (or \
            `srun --mpi=pmix`) to spread it over N ranks. Rank 0 prints and writes outputs.

            Exit codes: 0 success, 1 failure (the message names the file or setting), \
            3 inconsistent MPI launch, 4 stopped by SIGTERM/SIGUSR1 after writing a checkpoint \
            (rerun with --resume), 64 bad command line.
            """,
        version: version,
        subcommands: [Demo.self, PipelineRun.self, Env.self, CheckData.self, PrepareCOCO.self, Train.self, Extract.self, Cluster.self, Infer.self, CRF.self, AffinityLabelsCommand.self, TrainAffinity.self, RefineCommand.self, TrainSegmentation.self, SegmentCommand.self, Eval.self, Convert.self, Report.self, Bench.self])

    /// Picks OpenBLAS's kernels before anything else can run: fixing a
    /// misdetected CPU means re-executing this process, which must happen
    /// before MPI is initialised and before any BLAS call.
    static func main() {
        BLASCoreSelection.ensureBestCore()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}
