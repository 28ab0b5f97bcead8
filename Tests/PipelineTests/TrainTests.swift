import Formats
import Foundation
import Network
import TestSupport
import XCTest

final class OptimizerTests: XCTestCase {
    /// Two steps of PolySGD against spec 3.4 written out per element, for a
    /// backbone tensor (x1), a head (x10), and the frozen stem (must not move).
    func testUpdateRuleForEveryGroup() throws {
        let network = SCCAMNetwork(configuration: NetworkConfiguration(widthDivisor: 16, round: 1))
        network.initializeBackbone(seed: 3)
        let store = network.store
        let optimizer = PolySGD(store: store, baseLearningRate: 0.01, maxStep: 10, weightDecay: 5e-4, momentum: 0.0005)
        let names = ["b3.conv_branch2a.weight", "fc8_200.weight"]
        let stem = Array(store.view("conv1a.weight")!)
        var expectedW = names.map { Array(store.view($0)!) }
        var expectedBuffer = names.map { [Float](repeating: 0, count: store.view($0)!.count) }
        for step in 0..<2 {
            for i in 0..<store.gradients.count { store.gradients[i] = Float((i * 7 + step * 3) % 13) * 0.01 - 0.06 }
            let lr = Float(0.01 * pow(1 - Double(step) / 10, 0.9))
            for (n, name) in names.enumerated() {
                let multiplier: Float = name.hasPrefix("fc8") ? 10 : 1
                let gradient = Array(store.gradientView(name)!)
                for i in expectedW[n].indices {
                    let d = gradient[i] + 5e-4 * expectedW[n][i]
                    expectedBuffer[n][i] = step == 0 ? d : 0.0005 * expectedBuffer[n][i] + d
                    expectedW[n][i] -= lr * multiplier * expectedBuffer[n][i]
                }
            }
            XCTAssertEqual(optimizer.learningRate, lr, accuracy: 1e-9)
            optimizer.apply(to: store)
        }
        for (n, name) in names.enumerated() {
            let actual = Array(store.view(name)!)
            XCTAssertLessThanOrEqual(zip(actual, expectedW[n]).map { abs($0 - $1) }.max()!, 1e-7, name)
        }
        XCTAssertEqual(Array(store.view("conv1a.weight")!), stem, "the frozen stem never moves")
        XCTAssertEqual(optimizer.step, 2)
    }
}

final class TrainCommandTests: XCTestCase {
    private var temporary: TemporaryDirectory!
    private var voc: TinyVOC!

    override func setUpWithError() throws {
        temporary = try TemporaryDirectory(prefix: "sccam-train")
        voc = try TinyVOC.make(in: temporary.path)
    }

    override func tearDown() { temporary.remove() }

    /// Round 0 from scratch at width 1/16 on the 4 training images, crop 32.
    private func train(_ work: String, ranks: Int = 1, _ extra: [String]) throws -> ProcessResult {
        let arguments = ["train", "--voc-root", voc.root, "--work", work, "--round", "0", "--list", "train", "--width-divisor", "16",
                         "--batch", "4", "--crop", "32", "--threads", "1", "--checkpoint-every", "1", "--seed", "7"] + extra
        return ranks == 1 ? try TestProcess.sccam(arguments, timeout: 600) : try TestProcess.mpirun(ranks: ranks, arguments, timeout: 600)
    }

    private func weights(_ path: String) throws -> [Float] {
        try Safetensors.read(path).tensors.flatMap { try $0.floatValues() }
    }

    func testTwoRanksWithTwoImagesEachEqualOneRankWithFour() throws {
        let one = try train(temporary.path + "/one", ["--epochs", "3"])
        XCTAssertEqual(one.status, 0, "\(one)")
        let two = try train(temporary.path + "/two", ranks: 2, ["--epochs", "3"])
        XCTAssertEqual(two.status, 0, "\(two)")
        let a = try weights(temporary.path + "/one/weights/R0_ep2.safetensors")
        let b = try weights(temporary.path + "/two/weights/R0_ep2.safetensors")
        let initial = try weights(temporary.path + "/one/weights/R0_ep0.safetensors")
        XCTAssertNotEqual(a, initial, "training moved the weights")
        let scale = a.map(abs).max()!
        XCTAssertLessThanOrEqual(zip(a, b).map { abs($0 - $1) }.max()! / scale, 1e-5)
    }

    func testResumingEqualsUninterruptedTraining() throws {
        XCTAssertEqual(try train(temporary.path + "/straight", ["--epochs", "4"]).status, 0)
        let first = try train(temporary.path + "/resumed", ["--epochs", "4", "--stop-after-epochs", "2"])
        XCTAssertEqual(first.status, 0, "\(first)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: temporary.path + "/resumed/weights/R0_ep3.safetensors"))
        let second = try train(temporary.path + "/resumed", ["--epochs", "4", "--resume"])
        XCTAssertEqual(second.status, 0, "\(second)")
        XCTAssertTrue(second.standardOutput.contains("resuming after epoch 1 (step 2)"), second.standardOutput)
        XCTAssertEqual(try weights(temporary.path + "/resumed/weights/R0_ep3.safetensors"),
                       try weights(temporary.path + "/straight/weights/R0_ep3.safetensors"))
        let folder = try FileManager.default.contentsOfDirectory(atPath: temporary.path + "/resumed/weights")
        XCTAssertFalse(folder.contains { $0.contains(".tmp-") }, "no partial files: \(folder)")
        let metrics = try String(contentsOfFile: temporary.path + "/straight/logs/metrics.jsonl", encoding: .utf8)
        XCTAssertTrue(metrics.contains("\"step\":4"), metrics)
    }

    func testLossGoesDownOnATinyDataset() throws {
        let result = try train(temporary.path + "/learn", ["--epochs", "30", "--lr", "0.05", "--checkpoint-every", "30", "--log-every", "10"])
        XCTAssertEqual(result.status, 0, "\(result)")
        let losses = try String(contentsOfFile: temporary.path + "/learn/logs/metrics.jsonl", encoding: .utf8)
            .split(separator: "\n").compactMap { line -> Double? in
                guard let data = line.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
                return object["loss"] as? Double
            }
        XCTAssertGreaterThanOrEqual(losses.count, 3)
        XCTAssertLessThan(losses.last!, 0.7 * losses.first!, "losses: \(losses)")
    }
}
