import Data
import Formats
import Foundation
import TestSupport
import XCTest

final class VOCTests: XCTestCase {
    private var temporary: TemporaryDirectory!
    private var voc: TinyVOC!
    private var dataset: VOCDataset!

    override func setUpWithError() throws {
        temporary = try TemporaryDirectory(prefix: "sccam-voc")
        voc = try TinyVOC.make(in: temporary.path)
        dataset = try VOCDataset(root: voc.root)
    }

    override func tearDown() { temporary.remove() }

    func testListsAsTheReferenceBuildsThem() throws {
        XCTAssertEqual(try dataset.list("train").ids, voc.images.filter { !$0.inVal }.map(\.id))
        XCTAssertEqual(try dataset.list("val").ids, voc.images.filter(\.inVal).map(\.id))
        // train_aug: every image with an SBD mask, minus val, in id order.
        XCTAssertEqual(try dataset.list("train_aug").ids, ["2007_000032", "2008_000002", "2008_000008"])
    }

    func testListFilesInBothFormats() throws {
        let referenceFormat = temporary.path + "/ref.txt"
        try AtomicFile.write("/JPEGImages/2008_000002.jpg /SegmentationClassAug/2008_000002.png\n\n# note\n/JPEGImages/2007_000032.jpg\n",
                             to: referenceFormat)
        let list = try dataset.list(referenceFormat)
        XCTAssertEqual(list.ids, ["2008_000002", "2007_000032"])
        XCTAssertEqual(list.lines, [1, 4])
        try dataset.validate(list)

        let plain = temporary.path + "/plain.txt"
        try AtomicFile.write("2010_000005\n2099_999999\n", to: plain)
        XCTAssertThrowsError(try dataset.validate(try dataset.list(plain))) { error in
            XCTAssertTrue("\(error)".contains("plain.txt:2"), "\(error)")
            XCTAssertTrue("\(error)".contains("2099_999999"), "\(error)")
        }
        XCTAssertThrowsError(try dataset.list(temporary.path + "/missing.txt")) { XCTAssertTrue("\($0)".contains("missing.txt")) }
        XCTAssertThrowsError(try VOCDataset(root: temporary.path + "/nowhere")) { XCTAssertTrue("\($0)".contains("--voc-root")) }
    }

    func testLabelsFromAnnotationsWithMaskFallbackAndCache() throws {
        let ids = voc.images.map(\.id)
        var warnings: [String] = []
        let cache = temporary.path + "/work/labels.tsv"
        let labels = try ImageLabels.load(dataset: dataset, ids: ids, cache: cache) { warnings.append($0) }
        for image in voc.images {
            XCTAssertEqual(labels.classes[image.id], image.classes.sorted(), image.id)
        }
        // 2008_000008 has no XML: its labels come from its mask, with a warning.
        XCTAssertEqual(labels.fromMasks, ["2008_000008"])
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].contains("2008_000008"))
        XCTAssertEqual(labels.multiHot("2007_000032")?.enumerated().filter { $0.element == 1 }.map(\.offset), [0, 14])

        let text = try String(contentsOfFile: cache, encoding: .utf8)
        XCTAssertTrue(text.contains("2007_000032\taeroplane,person\tannotation"), text)
        XCTAssertTrue(text.contains("2008_000008\thorse,person\tmask"), text)
        let reread = try ImageLabels.load(dataset: dataset, ids: ids, cache: cache) { _ in XCTFail("the cache must be used") }
        XCTAssertEqual(reread.classes, labels.classes)

        try AtomicFile.write("2007_000032\tunicorn\tannotation\n", to: cache)
        XCTAssertThrowsError(try ImageLabels.read(cache)) { XCTAssertTrue("\($0)".contains("labels.tsv:1")) }
    }

    func testAnnotationParsingIgnoresPartNames() {
        let xml = "<annotation><object><name> person </name><part><name>hand</name></part></object><object><name>dog</name><difficult>1</difficult></object></annotation>"
        XCTAssertEqual(ImageLabels.classes(inAnnotation: xml), [11, 14])
    }

    func testUnreadableImageStopsOrIsSkipped() throws {
        let id = "2008_000002"
        let path = dataset.imagePath(id)
        let bytes = try AtomicFile.read(path)
        try AtomicFile.write(Array(bytes.prefix(bytes.count / 3)), to: path)
        let strict = ImageSource(dataset: dataset, skipUnreadable: false)
        XCTAssertThrowsError(try strict.image(id)) { error in
            XCTAssertTrue("\(error)".contains(path), "\(error)")
            XCTAssertTrue("\(error)".contains("--skip-unreadable"), "\(error)")
        }
        let lenient = ImageSource(dataset: dataset, skipUnreadable: true)
        XCTAssertNil(try lenient.image(id))
        XCTAssertNotNil(try lenient.image("2007_000032"))
        XCTAssertEqual(lenient.skippedImages.map(\.id), [id])
    }
}

final class TrainingFeedTests: XCTestCase {
    func testMaskOfTheWrongSizeIsAnErrorNamingTheFile() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-mask")
        defer { temporary.remove() }
        let voc = try TinyVOC.make(in: temporary.path)
        let dataset = try VOCDataset(root: voc.root)
        let image = voc.images[0]
        XCTAssertEqual(try dataset.groundTruth(image.id, width: image.width, height: image.height).width, image.width)
        XCTAssertThrowsError(try dataset.groundTruth(image.id, width: image.width + 1, height: image.height)) { error in
            XCTAssertTrue("\(error)".contains("SegmentationClassAug/\(image.id).png"), "\(error)")
        }
    }

    /// Two ranks' batches together are exactly one rank's batches, tensor for tensor.
    func testShardedBatchesEqualTheSingleRankBatches() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-feed")
        defer { temporary.remove() }
        let voc = try TinyVOC.make(in: temporary.path)
        let dataset = try VOCDataset(root: voc.root)
        let ids = voc.images.map(\.id)
        let source = ImageSource(dataset: dataset, skipUnreadable: false)
        let augmentation = TrainingAugmentation(cropSize: 32, longSide: 30...50)
        let schedule = EpochSchedule(count: ids.count, batchSize: 2, seed: 9)
        func batches(rank: Int, size: Int) throws -> [TrainingBatch] {
            let loader = TrainingBatches.loader(ids: ids, source: source, augmentation: augmentation, schedule: schedule,
                                                epoch: 1, rank: rank, size: size, decodeThreads: 2)
            var out: [TrainingBatch] = []
            while let batch = try loader.next() { out.append(batch) }
            return out
        }
        let whole = try batches(rank: 0, size: 1)
        XCTAssertEqual(whole.count, 3)
        XCTAssertEqual(Set(whole.flatMap(\.items)).count, 6, "an epoch visits every image once")
        let first = try batches(rank: 0, size: 2), second = try batches(rank: 1, size: 2)
        for b in 0..<whole.count {
            XCTAssertEqual(first[b].samples + second[b].samples, whole[b].samples)
            XCTAssertEqual(first[b].images + second[b].images, whole[b].images)
        }
    }
}
