import CMPI

/// The allreduce algorithms the MPI library itself offers, for measuring
/// them side by side in one process (`sccam bench allreduce`).
///
/// Open MPI names its choices in control variables that the MPI tool
/// interface (MPI_T) can write at run time:
/// - `coll_tuned_allreduce_algorithm`, for the blocking `MPI_Allreduce`: a
///   communicator created afterwards keeps it, and it is obeyed only with
///   `coll_tuned_use_dynamic_rules`, which must be set before `MPI_Init`
///   (`OMPI_MCA_coll_tuned_use_dynamic_rules=1`; the benchmark sets it);
/// - `coll_libnbc_iallreduce_algorithm`, for `MPI_Iallreduce`: read at every call.
/// Other libraries have no such variables: `algorithms()` is then empty.
public struct LibraryAllreduceAlgorithms: Sendable {
    public struct Algorithm: Sendable, Equatable {
        public let value: Int32
        public let name: String
    }

    let variableName: String

    public static let blocking = LibraryAllreduceAlgorithms(variableName: "coll_tuned_allreduce_algorithm")
    public static let nonblocking = LibraryAllreduceAlgorithms(variableName: "coll_libnbc_iallreduce_algorithm")

    /// The environment variable that makes Open MPI obey a forced blocking algorithm.
    public static let dynamicRulesVariable = "OMPI_MCA_coll_tuned_use_dynamic_rules"

    /// The algorithms the library names (Open MPI 4.1, blocking: ignore,
    /// basic_linear, nonoverlapping, recursive_doubling, ring, segmented_ring,
    /// rabenseifner; non-blocking: ignore, ring, binomial, rabenseifner,
    /// recursive_doubling); empty when it has none to choose from.
    public func algorithms() -> [Algorithm] {
        guard initializeToolInterface(), let index = variableIndex(), let enumeration = variable(index)?.enumeration else { return [] }
        var count: Int32 = 0
        var enumName = [CChar](repeating: 0, count: 256)
        var enumNameLength: Int32 = 256
        guard MPI_T_enum_get_info(enumeration, &count, &enumName, &enumNameLength) == sccam_mpi_success() else { return [] }
        return (0..<count).compactMap { item in
            var value: Int32 = 0, length: Int32 = 256
            var itemName = [CChar](repeating: 0, count: 256)
            guard MPI_T_enum_get_item(enumeration, item, &value, &itemName, &length) == sccam_mpi_success() else { return nil }
            return Algorithm(value: value, name: String(decoding: itemName.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
    }

    /// Sets the algorithm new communicators will use; false when the library refuses.
    public func force(_ algorithm: Algorithm) -> Bool {
        guard initializeToolInterface(), let index = variableIndex() else { return false }
        var handle: MPI_T_cvar_handle? = nil
        var count: Int32 = 0
        guard MPI_T_cvar_handle_alloc(index, nil, &handle, &count) == sccam_mpi_success() else { return false }
        defer { MPI_T_cvar_handle_free(&handle) }
        var value = algorithm.value
        return MPI_T_cvar_write(handle, &value) == sccam_mpi_success()
    }

    private func initializeToolInterface() -> Bool {
        var provided: Int32 = 0
        return MPI_T_init_thread(Int32(MPI_THREAD_MULTIPLE), &provided) == sccam_mpi_success()
    }

    private func variableIndex() -> Int32? {
        var count: Int32 = 0
        guard MPI_T_cvar_get_num(&count) == sccam_mpi_success() else { return nil }
        return (0..<count).first { variable($0)?.name == variableName }
    }

    /// A control variable's name and, for an enumerated one, its enumeration.
    private func variable(_ index: Int32) -> (name: String, enumeration: MPI_T_enum?)? {
        var nameLength: Int32 = 256, descriptionLength: Int32 = 0
        var name = [CChar](repeating: 0, count: 256)
        var verbosity: Int32 = 0, binding: Int32 = 0, scope: Int32 = 0
        var datatype: MPI_Datatype? = nil
        var enumeration: MPI_T_enum? = nil
        guard MPI_T_cvar_get_info(index, &name, &nameLength, &verbosity, &datatype, &enumeration, nil, &descriptionLength,
                                  &binding, &scope) == sccam_mpi_success() else { return nil }
        return (String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), enumeration)
    }
}
