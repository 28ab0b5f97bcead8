#!/usr/bin/env bash
# Reading COCO's instances file: sccam against pycocotools' COCO(file), interleaved, with
# each one's peak memory (GNU time's maximum resident set). Then prepare-coco on the whole
# file (82,783 masks). Usage: bench/coco-parse.sh SCCAM ROOT (ROOT/annotations/instances_train2014.json).
set -euo pipefail
sccam=$1 root=$2 file=$2/annotations/instances_train2014.json
ls -la "$file"
for round in 1 2; do
    echo "== round $round: pycocotools"
    /usr/bin/time -f "pycocotools: %e s wall, peak %M KB" python3 -c "
import time; from pycocotools.coco import COCO
t = time.time(); c = COCO('$file'); print('COCO(file): %.2f s, %d images, %d annotations' % (time.time() - t, len(c.imgs), len(c.anns)))"
    echo "== round $round: sccam"
    /usr/bin/time -f "sccam: %e s wall, peak %M KB" "$sccam" bench coco --annotations "$file" --masks 1000 --threads 1
done
echo "== prepare-coco on the whole file"
rm -rf "$root/SegmentationClass" "$root/ImageSets" "$root/ImageLabels"
/usr/bin/time -f "prepare-coco: %e s wall, peak %M KB" "$sccam" prepare-coco --coco-root "$root" --split train2014 --threads 1 | tail -2
