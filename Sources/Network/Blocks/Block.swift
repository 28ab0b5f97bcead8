import Kernels

/// A block of ResNet-38: the basic (type A) or the bottleneck (type B) kind.
enum Block {
    case basic(BasicBlock)
    case bottleneck(BottleneckBlock)

    var name: String {
        switch self {
        case .basic(let block): return block.name
        case .bottleneck(let block): return block.name
        }
    }

    var batchNorms: [BatchNormLayer] {
        switch self {
        case .basic(let block): return block.batchNorms
        case .bottleneck(let block): return block.batchNorms
        }
    }

    var convolutions: [Conv2D] {
        switch self {
        case .basic(let block): return block.convolutions
        case .bottleneck(let block): return block.convolutions
        }
    }

    /// The last convolution of the residual branch, whose output is added to the shortcut.
    var branchEnd: Conv2D {
        switch self {
        case .basic(let block): return block.conv2b1
        case .bottleneck(let block): return block.conv2b2
        }
    }

    var inputChannels: Int {
        switch self {
        case .basic(let block): return block.inputChannels
        case .bottleneck(let block): return block.inputChannels
        }
    }

    var outputChannels: Int {
        switch self {
        case .basic(let block): return block.outputChannels
        case .bottleneck(let block): return block.outputChannels
        }
    }

    func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        switch self {
        case .basic(let block): return block.outputSize(height: height, width: width)
        case .bottleneck: return (height, width)
        }
    }

    /// Each convolution with the spatial size of its input: the convolutions
    /// after conv_branch2a run at the block's output size.
    func convolutionInputs(height: Int, width: Int) -> [(conv: Conv2D, height: Int, width: Int)] {
        let (outH, outW) = outputSize(height: height, width: width)
        return convolutions.map { conv in
            conv.name.hasSuffix("conv_branch2b1") || conv.name.hasSuffix("conv_branch2b2") ? (conv, outH, outW) : (conv, height, width)
        }
    }
}
