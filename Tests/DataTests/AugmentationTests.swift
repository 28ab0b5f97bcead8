import Data
import Formats
import Foundation
import TestSupport
import XCTest

final class AugmentationTests: XCTestCase {
    private func image(width: Int, height: Int) -> RGBImage {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<pixels.count { pixels[i] = UInt8((i * 37 + i / 3) % 256) }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    static let lowest = Float((0 - 0.485) / 0.229), highest = Float((1 - 0.406) / 0.225)

    func testReferenceShapesAndValueRange() {
        let augmentation = TrainingAugmentation()  // crop 224, long side 256...512
        var random = SampleRandom(seed: 1, epoch: 0, sampleIndex: 0)
        let sample = augmentation.apply(to: image(width: 500, height: 375), random: &random)
        XCTAssertEqual(sample.count, 3 * 224 * 224)
        XCTAssertTrue(sample.allSatisfy { $0 >= Self.lowest - 1e-6 && $0 <= Self.highest + 1e-6 })
    }

    func testSmallImagesArePaddedWithTheMeanColour() {
        // Long side at most 40 into a 64 crop: at least 24 columns and rows are padding (0.0).
        let augmentation = TrainingAugmentation(cropSize: 64, longSide: 30...40)
        var random = SampleRandom(seed: 2, epoch: 1, sampleIndex: 5)
        let sample = augmentation.apply(to: image(width: 50, height: 30), random: &random)
        XCTAssertEqual(sample.count, 3 * 64 * 64)
        let zeros = sample.filter { $0 == 0 }.count
        XCTAssertGreaterThanOrEqual(zeros, 3 * (64 * 64 - 40 * 24))
        XCTAssertTrue(sample.contains { $0 != 0 })
    }

    func testSameKeySameTensorOtherKeyOtherTensor() {
        let augmentation = TrainingAugmentation(cropSize: 96, longSide: 100...140)
        let source = image(width: 120, height: 90)
        func sample(_ seed: UInt64, _ epoch: Int, _ index: Int) -> [Float] {
            var random = SampleRandom(seed: seed, epoch: epoch, sampleIndex: index)
            return augmentation.apply(to: source, random: &random)
        }
        XCTAssertEqual(sample(7, 2, 3), sample(7, 2, 3))
        XCTAssertNotEqual(sample(7, 2, 3), sample(7, 2, 4))
        XCTAssertNotEqual(sample(7, 2, 3), sample(7, 3, 3))
        XCTAssertNotEqual(sample(7, 2, 3), sample(8, 2, 3))
    }

    func testEveryRankCountSeesTheSameGlobalBatches() {
        let schedule = EpochSchedule(count: 37, batchSize: 8, seed: 11)
        XCTAssertEqual(schedule.batchesPerEpoch, 4, "the last partial batch is dropped")
        let order = schedule.permutation(epoch: 3)
        XCTAssertEqual(order.sorted(), Array(0..<37))
        XCTAssertNotEqual(order, schedule.permutation(epoch: 4))
        for index in 0..<schedule.batchesPerEpoch {
            let global = schedule.batch(index, epoch: 3, order: order)
            for size in [1, 2, 4, 8] {
                let joined = (0..<size).flatMap { Sharding.batchSlice(global.map(\.sample), rank: $0, size: size) }
                XCTAssertEqual(joined, global.map(\.sample), "ranks \(size) must cover the global batch in order")
            }
        }
        // A sample's tensor depends on its global number, not on the rank that makes it.
        let augmentation = TrainingAugmentation(cropSize: 48, longSide: 50...70)
        let source = image(width: 60, height: 45)
        let sampleNumber = schedule.batch(2, epoch: 3, order: order)[5].sample
        var onRankOfTwo = SampleRandom(seed: 11, epoch: 3, sampleIndex: sampleNumber)
        var onRankOfFour = SampleRandom(seed: 11, epoch: 3, sampleIndex: sampleNumber)
        XCTAssertEqual(augmentation.apply(to: source, random: &onRankOfTwo), augmentation.apply(to: source, random: &onRankOfFour))
    }

    func testContiguousShardsCoverEveryImageOnce() {
        for count in [0, 1, 5, 12, 10_582] {
            for size in 1...5 {
                let ranges = (0..<size).map { Sharding.contiguousRange(count: count, rank: $0, size: size) }
                XCTAssertEqual(ranges.flatMap { Array($0) }, Array(0..<count))
                XCTAssertLessThanOrEqual((ranges.map(\.count).max() ?? 0) - (ranges.map(\.count).min() ?? 0), 1)
            }
        }
    }

    func testInferenceViews() {
        let source = image(width: 53, height: 37)
        let views = InferenceViews.make(source)
        XCTAssertEqual(views.count, 8)
        XCTAssertEqual(views.map(\.flipped), [false, true, false, true, false, true, false, true])
        XCTAssertEqual(views.map(\.scale), [1, 1, 0.5, 0.5, 1.5, 1.5, 2, 2])
        XCTAssertEqual(views.map(\.width), [53, 53, 26, 26, 80, 80, 106, 106])
        XCTAssertEqual(views.map(\.height), [37, 37, 18, 18, 56, 56, 74, 74])
        XCTAssertEqual(views[0].tensor, InferenceViews.extraction(source), "scale 1 is the image itself")
        // A flipped view is its partner mirrored along the width.
        let (w, h) = (views[2].width, views[2].height)
        for c in 0..<3 {
            for y in 0..<h {
                for x in 0..<w {
                    XCTAssertEqual(views[3].tensor[(c * h + y) * w + x], views[2].tensor[(c * h + y) * w + (w - 1 - x)])
                }
            }
        }
    }

    func testPillowColourOperations() {
        var pixels: [UInt8] = [255, 0, 0, 200, 100, 50]
        PillowColor.adjustBrightness(&pixels, factor: 0.5)
        XCTAssertEqual(pixels, [127, 0, 0, 100, 50, 25], "interpolation truncates")
        pixels = [250, 10, 128]
        PillowColor.adjustBrightness(&pixels, factor: 1.3)
        XCTAssertEqual(pixels, [255, 13, 166], "extrapolation clips")
        pixels = [255, 0, 0]
        PillowColor.shiftHue(&pixels, by: 85)
        XCTAssertEqual(pixels, [0, 255, 0], "a third of the hue circle turns red into green")
        pixels = [255, 0, 0]
        PillowColor.shiftHue(&pixels, by: -85)
        // 0 - 85 wraps to 171: i = floor(171*6/255) = 4, f = 0.0235, t = round(255 * f) = 6.
        XCTAssertEqual(pixels, [6, 0, 255], "negative shifts wrap modulo 256")
        pixels = [10, 200, 30, 90, 90, 90]
        PillowColor.adjustSaturation(&pixels, factor: 0)
        XCTAssertEqual(pixels[0], pixels[1])
        XCTAssertEqual(Array(pixels[3...]), [90, 90, 90], "grey stays grey")
        pixels = [0, 0, 0, 255, 255, 255]
        PillowColor.adjustContrast(&pixels, factor: 0)
        XCTAssertEqual(pixels, [128, 128, 128, 128, 128, 128], "mean luma 127.5 rounds to 128")
    }
}

final class LoaderTests: XCTestCase {
    func testItemsArriveInOrderWithAnyThreadCount() throws {
        for threads in [1, 3] {
            let loader = PrefetchingLoader<Int>(count: 20, threads: threads, capacity: 4) { index in
                usleep(UInt32((20 - index) * 200))  // later items are faster: order must still hold
                return index * index
            }
            var received: [Int] = []
            while let item = try loader.next() { received.append(item) }
            XCTAssertEqual(received, (0..<20).map { $0 * $0 })
        }
    }

    func testProducerErrorsReachTheConsumerInOrder() throws {
        struct Broken: Error {}
        let loader = PrefetchingLoader<Int>(count: 5, threads: 2, capacity: 2) { index in
            if index == 3 { throw Broken() }
            return index
        }
        XCTAssertEqual(try loader.next(), 0)
        XCTAssertEqual(try loader.next(), 1)
        XCTAssertEqual(try loader.next(), 2)
        XCTAssertThrowsError(try loader.next())
        loader.stop()
    }

    func testPrefetchingIsBounded() throws {
        final class Counter: @unchecked Sendable {
            let lock = NSLock()
            var produced = 0
        }
        let counter = Counter()
        let loader = PrefetchingLoader<Int>(count: 100, threads: 2, capacity: 3) { index in
            counter.lock.lock(); counter.produced += 1; counter.lock.unlock()
            return index
        }
        XCTAssertEqual(try loader.next(), 0)
        usleep(200_000)
        counter.lock.lock()
        let produced = counter.produced
        counter.lock.unlock()
        XCTAssertLessThanOrEqual(produced, 1 + 3, "no more than capacity items ahead of the consumer")
        loader.stop()
    }
}
