// OpenMPI defines its predefined handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM,
// MPI_IN_PLACE, ...) as macros that take the address of library globals. The
// Clang importer cannot import such macros, so each one is re-exposed here as a
// static inline accessor.
#ifndef SCCAM_CMPI_SHIM_H
#define SCCAM_CMPI_SHIM_H

#include <mpi.h>

static inline MPI_Comm sccam_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm sccam_mpi_comm_null(void) { return MPI_COMM_NULL; }

static inline MPI_Datatype sccam_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype sccam_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype sccam_mpi_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype sccam_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype sccam_mpi_uint8(void) { return MPI_UINT8_T; }
static inline MPI_Datatype sccam_mpi_uint16(void) { return MPI_UINT16_T; }
static inline MPI_Datatype sccam_mpi_byte(void) { return MPI_BYTE; }

static inline MPI_Op sccam_mpi_op_sum(void) { return MPI_SUM; }
static inline MPI_Op sccam_mpi_op_max(void) { return MPI_MAX; }
static inline MPI_Op sccam_mpi_op_min(void) { return MPI_MIN; }

static inline void *sccam_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Request sccam_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *sccam_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Status *sccam_mpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
static inline MPI_Errhandler sccam_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }

static inline int sccam_mpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
static inline MPI_Info sccam_mpi_info_null(void) { return MPI_INFO_NULL; }

static inline int sccam_mpi_success(void) { return MPI_SUCCESS; }
static inline int sccam_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int sccam_mpi_max_library_version_string(void) { return MPI_MAX_LIBRARY_VERSION_STRING; }
static inline int sccam_mpi_max_processor_name(void) { return MPI_MAX_PROCESSOR_NAME; }

#endif
