import Kernels
import XCTest

/// The golden cases of every network (ResNet-38 classifier, AffinityNet,
/// DeepLab-v2) on the paths the default one (oneDNN fp32, Winograd where it
/// pays, which on these thin networks is nowhere) is not: Winograd on every
/// layer that has it, oneDNN's direct kernels and the im2col reference at
/// float32's tolerances, and bf16 at bf16's.
final class ConvolutionPathGoldenTests: XCTestCase, GoldenComparing {
    /// Another golden class's instance, to call its test methods from here
    /// (their failures are recorded against the test that runs them).
    private func instance<T: XCTestCase>(_ type: T.Type) -> T { T(name: name, testClosure: { _ in }) }

    private func everyGolden() throws {
        let classifier = instance(GoldenTests.self)
        try classifier.testRound1ForwardActivationsAndCAMs()
        try classifier.testRound1LossAndGradients()
        try classifier.testOddSizesForward()
        try classifier.testRound0ForwardLossAndGradients()
        try instance(AffinityNetGoldenTests.self).testForwardLossAndGradients()
        let deepLab = instance(DeepLabGoldenTests.self)
        try deepLab.testEvalLogitsBothResizeRules()
        try deepLab.testTrainingOutputsLossesAndGradients()
    }

    /// The golden networks are too thin for the default's Winograd threshold
    /// (64 channels); here every layer oneDNN has a Winograd kernel for uses it.
    func testEveryGoldenWithWinogradOnEveryEligibleLayer() throws {
        let saved = (ConvolutionAlgorithm.standard, ConvolutionAlgorithm.winogradMinimumChannels)
        (ConvolutionAlgorithm.standard, ConvolutionAlgorithm.winogradMinimumChannels) = (.winograd, 1)
        defer { (ConvolutionAlgorithm.standard, ConvolutionAlgorithm.winogradMinimumChannels) = saved }
        try on(.oneDNN(.fp32)) { try everyGolden() }
    }

    func testEveryGoldenOnOneDNNsDirectKernels() throws {
        let saved = ConvolutionAlgorithm.standard
        ConvolutionAlgorithm.standard = .direct
        defer { ConvolutionAlgorithm.standard = saved }
        try on(.oneDNN(.fp32)) { try everyGolden() }
    }

    func testEveryGoldenOnTheIm2colReference() throws {
        try on(.im2col) { try everyGolden() }
    }

    func testEveryGoldenInBFloat16() throws {
        try on(.oneDNN(.bf16)) { try everyGolden() }
    }
}
