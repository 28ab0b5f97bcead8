import CDNNL
import Foundation

/// Convolution forward and both backward passes through oneDNN, on the same
/// NCHW float32 tensors and OIHW weights as `Convolution` (the im2col
/// reference). Each shape's primitive is created once and cached: creation
/// costs milliseconds, execution then creates nothing. oneDNN chooses its own
/// (blocked) layouts; operands cross into them by reorders into pooled
/// buffers, and outputs that accumulate (`+=`) come back by a reorder with a
/// sum post-op, so no extra pass is spent on them.
public enum DNNLConvolution {
    enum Kind: Hashable { case forward, backwardData, backwardWeights }

    struct Key: Hashable {
        let kind: Kind
        let geometry: ConvolutionGeometry
        let batch, height, width: Int
        let precision: ConvolutionPrecision
        /// Already resolved for the layer: Winograd only where it pays.
        let algorithm: ConvolutionAlgorithm
        let hasBias: Bool
        /// Backward-weights: the gradient is written OIhw16i16o rather than OIHW.
        var blockedWeightGradient = false
        /// Our tensors' layouts: input side (src, diff_src) and output side (dst, diff_dst).
        var layouts = ConvolutionLayouts.plain
        /// The output is added to (forward, backward-data) or the gradient accumulated.
        let accumulate: Bool
    }

    /// output (+)= conv(input) (+ bias) for the whole batch.
    static func forward(_ g: ConvolutionGeometry, precision: ConvolutionPrecision, weight: UnsafePointer<Float>,
                               bias: UnsafePointer<Float>?, input: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                               output: UnsafeMutablePointer<Float>, accumulate: Bool = false,
                               layouts: ConvolutionLayouts = .plain, algorithm: ConvolutionAlgorithm, weightEpoch: Int? = nil) {
        if WinogradConvolution.runs(precision, algorithm) {
            return WinogradConvolution.forward(g, precision: precision, weight: weight, bias: bias, input: input, batch: batch, height: height, width: width,
                                               output: output, accumulate: accumulate, layouts: layouts, weightEpoch: weightEpoch)
        }
        let key = Key(kind: .forward, geometry: g, batch: batch, height: height, width: width, precision: precision,
                      algorithm: algorithm, hasBias: bias != nil, layouts: layouts, accumulate: accumulate)
        run(key, Tensors(source: UnsafeMutableRawPointer(mutating: input), weights: UnsafeMutableRawPointer(mutating: weight),
                         bias: bias.map { UnsafeMutableRawPointer(mutating: $0) }, destination: UnsafeMutableRawPointer(output)),
            weightEpoch: weightEpoch)
    }

    /// inputGradient (+)= convᵀ(outputGradient).
    static func backwardInput(_ g: ConvolutionGeometry, precision: ConvolutionPrecision, weight: UnsafePointer<Float>,
                                     outputGradient: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                                     inputGradient: UnsafeMutablePointer<Float>, accumulate: Bool,
                                     layouts: ConvolutionLayouts = .plain, algorithm: ConvolutionAlgorithm, weightEpoch: Int? = nil) {
        if WinogradConvolution.runs(precision, algorithm) {
            return WinogradConvolution.backward(g, precision: precision, input: nil, weight: weight, outputGradient: outputGradient, batch: batch,
                                                height: height, width: width, weightGradient: nil, weightGradientLayout: .plain,
                                                biasGradient: nil, accumulateWeightGradient: false, inputGradient: inputGradient,
                                                accumulateInputGradient: accumulate, layouts: layouts, weightEpoch: weightEpoch)
        }
        let key = Key(kind: .backwardData, geometry: g, batch: batch, height: height, width: width, precision: precision,
                      algorithm: algorithm, hasBias: false, layouts: layouts, accumulate: accumulate)
        run(key, Tensors(weights: UnsafeMutableRawPointer(mutating: weight), diffSource: UnsafeMutableRawPointer(inputGradient),
                         diffDestination: UnsafeMutableRawPointer(mutating: outputGradient)), weightEpoch: weightEpoch)
    }

    /// weightGradient (+)= Σₙ outputGradient[n] ⋆ input[n], and the bias gradient (+)= Σ over images and positions.
    static func backwardWeight(_ g: ConvolutionGeometry, precision: ConvolutionPrecision, input: UnsafePointer<Float>,
                                      outputGradient: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                                      weightGradient: UnsafeMutablePointer<Float>, weightGradientLayout: WeightGradientLayout,
                                      biasGradient: UnsafeMutablePointer<Float>?, accumulate: Bool,
                                      layouts: ConvolutionLayouts = .plain, algorithm: ConvolutionAlgorithm) {
        if WinogradConvolution.runs(precision, algorithm) {
            return WinogradConvolution.backward(g, precision: precision, input: input, weight: nil, outputGradient: outputGradient, batch: batch,
                                                height: height, width: width, weightGradient: weightGradient,
                                                weightGradientLayout: weightGradientLayout, biasGradient: biasGradient,
                                                accumulateWeightGradient: accumulate, inputGradient: nil, accumulateInputGradient: false,
                                                layouts: layouts, weightEpoch: nil)
        }
        let key = Key(kind: .backwardWeights, geometry: g, batch: batch, height: height, width: width, precision: precision,
                      algorithm: algorithm, hasBias: biasGradient != nil, blockedWeightGradient: weightGradientLayout == .blocked16,
                      layouts: layouts, accumulate: accumulate)
        run(key, Tensors(source: UnsafeMutableRawPointer(mutating: input),
                         diffDestination: UnsafeMutableRawPointer(mutating: outputGradient),
                         diffWeights: UnsafeMutableRawPointer(weightGradient), diffBias: biasGradient.map { UnsafeMutableRawPointer($0) }))
    }

    /// Both backward passes of one layer from one output gradient, in the
    /// order the layers always ran them (the weight gradient reads the input,
    /// the input gradient is written after): the second reads the output
    /// gradient the first already converted into the primitives' layout (when
    /// both want the same one) instead of converting it again.
    static func backward(_ g: ConvolutionGeometry, precision: ConvolutionPrecision, input: UnsafePointer<Float>,
                         weight: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                         weightGradient: UnsafeMutablePointer<Float>?, weightGradientLayout: WeightGradientLayout,
                         biasGradient: UnsafeMutablePointer<Float>?, accumulateWeightGradient: Bool,
                         inputGradient: UnsafeMutablePointer<Float>?, accumulateInputGradient: Bool,
                         layouts: ConvolutionLayouts = .plain, algorithm: ConvolutionAlgorithm, weightEpoch: Int? = nil) {
        if WinogradConvolution.runs(precision, algorithm) {
            return WinogradConvolution.backward(g, precision: precision, input: input, weight: weight, outputGradient: outputGradient, batch: batch,
                                                height: height, width: width, weightGradient: weightGradient,
                                                weightGradientLayout: weightGradientLayout, biasGradient: biasGradient,
                                                accumulateWeightGradient: accumulateWeightGradient, inputGradient: inputGradient,
                                                accumulateInputGradient: accumulateInputGradient, layouts: layouts, weightEpoch: weightEpoch)
        }
        lock.withLock {
            DNNLRuntime.applyThreadCount()
            var converted: Plan.Converted?
            if let weightGradient {
                let key = Key(kind: .backwardWeights, geometry: g, batch: batch, height: height, width: width, precision: precision,
                              algorithm: algorithm, hasBias: biasGradient != nil,
                              blockedWeightGradient: weightGradientLayout == .blocked16, layouts: layouts,
                              accumulate: accumulateWeightGradient)
                let weights = plan(for: key)
                weights.execute(Tensors(source: UnsafeMutableRawPointer(mutating: input),
                                        diffDestination: UnsafeMutableRawPointer(mutating: outputGradient),
                                        diffWeights: UnsafeMutableRawPointer(weightGradient),
                                        diffBias: biasGradient.map { UnsafeMutableRawPointer($0) }), pool: &pool)
                converted = weights.converted(DNNL_ARG_DIFF_DST, from: outputGradient)
            }
            if let inputGradient {
                let key = Key(kind: .backwardData, geometry: g, batch: batch, height: height, width: width, precision: precision,
                              algorithm: algorithm, hasBias: false, layouts: layouts, accumulate: accumulateInputGradient)
                // Its buffers start past the first plan's, whose converted output gradient it reads.
                plan(for: key).execute(Tensors(weights: UnsafeMutableRawPointer(mutating: weight),
                                               diffSource: UnsafeMutableRawPointer(inputGradient),
                                               diffDestination: UnsafeMutableRawPointer(mutating: outputGradient)),
                                       pool: &pool, firstSlot: 4, converted: converted, weightEpoch: weightEpoch)
            }
        }
    }

    /// oneDNN's name for the kernel a forward convolution of this shape runs
    /// on, e.g. "jit_wino_4x3:avx512_core" or "jit:avx2" (its plan is cached).
    static func forwardImplementation(_ g: ConvolutionGeometry, precision: ConvolutionPrecision, batch: Int, height: Int,
                                             width: Int, hasBias: Bool, algorithm: ConvolutionAlgorithm) -> String {
        if WinogradConvolution.runs(precision, algorithm) {
            return lock.withLock { WinogradConvolution.implementation(g, precision: precision, batch: batch, height: height, width: width) }
        }
        let key = Key(kind: .forward, geometry: g, batch: batch, height: height, width: width, precision: precision,
                      algorithm: algorithm, hasBias: hasBias, accumulate: false)
        return lock.withLock { plan(for: key).implementation }
    }

    /// How many primitives (with their reorders) are cached.
    public static var cachedPlanCount: Int { lock.withLock { plans.count } }

    /// Drops every cached primitive (the thread count changed).
    static func discardPlans() { lock.withLock { plans.removeAll() } }

    /// Plans kept at most: a network has about 40 convolution shapes per input
    /// size, and inference at native size meets many sizes (VOC has hundreds),
    /// each a primitive holding generated code; the least recently used go first.
    public static let planCapacity = 1024

    private static let lock = NSLock()

    /// Runs `body` under the lock every convolution call holds.
    static func withLock<R>(_ body: () -> R) -> R { lock.withLock(body) }
    nonisolated(unsafe) private static var plans: [Key: (plan: Plan, lastUse: Int)] = [:]
    nonisolated(unsafe) private static var uses = 0
    nonisolated(unsafe) private static var pool = BufferPool()

    private static func run(_ key: Key, _ tensors: Tensors, weightEpoch: Int? = nil) {
        lock.withLock {
            DNNLRuntime.applyThreadCount()
            plan(for: key).execute(tensors, pool: &pool, weightEpoch: weightEpoch)
        }
    }

    /// The cached plan for `key`, created on first use; the caller holds `lock`.
    private static func plan(for key: Key) -> Plan {
        uses += 1
        let plan: Plan
        if let cached = plans[key] {
            plan = cached.plan
        } else {
            do { plan = try Plan(key) } catch { fatalError("\(error) (convolution \(key))") }
            if plans.count >= planCapacity, let oldest = plans.min(by: { $0.value.lastUse < $1.value.lastUse }) {
                plans[oldest.key] = nil
            }
        }
        plans[key] = (plan, uses)
        return plan
    }
}

/// The tensors of one call, by their oneDNN argument: a value on the stack,
/// so that a call allocates nothing.
struct Tensors {
    var source, weights, bias, destination: UnsafeMutableRawPointer?
    var diffSource, diffDestination, diffWeights, diffBias: UnsafeMutableRawPointer?

    init(source: UnsafeMutableRawPointer? = nil, weights: UnsafeMutableRawPointer? = nil, bias: UnsafeMutableRawPointer? = nil,
         destination: UnsafeMutableRawPointer? = nil, diffSource: UnsafeMutableRawPointer? = nil,
         diffDestination: UnsafeMutableRawPointer? = nil, diffWeights: UnsafeMutableRawPointer? = nil,
         diffBias: UnsafeMutableRawPointer? = nil) {
        (self.source, self.weights, self.bias, self.destination) = (source, weights, bias, destination)
        (self.diffSource, self.diffDestination, self.diffWeights, self.diffBias) = (diffSource, diffDestination, diffWeights, diffBias)
    }

    func pointer(for argument: Int32) -> UnsafeMutableRawPointer? {
        switch argument {
        case DNNL_ARG_SRC: return source
        case DNNL_ARG_WEIGHTS: return weights
        case DNNL_ARG_BIAS: return bias
        case DNNL_ARG_DST: return destination
        case DNNL_ARG_DIFF_SRC: return diffSource
        case DNNL_ARG_DIFF_DST: return diffDestination
        case DNNL_ARG_DIFF_WEIGHTS: return diffWeights
        case DNNL_ARG_DIFF_BIAS: return diffBias
        default: return nil
        }
    }
}

/// Growable, 64-byte aligned buffers that hold operands in oneDNN's layouts
/// during one call: one slot per operand position, shared by every plan.
struct BufferPool {
    private var buffers: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []

    mutating func buffer(slot: Int, bytes: Int) -> UnsafeMutableRawPointer {
        while buffers.count <= slot { buffers.append((UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64), 64)) }
        if buffers[slot].bytes < bytes {
            buffers[slot].pointer.deallocate()
            // Grow with headroom: the next larger shape usually comes soon after.
            let size = max(bytes, buffers[slot].bytes * 5 / 4)
            buffers[slot] = (HugePages.allocate(byteCount: size, alignment: 64), size)
        }
        return buffers[slot].pointer
    }
}
