import CDNNL

extension DNNLConvolution {
    /// One cached convolution primitive with the memory objects and reorders
    /// that carry its operands between our layouts (NCHW, OIHW, float32) and
    /// the ones oneDNN chose for it.
    final class Plan {
        /// One argument of the primitive.
        struct Operand {
            let argument: Int32
            let isOutput: Bool
            /// Our tensor; its data handle is set at each call.
            let user: dnnl_memory_t
            /// The operand in the primitive's layout, in a pooled buffer, when that
            /// differs from ours (or when an output must be added to ours).
            let inner: dnnl_memory_t?
            let innerBytes: Int
            /// Inputs: ours → inner. Outputs: inner → ours (with a sum post-op when accumulating).
            let reorder: dnnl_primitive_t?
            /// Emulated bf16: the inner copy is rounded to bfloat16 values before the primitive reads it.
            let roundsToBFloat16: Bool
            /// Weights: the number of the inner layout, under which a pass keeps its converted copy.
            var convertedLayout: Int?

            /// Weights and their gradients are profiled apart from activations.
            var phase: PhaseProfiler.Phase {
                switch argument {
                case DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DIFF_BIAS: return .oneDNNWeightReorder
                default: return .oneDNNReorder
                }
            }
        }

        let primitive: dnnl_primitive_t
        /// oneDNN's name for the kernel it chose, e.g. "jit:avx2", "jit_1x1:avx512_core", "x64:gemm:jit".
        let implementation: String
        var isGEMMBased: Bool { implementation.contains("gemm") }
        private(set) var operands: [Operand] = []

        init(_ key: Key) throws {
            let g = key.geometry
            // A 1x1, stride-1, unpadded layer reads every pixel on its own, so its map
            // can be described as one row of H·W pixels: the same bytes in NCHW and in
            // nChw16c. oneDNN's backward-weights kernels ran 3-10% faster on that row
            // at DeepLab's 31x31 and 41x41 maps (Zen 4, per layer; equal at 21x21, and
            // within noise over a Zen 3 step); forward gained nothing, so it stays 2-D.
            let flattens = key.kind == .backwardWeights && g.kernel == 1 && g.stride == 1 && g.padding == 0
            let (height, width) = flattens ? (1, key.height * key.width) : (key.height, key.width)
            let (outH, outW) = g.outputSize(height: height, width: width)
            let n = Int64(key.batch)
            let sourceDims = [n, Int64(g.inputChannels), Int64(height), Int64(width)]
            let weightDims = [Int64(g.outputChannels), Int64(g.inputChannels), Int64(g.kernel), Int64(g.kernel)]
            let outputDims = [n, Int64(g.outputChannels), Int64(outH), Int64(outW)]
            let biasDims = [Int64(g.outputChannels)]
            // Without oneDNN's bf16 kernels (AVX2 machines), bf16 is emulated: float32
            // kernels on operands rounded to bfloat16, the same numbers AMX multiplies.
            let emulated = key.precision == .bf16 && !DNNLRuntime.hasNativeBFloat16
            let low = key.precision == .bf16 && !emulated ? dnnl_bf16 : dnnl_f32
            let span = g.dilation * (g.kernel - 1) + 1
            // oneDNN wants the right/bottom padding that makes its output size ours
            // (negative when a strided window leaves input columns unread).
            let geometry = Geometry(
                strides: [Int64(g.stride), Int64(g.stride)],
                dilates: [Int64(g.dilation - 1), Int64(g.dilation - 1)],
                paddingLeft: [Int64(g.padding), Int64(g.padding)],
                paddingRight: [Int64((outH - 1) * g.stride + span - height - g.padding),
                               Int64((outW - 1) * g.stride + span - width - g.padding)])

            var forwardHint: dnnl_primitive_desc_t?
            defer { if let forwardHint { dnnl_primitive_desc_destroy(forwardHint) } }
            var descriptor: dnnl_primitive_desc_t?
            defer { if let descriptor { dnnl_primitive_desc_destroy(descriptor) } }

            forwardHint = try Self.forwardDescriptor(geometry, source: sourceDims, weights: weightDims, output: outputDims,
                                                     bias: key.hasBias ? biasDims : nil, low: low, algorithm: key.algorithm)
            switch key.kind {
            case .forward:
                descriptor = forwardHint
                forwardHint = nil
            case .backwardData:
                var op = dnnl_convolution_desc_t()
                var diffSource = anyDesc(sourceDims, dnnl_f32), weights = anyDesc(weightDims, low)
                var diffOutput = anyDesc(outputDims, low)
                try geometry.with { s, d, l, r in
                    try DNNLRuntime.check(dnnl_dilated_convolution_backward_data_desc_init(
                        &op, dnnl_convolution_direct, &diffSource, &weights, &diffOutput, s, d, l, r),
                        "convolution_backward_data_desc_init")
                }
                descriptor = try Self.create(&op, algorithm: key.algorithm, hint: forwardHint, "backward-data")
            case .backwardWeights:
                var op = dnnl_convolution_desc_t()
                var source = anyDesc(sourceDims, low), diffWeights = anyDesc(weightDims, dnnl_f32)
                var diffOutput = anyDesc(outputDims, low)
                var diffBias = plainDesc(biasDims, dnnl_x)
                try geometry.with { s, d, l, r in
                    try withUnsafePointer(to: &diffBias) { biasPointer in
                        try DNNLRuntime.check(dnnl_dilated_convolution_backward_weights_desc_init(
                            &op, dnnl_convolution_direct, &source, &diffWeights, key.hasBias ? biasPointer : nil,
                            &diffOutput, s, d, l, r), "convolution_backward_weights_desc_init")
                    }
                }
                descriptor = try Self.create(&op, algorithm: key.algorithm, hint: forwardHint, "backward-weights")
            }

            var created: dnnl_primitive_t?
            try DNNLRuntime.check(dnnl_primitive_create(&created, descriptor), "primitive_create")
            primitive = created!
            implementation = Self.implementation(of: descriptor!)

            let pd = descriptor!
            func add(_ argument: Int32, _ query: dnnl_query_t, index: Int32 = 0, _ dims: [Int64], tag: dnnl_format_tag_t,
                     output: Bool) throws {
                let inner = dnnl_primitive_desc_query_md(pd, query, index)!
                // Bias and outputs are float32 in every precision.
                let rounds = emulated && !output && argument != DNNL_ARG_BIAS
                var operand = try Self.operand(argument, user: plainDesc(dims, tag), inner: inner, isOutput: output,
                                               accumulate: output && key.accumulate, roundsToBFloat16: rounds)
                if argument == DNNL_ARG_WEIGHTS, operand.inner != nil { operand.convertedLayout = ConvertedWeights.layoutNumber(inner) }
                operands.append(operand)
            }
            let sourceTag = Self.tag(key.layouts.input), outputTag = Self.tag(key.layouts.output)
            switch key.kind {
            case .forward:
                try add(DNNL_ARG_SRC, dnnl_query_src_md, sourceDims, tag: sourceTag, output: false)
                try add(DNNL_ARG_WEIGHTS, dnnl_query_weights_md, weightDims, tag: dnnl_oihw, output: false)
                if key.hasBias { try add(DNNL_ARG_BIAS, dnnl_query_weights_md, index: 1, biasDims, tag: dnnl_x, output: false) }
                try add(DNNL_ARG_DST, dnnl_query_dst_md, outputDims, tag: outputTag, output: true)
            case .backwardData:
                try add(DNNL_ARG_DIFF_DST, dnnl_query_diff_dst_md, outputDims, tag: outputTag, output: false)
                try add(DNNL_ARG_WEIGHTS, dnnl_query_weights_md, weightDims, tag: dnnl_oihw, output: false)
                try add(DNNL_ARG_DIFF_SRC, dnnl_query_diff_src_md, sourceDims, tag: sourceTag, output: true)
            case .backwardWeights:
                try add(DNNL_ARG_SRC, dnnl_query_src_md, sourceDims, tag: sourceTag, output: false)
                try add(DNNL_ARG_DIFF_DST, dnnl_query_diff_dst_md, outputDims, tag: outputTag, output: false)
                try add(DNNL_ARG_DIFF_WEIGHTS, dnnl_query_diff_weights_md, weightDims,
                        tag: key.blockedWeightGradient ? dnnl_ABcd16b16a : dnnl_oihw, output: true)
                if key.hasBias {
                    try add(DNNL_ARG_DIFF_BIAS, dnnl_query_diff_weights_md, index: 1, biasDims, tag: dnnl_x, output: true)
                }
            }
        }

        /// oneDNN's name for an activation layout of ours.
        static func tag(_ layout: ActivationLayout) -> dnnl_format_tag_t {
            switch layout {
            case .plain: return dnnl_nchw
            case .blocked16: return dnnl_aBcd16b
            case .blocked8: return dnnl_aBcd8b
            }
        }

        /// oneDNN's name for the kernel a primitive descriptor chose.
        static func implementation(of descriptor: dnnl_primitive_desc_t) -> String {
            var info: UnsafePointer<CChar>?
            dnnl_primitive_desc_query(descriptor, dnnl_query_impl_info_str, 0, &info)
            return info.map { String(cString: $0) } ?? "?"
        }

        deinit {
            dnnl_primitive_destroy(primitive)
            for operand in operands {
                dnnl_memory_destroy(operand.user)
                if let inner = operand.inner { dnnl_memory_destroy(inner) }
                if let reorder = operand.reorder { dnnl_primitive_destroy(reorder) }
            }
        }

        /// Runs the primitive on these tensors (by DNNL_ARG_*), converting operands on the way.
        /// Its pooled buffers start at `firstSlot`; an input found in `converted` (already in
        /// this primitive's layout, from the plan that ran before) is used as it is.
        /// With a `weightEpoch`, weights converted earlier in that epoch are read from their copy.
        func execute(_ tensors: Tensors, pool: inout BufferPool, firstSlot: Int = 0, converted: Converted? = nil,
                     weightEpoch: Int? = nil) {
            withUnsafeTemporaryAllocation(of: dnnl_exec_arg_t.self, capacity: operands.count) { arguments in
                bind(tensors, into: arguments, pool: &pool, firstSlot: firstSlot, converted: converted, weightEpoch: weightEpoch)
                PhaseProfiler.measure(.oneDNNConvolution) {
                    DNNLRuntime.require(dnnl_primitive_execute(primitive, DNNLRuntime.stream, Int32(arguments.count),
                                                               arguments.baseAddress), "primitive_execute")
                    DNNLRuntime.require(dnnl_stream_wait(DNNLRuntime.stream), "stream_wait")
                }
            }
            for operand in operands where operand.isOutput {
                if let inner = operand.inner { Self.reorder(operand.reorder!, from: inner, to: operand.user, phase: operand.phase) }
            }
        }

        /// Points every operand at its tensor, converting the inputs into the primitive's layouts.
        private func bind(_ tensors: Tensors, into arguments: UnsafeMutableBufferPointer<dnnl_exec_arg_t>, pool: inout BufferPool,
                          firstSlot: Int, converted: Converted?, weightEpoch: Int?) {
            for (index, operand) in operands.enumerated() {
                guard let pointer = tensors.pointer(for: operand.argument) else { fatalError("oneDNN operand \(operand.argument) missing") }
                DNNLRuntime.require(dnnl_memory_set_data_handle(operand.user, pointer), "memory_set_data_handle")
                guard let inner = operand.inner else {
                    arguments.initializeElement(at: index, to: dnnl_exec_arg_t(arg: operand.argument, memory: operand.user))
                    continue
                }
                if let converted, converted.argument == operand.argument, converted.source == pointer,
                   Self.sameLayout(converted.memory, inner) {
                    arguments.initializeElement(at: index, to: dnnl_exec_arg_t(arg: operand.argument, memory: converted.memory))
                    continue
                }
                var target = pool.buffer(slot: firstSlot + index, bytes: operand.innerBytes), isConverted = false
                if let weightEpoch, let layout = operand.convertedLayout,
                   let copy = ConvertedWeights.copy(of: pointer, layout: layout, bytes: operand.innerBytes, epoch: weightEpoch) {
                    (target, isConverted) = copy
                }
                DNNLRuntime.require(dnnl_memory_set_data_handle(inner, target), "memory_set_data_handle")
                if !operand.isOutput && !isConverted {
                    Self.reorder(operand.reorder!, from: operand.user, to: inner, phase: operand.phase)
                    if operand.roundsToBFloat16 {
                        var handle: UnsafeMutableRawPointer?
                        dnnl_memory_get_data_handle(inner, &handle)
                        BFloat16.round(handle!.assumingMemoryBound(to: Float.self), count: operand.innerBytes / 4)
                    }
                }
                arguments.initializeElement(at: index, to: dnnl_exec_arg_t(arg: operand.argument, memory: inner))
            }
        }

        /// An input this plan converted in its last execution: the tensor it came
        /// from and its copy in the primitive's layout (valid until the pool slot is reused).
        func converted(_ argument: Int32, from source: UnsafeRawPointer) -> Converted? {
            guard let operand = operands.first(where: { $0.argument == argument && !$0.isOutput }), let inner = operand.inner else { return nil }
            return Converted(argument: argument, source: UnsafeMutableRawPointer(mutating: source), memory: inner)
        }

        struct Converted {
            let argument: Int32
            let source: UnsafeMutableRawPointer
            let memory: dnnl_memory_t
        }

        private static func sameLayout(_ a: dnnl_memory_t, _ b: dnnl_memory_t) -> Bool {
            var descA: UnsafePointer<dnnl_memory_desc_t>?, descB: UnsafePointer<dnnl_memory_desc_t>?
            dnnl_memory_get_memory_desc(a, &descA)
            dnnl_memory_get_memory_desc(b, &descB)
            guard let descA, let descB else { return false }
            return dnnl_memory_desc_equal(descA, descB) != 0
        }

        private static func reorder(_ reorder: dnnl_primitive_t, from source: dnnl_memory_t, to target: dnnl_memory_t,
                                    phase: PhaseProfiler.Phase) {
            PhaseProfiler.measure(phase) {
                withUnsafeTemporaryAllocation(of: dnnl_exec_arg_t.self, capacity: 2) { arguments in
                    arguments.initializeElement(at: 0, to: dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: source))
                    arguments.initializeElement(at: 1, to: dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: target))
                    DNNLRuntime.require(dnnl_primitive_execute(reorder, DNNLRuntime.stream, 2, arguments.baseAddress), "reorder execute")
                }
                DNNLRuntime.require(dnnl_stream_wait(DNNLRuntime.stream), "stream_wait")
            }
        }
    }
}
