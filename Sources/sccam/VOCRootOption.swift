import ArgumentParser

/// The dataset folder, declared once for every command that reads VOC.
struct VOCRootOption: ParsableArguments {
    @Option(name: .customLong("voc-root"), help: ArgumentHelp(
        "The VOC 2012 folder (VOCdevkit/VOC2012).",
        discussion: "It holds JPEGImages/, Annotations/, ImageSets/Segmentation/, SegmentationClass/ and, for train_aug, SegmentationClassAug/."))
    var root: String
}
