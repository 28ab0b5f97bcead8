import Kernels

/// One convolution of a network and the input size it sees: what
/// `sccam env` and `sccam bench network` list with the kernel each runs on.
public struct ConvolutionLayer: Sendable {
    public let name: String
    public let geometry: ConvolutionGeometry
    public let height, width: Int
    /// The sum this layer is a branch of (DeepLab's ASPP), which an engine may run whole.
    public var branchSum: DilatedBranchSum? = nil

    /// What a forward pass of this layer runs on, on `engine`.
    public func kernelName(on engine: any ConvolutionEngine, batch: Int) -> String {
        if let branchSum, engine.runsOnTaps(branchSum, height: height, width: width) {
            return "ASPP tap matrix: sgemm"
        }
        return engine.kernelName(geometry, batch: batch, height: height, width: width)
    }
}

extension SCCAMNetwork {
    /// Every backbone convolution in forward order, for a `height` x `width` input.
    public func convolutionLayers(height: Int, width: Int) -> [ConvolutionLayer] {
        backbone.convolutionLayers(height: height, width: width)
    }
}

extension ResNet38 {
    func convolutionLayers(height: Int, width: Int) -> [ConvolutionLayer] {
        var layers = [ConvolutionLayer(name: conv1a.name, geometry: conv1a.geometry, height: height, width: width)]
        var (h, w) = (height, width)
        for block in blocks {
            layers += block.convolutionInputs(height: h, width: w).map {
                ConvolutionLayer(name: $0.conv.name, geometry: $0.conv.geometry, height: $0.height, width: $0.width)
            }
            (h, w) = block.outputSize(height: h, width: w)
        }
        return layers
    }
}

extension DeepLabV2 {
    /// Every convolution of the scale-1 branch in forward order (backbone,
    /// then the ASPP), for a `height` x `width` input.
    public func convolutionLayers(height: Int, width: Int) -> [ConvolutionLayer] {
        let stem = backbone.stem
        var layers = [ConvolutionLayer(name: stem.conv.name, geometry: stem.geometry, height: height, width: width)]
        var (h, w) = backbone.stemSizes(height: height, width: width).pool
        for block in backbone.blocks {
            layers += block.unitInputs(height: h, width: w).map {
                ConvolutionLayer(name: $0.unit.conv.name, geometry: $0.unit.geometry, height: $0.height, width: $0.width)
            }
            (h, w) = block.outputSize(height: h, width: w)
        }
        return layers + aspp.branches.map {
            ConvolutionLayer(name: $0.name, geometry: $0.geometry, height: h, width: w, branchSum: aspp.sum)
        }
    }
}
