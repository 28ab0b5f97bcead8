import Data
import Formats
import Foundation
import TestSupport
import XCTest

final class SyntheticVOCTests: XCTestCase {
    func testTheDemoDatasetIsAValidVOCFolder() throws {
        let temporary = try TemporaryDirectory(prefix: "sccam-synthetic")
        defer { temporary.remove() }
        let synthetic = try SyntheticVOC.make(at: temporary.path + "/VOC2012", count: 30, width: 64, height: 48, seed: 5)
        let dataset = try VOCDataset(root: synthetic.root)
        let train = try dataset.list("train"), val = try dataset.list("val")
        XCTAssertEqual(train.ids.count + val.ids.count, 30)
        XCTAssertTrue(Set(train.ids).isDisjoint(with: val.ids))
        XCTAssertEqual(try dataset.list("train_aug").ids, train.ids.sorted())
        let labels = try ImageLabels.load(dataset: dataset, ids: synthetic.images.map(\.id), cache: nil) { _ in XCTFail("annotations exist") }
        for image in synthetic.images {
            XCTAssertEqual(labels.classes[image.id], image.classes, image.id)
            let mask = try dataset.groundTruth(image.id, width: 64, height: 48)
            let present = Set(mask.indices).subtracting([0, 255])
            XCTAssertEqual(present, Set(image.classes.map { UInt8($0 + 1) }), "\(image.id): every object is in the mask")
        }
        XCTAssertTrue(synthetic.images.contains { $0.objects.count == 2 }, "some images hold two objects")
        let subtypes = Set(synthetic.images.flatMap { $0.objects.map { "\($0.parent)-\($0.subtype)" } })
        XCTAssertGreaterThan(subtypes.count, 5, "the sub-types vary")
        // The same seed writes the same files.
        let again = try SyntheticVOC.make(at: temporary.path + "/again", count: 30, width: 64, height: 48, seed: 5)
        XCTAssertEqual(try AtomicFile.read("\(again.root)/JPEGImages/2099_000003.jpg"),
                       try AtomicFile.read("\(synthetic.root)/JPEGImages/2099_000003.jpg"))
    }
}
