import Data
import Formats
import Foundation
import Network
import Pipeline
import XCTest

/// psa's affinity training sample (spec 9.2): jitter, joint crop, flip, pool, labels, pairs.
final class AffinitySampleTests: XCTestCase {
    /// A 30 x 20 image in a 48 crop: la says "class" everywhere; ha says background on the left half.
    private func sample(index: Int) -> (AffinitySample, placement: (Int, Int, Int, Int), flipped: Bool) {
        let (w, h) = (30, 20)
        var image = RGBImage(width: w, height: h)
        for i in image.pixels.indices { image.pixels[i] = UInt8((i * 37) % 256) }
        var scores = [Float](repeating: 0, count: 2 * 2 * w * h)
        let plane = w * h
        for y in 0..<h {
            for x in 0..<w {
                let i = y * w + x
                scores[i] = 0.2; scores[plane + i] = 0.8  // la: [bg, class]
                let left = x < w / 2
                scores[2 * plane + i] = left ? 0.9 : 0.1; scores[3 * plane + i] = left ? 0.1 : 0.9  // ha
            }
        }
        let augmentation = TrainingAugmentation(cropSize: 48)
        var random = SampleRandom(seed: 3, epoch: 0, sampleIndex: index)
        // The same draws again, to know where the crop went.
        var replay = random
        var dummy = image.pixels
        augmentation.jitterColors(&dummy, random: &replay)
        let placement = augmentation.cropPlacement(width: w, height: h, random: &replay)
        let flipped = replay.unit() < 0.5
        return (AffinitySample.make(image: image, scores: scores, channels: 2, augmentation: augmentation, random: &random), placement, flipped)
    }

    func testCropPadPoolLabelsAndPairs() {
        for index in 0..<6 {
            let (s, (containerLeft, _, containerTop, _), flipped) = sample(index: index)
            XCTAssertEqual(s.image.count, 3 * 48 * 48)
            XCTAssertEqual(s.labels.count, 36)
            // Padding is black before normalisation: every channel reads (0 - mean) / std there.
            let corner = flipped ? 47 : 0
            if containerLeft > 0 && containerTop > 0 {
                XCTAssertEqual(s.image[corner], Float((0 - Normalization.mean[0]) / Normalization.std[0]))
            }
            // Cells that touch the image are labelled; those wholly in the padding are 255.
            for gy in 0..<6 {
                for gx in 0..<6 {
                    let x0 = flipped ? 48 - 8 * (gx + 1) : 8 * gx
                    let touches = x0 + 8 > containerLeft && x0 < containerLeft + 30 && 8 * gy + 8 > containerTop && 8 * gy < containerTop + 20
                    let label = s.labels[gy * 6 + gx]
                    if !touches {
                        XCTAssertEqual(label, 255, "sample \(index) cell \(gx),\(gy)")
                    } else {
                        XCTAssertTrue(label == 0 || label == 1, "sample \(index) cell \(gx),\(gy): \(label)")
                    }
                }
            }
            XCTAssertTrue(s.labels.contains(0) && s.labels.contains(1), "both halves show")
            // 6 x 6 grid: from cells rows 0..1, columns 4..1 -> none; pairs are empty but well formed.
            XCTAssertEqual(s.backgroundPositive.count, 0)
        }
        // Deterministic per (seed, epoch, sample index), different across samples.
        XCTAssertEqual(sample(index: 2).0.image, sample(index: 2).0.image)
        XCTAssertNotEqual(sample(index: 2).0.image, sample(index: 3).0.image)
    }
}

/// The micro-batch AffinityNet's training picks when none is asked for.
final class AffinityMicroBatchTests: XCTestCase {
    func testAShareThatDoesNotFitRunsInTheLargestPartThatDoes() {
        let network = AffinityNetwork(widthDivisor: 16)
        let one = network.trainingWorkspaceBytes(batch: 1, height: 80, width: 80)
        let perImage = network.trainingWorkspaceBytes(batch: 2, height: 80, width: 80) - one
        XCTAssertGreaterThan(perImage, 0)
        XCTAssertEqual(network.trainingWorkspaceBytes(batch: 4, height: 80, width: 80), one + 3 * perImage, "linear in the batch")
        XCTAssertEqual(network.workspaceBytes, 0, "counting allocates nothing")
        let parameters = 4 * (network.store.parameterCount + 2 * network.store.trainableCount)
        // A node whose 60% holds the parameters and exactly 2 images' activations, for each of 2 ranks.
        let memory = UInt64(Double(2 * (parameters + one - perImage + 2 * perImage)) / 0.6) + 2
        let tight = AffinityTraining.microBatch(requested: nil, share: 4, network: network, crop: 80, ranksOnThisNode: 2, physicalMemory: memory)
        XCTAssertEqual(tight.size, 2)
        XCTAssertTrue(tight.note?.contains("micro-batches of 2") ?? false, tight.note ?? "")
        let roomy = AffinityTraining.microBatch(requested: nil, share: 4, network: network, crop: 80, ranksOnThisNode: 2, physicalMemory: 100 * memory)
        XCTAssertNil(roomy.size)
        XCTAssertNil(roomy.note)
        XCTAssertEqual(AffinityTraining.microBatch(requested: 3, share: 4, network: network, crop: 80, ranksOnThisNode: 1).size, 3)
    }
}
