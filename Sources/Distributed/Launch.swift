import Foundation

/// How this process was started, read from the environment before MPI is
/// initialised (MPI_Init itself exports variables, so the order matters).
public struct LaunchEnvironment: Sendable {
    public let variables: [String: String]

    public init(variables: [String: String] = ProcessInfo.processInfo.environment) {
        self.variables = variables
    }

    /// True when an MPI process manager started us: Open MPI's mpirun/orted,
    /// PMIx (srun --mpi=pmix, prterun), or PMI-1/2 (srun --mpi=pmi2, hydra).
    public var startedByMPILauncher: Bool {
        ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "PMI_FD"]
            .contains { variables[$0] != nil }
    }

    /// The number of processes the launcher or the scheduler says this job step
    /// has, or nil when nothing says.
    public var announcedWorldSize: (count: Int, source: String)? {
        for name in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"] {
            if let value = variables[name].flatMap({ Int($0) }) { return (value, name) }
        }
        // Inside a batch script (no srun step) only the allocation's task count is known.
        if variables["SLURM_JOB_ID"] != nil, let value = variables["SLURM_NTASKS"].flatMap({ Int($0) }) {
            return (value, "SLURM_NTASKS")
        }
        return nil
    }

    /// Set by a user who really means to run one process inside a multi-task
    /// allocation (debugging on a compute node).
    public var allowsSingleRank: Bool { variables["SCCAM_ALLOW_SINGLE_RANK"] == "1" }
}

public struct LaunchError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

public enum Launch {
    /// The communicator for this process: MPI when a launcher started it, the
    /// single-process one otherwise. Refuses the silent-singleton trap: N
    /// processes that each believe they are alone would each train on all the
    /// data and overwrite each other's files.
    public static func makeCommunicator(environment: LaunchEnvironment = LaunchEnvironment()) throws -> Communicator {
        let announced = environment.announcedWorldSize
        if environment.startedByMPILauncher {
            let communicator = try MPICommunicator()
            if let announced, announced.count > 1, communicator.size == 1 {
                throw LaunchError(description: singletonMessage(announced, startedByMPI: true))
            }
            return communicator
        }
        if let announced, announced.count > 1, !environment.allowsSingleRank {
            throw LaunchError(description: singletonMessage(announced, startedByMPI: false))
        }
        return SingleProcessCommunicator()
    }

    static func singletonMessage(_ announced: (count: Int, source: String), startedByMPI: Bool) -> String {
        let what = startedByMPI
            ? "MPI started this process as a world of 1"
            : "this process was started without an MPI launcher"
        return """
            \(announced.source)=\(announced.count) says this job has \(announced.count) processes, but \
            \(what), so each process would run alone and overwrite the others' files.
              Under Slurm: launch with `srun --mpi=pmix sccam ...` (`srun --mpi=list` shows what the \
            cluster supports), or run `mpirun sccam ...` inside the allocation.
              Elsewhere: launch with `mpirun -np N sccam ...`.
              To run one process on purpose, set SCCAM_ALLOW_SINGLE_RANK=1.
            """
    }
}
