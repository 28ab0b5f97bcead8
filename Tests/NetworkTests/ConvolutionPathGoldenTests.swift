@testable import Kernels
import XCTest

/// The golden cases of every network (ResNet-38 classifier, AffinityNet,
/// DeepLab-v2) on the paths the default one (oneDNN fp32, Winograd where it
/// pays, which on these thin networks is nowhere) is not: Winograd on every
/// layer that has it (the dilated ones on their phase images, or not),
/// oneDNN's direct kernels (dilated, or on phases) and the im2col reference
/// at float32's tolerances, and bf16 (dilated, or on phases) at bf16's.
final class ConvolutionPathGoldenTests: XCTestCase, GoldenComparing {
    var compute = Compute()

    /// Another golden class's instance, to call its test methods from here
    /// (their failures are recorded against the test that runs them).
    private func instance<T: XCTestCase>(_ type: T.Type) -> T { T(name: name, testClosure: { _ in }) }

    /// The golden cases of every network, each on `compute`.
    private func everyGolden(on compute: Compute) throws {
        let classifier = instance(GoldenTests.self)
        classifier.compute = compute
        try classifier.testRound1ForwardActivationsAndCAMs()
        try classifier.testRound1LossAndGradients()
        try classifier.testOddSizesForward()
        try classifier.testRound0ForwardLossAndGradients()
        let affinityNet = instance(AffinityNetGoldenTests.self)
        affinityNet.compute = compute
        try affinityNet.testForwardLossAndGradients()
        let deepLab = instance(DeepLabGoldenTests.self)
        deepLab.compute = compute
        try deepLab.testEvalLogitsBothResizeRules()
        try deepLab.testTrainingOutputsLossesAndGradients()
    }

    /// The golden networks are too thin for the default's Winograd threshold
    /// (64 channels); here every layer with a Winograd form uses it (oneDNN's
    /// F(4x4, 3x3) on AVX-512, ours on AVX2).
    /// The dilated layers then run Winograd on their phase images, as the full-width networks' do.
    func testEveryGoldenWithWinogradOnEveryEligibleLayer() throws {
        try everyGolden(on: Compute(algorithm: .winograd, winogradMinimumChannels: 1))
    }

    /// Winograd on the undilated layers only, the dilated ones on oneDNN's dilated kernels.
    func testEveryGoldenWithWinogradAndDilatedKernels() throws {
        try everyGolden(on: Compute(algorithm: .winograd, winogradMinimumChannels: 1, dilatedConvolutions: .dilated))
    }

    func testEveryGoldenOnOneDNNsDirectKernels() throws {
        try everyGolden(on: Compute(algorithm: .direct))
    }

    func testEveryGoldenOnDirectKernelsWithDilatedLayersOnPhases() throws {
        try everyGolden(on: Compute(algorithm: .direct, dilatedConvolutions: .phases))
    }

    func testEveryGoldenOnTheIm2colReference() throws {
        try everyGolden(on: Compute(implementation: .im2col))
    }

    func testEveryGoldenInBFloat16() throws {
        try everyGolden(on: Compute(precision: .bf16, algorithm: .direct, dilatedConvolutions: .dilated))
    }

    /// bf16 with our Winograd F(2x2, 3x3) on every 3x3 layer (the dilated ones
    /// on their phase images), where the CPU runs it (AVX512-BF16 without AMX).
    func testEveryGoldenInBFloat16Winograd() throws {
        try XCTSkipUnless(WinogradConvolution.winsOnThisCPU, "bf16 Winograd runs only where the CPU's bf16 is AVX512-BF16")
        try everyGolden(on: Compute(precision: .bf16, algorithm: .winograd, winogradMinimumChannels: 1))
    }

    func testEveryGoldenInBFloat16WithDilatedLayersOnPhases() throws {
        try everyGolden(on: Compute(precision: .bf16, dilatedConvolutions: .phases))
    }
}
