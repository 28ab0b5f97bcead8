import Kernels

/// What every layer of one forward or backward pass shares.
struct Pass {
    let store: ParameterStore
    /// Folded BN scales and shifts of every BN layer.
    let folded: UnsafeMutablePointer<Float>
    let batch: Int
    /// im2col scratch, large enough for any convolution of this batch shape.
    let scratch: UnsafeMutablePointer<Float>
    /// Set in training with dropout enabled.
    let dropout: DropoutContext?
    /// Add weight gradients to the gradient buffer instead of overwriting it.
    let accumulateGradients: Bool
    /// What computes the convolutions (from the network's `compute`).
    let convolutions: any ConvolutionEngine
}

/// The activations one block keeps for its backward pass (or shares with the
/// other blocks when nothing is kept).
struct BlockBuffers {
    /// relu(bn_branch2a(x)), the input of conv_branch2a and conv_branch1.
    var preactivation: UnsafeMutablePointer<Float>
    /// relu(bn_branch2b1(conv_branch2a(p))), after dropout in bottlenecks.
    var middle: UnsafeMutablePointer<Float>
    /// Bottlenecks: relu(bn_branch2b2(conv_branch2b1(...))), after dropout.
    var inner: UnsafeMutablePointer<Float>?
    /// Bottlenecks in training: per-(sample, channel) dropout multipliers.
    var middleMask: UnsafeMutablePointer<Float>?
    var innerMask: UnsafeMutablePointer<Float>?
}

/// Gradient scratch shared by all blocks during backward.
struct GradientScratch {
    let preactivation: UnsafeMutablePointer<Float>
    let middle: UnsafeMutablePointer<Float>
    let inner: UnsafeMutablePointer<Float>
}
