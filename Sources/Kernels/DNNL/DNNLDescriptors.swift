import CDNNL

/// A memory descriptor in a named layout (ours: nchw, oihw, x), float32.
func plainDesc(_ dims: [Int64], _ tag: dnnl_format_tag_t, _ type: dnnl_data_type_t = dnnl_f32) -> dnnl_memory_desc_t {
    var desc = dnnl_memory_desc_t()
    dims.withUnsafeBufferPointer {
        DNNLRuntime.require(dnnl_memory_desc_init_by_tag(&desc, Int32(dims.count), $0.baseAddress, type, tag), "memory_desc_init_by_tag")
    }
    return desc
}

/// A memory descriptor whose layout the primitive chooses.
func anyDesc(_ dims: [Int64], _ type: dnnl_data_type_t) -> dnnl_memory_desc_t {
    plainDesc(dims, dnnl_format_tag_any, type)
}

extension DNNLConvolution.Plan {
    /// Strides, dilations (oneDNN counts them from 0) and paddings of both spatial axes.
    struct Geometry {
        var strides, dilates, paddingLeft, paddingRight: [Int64]

        func with<R>(_ body: (UnsafePointer<Int64>, UnsafePointer<Int64>, UnsafePointer<Int64>, UnsafePointer<Int64>) throws -> R) rethrows -> R {
            try strides.withUnsafeBufferPointer { s in
                try dilates.withUnsafeBufferPointer { d in
                    try paddingLeft.withUnsafeBufferPointer { l in
                        try paddingRight.withUnsafeBufferPointer { r in
                            try body(s.baseAddress!, d.baseAddress!, l.baseAddress!, r.baseAddress!)
                        }
                    }
                }
            }
        }
    }

    /// The training-mode forward primitive descriptor: the forward pass itself,
    /// and the hint both backward passes are created from (so that all three agree on layouts).
    static func forwardDescriptor(_ geometry: Geometry, source: [Int64], weights: [Int64], output: [Int64], bias: [Int64]?,
                                  low: dnnl_data_type_t, algorithm: ConvolutionAlgorithm = .direct) throws -> dnnl_primitive_desc_t {
        var op = dnnl_convolution_desc_t()
        var sourceDesc = anyDesc(source, low), weightDesc = anyDesc(weights, low)
        var outputDesc = anyDesc(output, dnnl_f32)
        var biasDesc = plainDesc(bias ?? [1], dnnl_x)
        try geometry.with { s, d, l, r in
            try withUnsafePointer(to: &biasDesc) { biasPointer in
                try DNNLRuntime.check(dnnl_dilated_convolution_forward_desc_init(
                    &op, dnnl_forward_training, dnnl_convolution_direct, &sourceDesc, &weightDesc,
                    bias != nil ? biasPointer : nil, &outputDesc, s, d, l, r), "convolution_forward_desc_init")
            }
        }
        return try create(&op, algorithm: algorithm, hint: nil, "forward")
    }

    /// The primitive descriptor for `algorithm`, or for the direct kernels
    /// where oneDNN has no Winograd one for this shape and CPU (direct always exists).
    static func create(_ op: inout dnnl_convolution_desc_t, algorithm: ConvolutionAlgorithm, hint: dnnl_primitive_desc_t?,
                       _ what: String) throws -> dnnl_primitive_desc_t {
        var descriptor: dnnl_primitive_desc_t?
        if algorithm == .winograd {
            op.alg_kind = dnnl_convolution_winograd
            if dnnl_primitive_desc_create(&descriptor, &op, nil, DNNLRuntime.engine, hint) == dnnl_success { return descriptor! }
        }
        op.alg_kind = dnnl_convolution_direct
        try DNNLRuntime.check(dnnl_primitive_desc_create(&descriptor, &op, nil, DNNLRuntime.engine, hint),
                              "convolution \(what) primitive_desc_create")
        return descriptor!
    }

    /// Our tensor, and, when the primitive's layout or type differs (or an
    /// output is to be added to ours), its inner copy and the reorder between them.
    static func operand(_ argument: Int32, user userDesc: dnnl_memory_desc_t, inner innerDesc: UnsafePointer<dnnl_memory_desc_t>,
                        isOutput: Bool, accumulate: Bool, roundsToBFloat16: Bool) throws -> Operand {
        var userDesc = userDesc
        var user: dnnl_memory_t?
        try DNNLRuntime.check(dnnl_memory_create(&user, &userDesc, DNNLRuntime.engine, nil), "memory_create")
        let same = dnnl_memory_desc_equal(&userDesc, innerDesc) != 0
        guard !same || accumulate || roundsToBFloat16 else {
            return Operand(argument: argument, isOutput: isOutput, user: user!, inner: nil, innerBytes: 0, reorder: nil,
                           roundsToBFloat16: false)
        }
        var inner: dnnl_memory_t?
        try DNNLRuntime.check(dnnl_memory_create(&inner, innerDesc, DNNLRuntime.engine, nil), "memory_create")
        var attributes: dnnl_primitive_attr_t?
        try DNNLRuntime.check(dnnl_primitive_attr_create(&attributes), "primitive_attr_create")
        defer { dnnl_primitive_attr_destroy(attributes) }
        if accumulate {
            var postOps: dnnl_post_ops_t?
            try DNNLRuntime.check(dnnl_post_ops_create(&postOps), "post_ops_create")
            defer { dnnl_post_ops_destroy(postOps) }
            try DNNLRuntime.check(dnnl_post_ops_append_sum(postOps, 1), "post_ops_append_sum")
            try DNNLRuntime.check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "primitive_attr_set_post_ops")
        }
        var reorderDesc: dnnl_primitive_desc_t?
        if isOutput {
            try DNNLRuntime.check(dnnl_reorder_primitive_desc_create(&reorderDesc, innerDesc, DNNLRuntime.engine, &userDesc,
                                                                     DNNLRuntime.engine, attributes), "reorder_primitive_desc_create")
        } else {
            try DNNLRuntime.check(dnnl_reorder_primitive_desc_create(&reorderDesc, &userDesc, DNNLRuntime.engine, innerDesc,
                                                                     DNNLRuntime.engine, attributes), "reorder_primitive_desc_create")
        }
        defer { dnnl_primitive_desc_destroy(reorderDesc) }
        var reorder: dnnl_primitive_t?
        try DNNLRuntime.check(dnnl_primitive_create(&reorder, reorderDesc), "reorder primitive_create")
        return Operand(argument: argument, isOutput: isOutput, user: user!, inner: inner!,
                       innerBytes: dnnl_memory_desc_get_size(innerDesc), reorder: reorder!, roundsToBFloat16: roundsToBFloat16)
    }
}
