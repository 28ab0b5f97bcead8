import ArgumentParser
import Pipeline

struct PrepareCOCO: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare-coco",
        abstract: "Make COCO 2014's class-id masks, image list and image labels from its instance annotations.",
        discussion: """
            Reads ROOT/annotations/instances_<split>.json (the full train2014 file is 333 MB and 604,907 \
            annotations: it is mapped, not loaded) and writes ROOT/SegmentationClass/<split>/COCO_<split>_%012d.png \
            (grey, 0 background, 1-80 the categories by ascending COCO id), ROOT/ImageSets/<split>.txt (the images \
            that have an annotation, by ascending id: 82,081 for train2014, 40,137 for val2014) and \
            ROOT/ImageLabels/<split>.tsv (each name, a tab, its labels 1-80 ascending; crowd annotations count), \
            and ROOT/ImageLabels/classes.tsv. Masks are drawn exactly as pycocotools draws them (polygons on its \
            1/5-pixel grid, united per annotation; RLE plain or compressed) and painted by --convention: coco2voc \
            (every annotation, crowd included, smallest area on top; no mask for an image without annotations: \
            the masks behind most reported numbers) or recam (non-crowd only, later annotations on top, a mask for \
            every image). Ranks split the images; finished masks are skipped on a rerun; every file is written \
            atomically.
            """)

    @OptionGroup var threads: ThreadOptions
    @Option(help: "The COCO folder: annotations/, train2014/, val2014/.") var cocoRoot: String
    @Option(help: "train2014 or val2014 (any split with an instances file).") var split = PrepareCOCOStage.Settings(root: "").split
    @Option(help: "How instances become one class per pixel: coco2voc or recam.") var convention = PrepareCOCOStage.Settings(root: "").convention
    @Option(help: "The instances file when not ROOT/annotations/instances_<split>.json.") var annotations: String?

    func run() throws {
        var settings = PrepareCOCOStage.Settings(root: cocoRoot)
        (settings.split, settings.convention, settings.annotations) = (split, convention, annotations)
        let job = Job.start(threads)
        job.run { job.log("\(try PrepareCOCOStage.run(settings, in: try job.context(work: cocoRoot)))") }
    }
}

extension PrepareCOCOStage.Convention: ExpressibleByArgument {}
