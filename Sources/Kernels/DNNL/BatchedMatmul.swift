import CDNNL

/// Batched matrix products with float32 results on oneDNN's matmul
/// primitive: result[b] = left[b] · right[b] for every b, each operand
/// row-major or, when marked transposed, stored as its transpose, each stored
/// row possibly longer than its elements (`Shape`'s row lengths). bf16
/// operands run its brgemm kernels (vdpbf16ps on AVX512-BF16, tiles on AMX),
/// float32 ones its jit sgemm; a shape marked `accumulate` adds its product to
/// the result. Primitives are cached per shape; the callers
/// hold `DNNLConvolution`'s lock.
enum BatchedMatmul {
    struct Shape: Hashable {
        let batch, rows, inner, columns: Int
        /// The operands' type, bf16 or float32.
        var operands: ConvolutionPrecision = .bf16
        /// The left operand lies as [batch][inner][rows], the right as [batch][columns][inner].
        var transposedLeft = false, transposedRight = false
        /// Elements from one stored row of an operand to the next (0: the row's
        /// own length), for rows padded against cache aliasing (`WinogradConvolution.Sizes.rowPadding`).
        var leftRowLength = 0, rightRowLength = 0, resultRowLength = 0
        /// The product is added to the result (a sum post-op) rather than written over it.
        var accumulate = false
    }

    /// The descriptor of a batch of outer x inner matrices, stored row-major
    /// (or, transposed, as [inner][outer]) with `rowLength` elements from one
    /// stored row to the next (0: dense).
    static func operandDescriptor(batch: Int, outer: Int, inner: Int, transposed: Bool, rowLength: Int,
                                  type: dnnl_data_type_t) -> dnnl_memory_desc_t {
        let storedRows = transposed ? inner : outer, storedLength = transposed ? outer : inner
        let length = Int64(rowLength == 0 ? storedLength : rowLength)
        let batchStride = Int64(storedRows) * length
        var desc = dnnl_memory_desc_t()
        let dims: [Int64] = [Int64(batch), Int64(outer), Int64(inner)]
        let strides: [Int64] = transposed ? [batchStride, 1, length] : [batchStride, length, 1]
        dims.withUnsafeBufferPointer { d in
            strides.withUnsafeBufferPointer { t in
                DNNLRuntime.require(dnnl_memory_desc_init_by_strides(&desc, 3, d.baseAddress, type, t.baseAddress),
                                    "memory_desc_init_by_strides")
            }
        }
        return desc
    }

    final class Plan {
        let primitive: dnnl_primitive_t
        let left, right, result: dnnl_memory_t
        let implementation: String

        init(_ shape: Shape) throws {
            let type = shape.operands == .bf16 ? dnnl_bf16 : dnnl_f32
            var leftDesc = operandDescriptor(batch: shape.batch, outer: shape.rows, inner: shape.inner, transposed: shape.transposedLeft,
                                             rowLength: shape.leftRowLength, type: type)
            var rightDesc = operandDescriptor(batch: shape.batch, outer: shape.inner, inner: shape.columns,
                                              transposed: shape.transposedRight, rowLength: shape.rightRowLength, type: type)
            var resultDesc = operandDescriptor(batch: shape.batch, outer: shape.rows, inner: shape.columns, transposed: false,
                                               rowLength: shape.resultRowLength, type: dnnl_f32)
            var op = dnnl_matmul_desc_t()
            try DNNLRuntime.check(dnnl_matmul_desc_init(&op, &leftDesc, &rightDesc, nil, &resultDesc), "matmul_desc_init")
            var attributes: dnnl_primitive_attr_t?
            try DNNLRuntime.check(dnnl_primitive_attr_create(&attributes), "primitive_attr_create")
            defer { dnnl_primitive_attr_destroy(attributes) }
            if shape.accumulate {
                var postOps: dnnl_post_ops_t?
                try DNNLRuntime.check(dnnl_post_ops_create(&postOps), "post_ops_create")
                defer { dnnl_post_ops_destroy(postOps) }
                try DNNLRuntime.check(dnnl_post_ops_append_sum(postOps, 1), "post_ops_append_sum")
                try DNNLRuntime.check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "primitive_attr_set_post_ops")
            }
            var descriptor: dnnl_primitive_desc_t?
            try DNNLRuntime.check(dnnl_primitive_desc_create(&descriptor, &op, attributes, DNNLRuntime.engine, nil),
                                  "matmul primitive_desc_create")
            defer { dnnl_primitive_desc_destroy(descriptor) }
            var created: dnnl_primitive_t?
            try DNNLRuntime.check(dnnl_primitive_create(&created, descriptor), "matmul primitive_create")
            primitive = created!
            implementation = DNNLConvolution.Plan.implementation(of: descriptor!)
            func memory(_ desc: inout dnnl_memory_desc_t) throws -> dnnl_memory_t {
                var memory: dnnl_memory_t?
                try DNNLRuntime.check(dnnl_memory_create(&memory, &desc, DNNLRuntime.engine, nil), "memory_create")
                return memory!
            }
            (left, right, result) = (try memory(&leftDesc), try memory(&rightDesc), try memory(&resultDesc))
        }

        deinit {
            dnnl_primitive_destroy(primitive)
            [left, right, result].forEach { dnnl_memory_destroy($0) }
        }

        func execute(left leftData: UnsafeRawPointer, right rightData: UnsafeRawPointer, result resultData: UnsafeMutablePointer<Float>) {
            DNNLRuntime.require(dnnl_memory_set_data_handle(left, UnsafeMutableRawPointer(mutating: leftData)), "memory_set_data_handle")
            DNNLRuntime.require(dnnl_memory_set_data_handle(right, UnsafeMutableRawPointer(mutating: rightData)), "memory_set_data_handle")
            DNNLRuntime.require(dnnl_memory_set_data_handle(result, resultData), "memory_set_data_handle")
            PhaseProfiler.measure(.oneDNNConvolution) {
                withUnsafeTemporaryAllocation(of: dnnl_exec_arg_t.self, capacity: 3) { arguments in
                    arguments.initializeElement(at: 0, to: dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: left))
                    arguments.initializeElement(at: 1, to: dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: right))
                    arguments.initializeElement(at: 2, to: dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: result))
                    DNNLRuntime.require(dnnl_primitive_execute(primitive, DNNLRuntime.stream, 3, arguments.baseAddress), "matmul execute")
                }
                DNNLRuntime.require(dnnl_stream_wait(DNNLRuntime.stream), "stream_wait")
            }
        }
    }

    nonisolated(unsafe) private static var plans: [Shape: Plan] = [:]

    /// Drops every cached primitive (the thread count changed).
    static func discardPlans() { DNNLConvolution.withLock { plans.removeAll() } }

    /// The cached plan for `shape`; the caller holds `DNNLConvolution`'s lock.
    static func plan(_ shape: Shape) -> Plan {
        if let plan = plans[shape] { return plan }
        // Inference at native sizes meets many shapes; a full cache starts again.
        if plans.count >= DNNLConvolution.planCapacity { plans.removeAll() }
        let plan: Plan
        do { plan = try Plan(shape) } catch { fatalError("\(error) (matmul \(shape))") }
        plans[shape] = plan
        return plan
    }
}
