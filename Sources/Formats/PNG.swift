import CPNG
import Foundation

/// PNG through libpng's simplified API (no longjmp across Swift frames).
public enum PNG {
    // MARK: Reading

    /// Any PNG as 8-bit RGB (palette expanded, grey replicated, alpha dropped
    /// onto black).
    public static func decodeRGB(_ bytes: [UInt8], path: String = "<memory>") throws -> RGBImage {
        try withReader(bytes, path: path) { image in
            image.format = sccam_png_format_rgb()
            var pixels = [UInt8](repeating: 0, count: sccam_png_image_buffer_size(&image))
            try pixels.withUnsafeMutableBytes { buffer in
                try finishRead(&image, buffer: buffer.baseAddress!, colormap: nil, path: path)
            }
            return RGBImage(width: Int(image.width), height: Int(image.height), pixels: pixels)
        }
    }

    /// A palette or 8-bit grey PNG as its raw indices (never as luminance:
    /// class ids of a VOC mask are the palette indices, not the colours).
    public static func decodeIndexed(_ bytes: [UInt8], path: String = "<memory>") throws -> IndexedImage {
        try withReader(bytes, path: path) { image in
            let fileFormat = image.format
            let isPalette = fileFormat & sccam_png_format_flag_colormap() != 0
            let isColor = fileFormat & sccam_png_format_flag_color() != 0
            let hasAlpha = fileFormat & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0
            let isLinear = fileFormat & UInt32(PNG_FORMAT_FLAG_LINEAR) != 0
            guard isPalette || (!isColor && !hasAlpha && !isLinear) else {
                throw FormatError(path: path, """
                    is not an index image (it is \(isColor ? "true-colour RGB" : "grey with alpha or 16-bit")); \
                    segmentation masks must be palette PNGs (VOC SegmentationClass) or 8-bit grey PNGs of class ids
                    """)
            }
            // Reading into a colour-mapped buffer keeps a palette image's indices
            // exactly, and maps an 8-bit grey image onto a 256-entry ramp whose
            // indices are the raw grey values.
            image.format = sccam_png_format_rgb_colormap()
            var indices = [UInt8](repeating: 0, count: sccam_png_image_buffer_size(&image))
            // libpng may build a colour map of up to 256 entries.
            var colormap = [UInt8](repeating: 0, count: 256 * 3)
            try indices.withUnsafeMutableBytes { buffer in
                try colormap.withUnsafeMutableBytes { map in
                    try finishRead(&image, buffer: buffer.baseAddress!, colormap: map.baseAddress!, path: path)
                }
            }
            return IndexedImage(width: Int(image.width), height: Int(image.height), indices: indices,
                                palette: isPalette ? Array(colormap.prefix(Int(image.colormap_entries) * 3)) : nil)
        }
    }

    public static func readRGB(_ path: String) throws -> RGBImage {
        try decodeRGB(try AtomicFile.read(path), path: path)
    }

    public static func readIndexed(_ path: String) throws -> IndexedImage {
        try decodeIndexed(try AtomicFile.read(path), path: path)
    }

    // MARK: Writing

    public static func encode(_ rgb: RGBImage) throws -> [UInt8] {
        var image = newImage(width: rgb.width, height: rgb.height, format: sccam_png_format_rgb())
        return try rgb.pixels.withUnsafeBytes { try writeToMemory(&image, pixels: $0.baseAddress!, colormap: nil) }
    }

    /// A palette PNG when the image has a palette, else an 8-bit grey PNG.
    public static func encode(_ indexed: IndexedImage) throws -> [UInt8] {
        guard let palette = indexed.palette else {
            var image = newImage(width: indexed.width, height: indexed.height, format: sccam_png_format_gray())
            return try indexed.indices.withUnsafeBytes {
                try writeToMemory(&image, pixels: $0.baseAddress!, colormap: nil)
            }
        }
        let entries = palette.count / 3
        if let largest = indexed.indices.max(), Int(largest) >= entries {
            throw FormatError(path: "<png encoder>", "index \(largest) is outside the \(entries)-entry palette")
        }
        var image = newImage(width: indexed.width, height: indexed.height, format: sccam_png_format_rgb_colormap())
        image.colormap_entries = UInt32(entries)
        return try indexed.indices.withUnsafeBytes { pixels in
            try palette.withUnsafeBytes { map in
                try writeToMemory(&image, pixels: pixels.baseAddress!, colormap: map.baseAddress!)
            }
        }
    }

    public static func write(_ rgb: RGBImage, to path: String) throws {
        try AtomicFile.write(try encode(rgb), to: path)
    }

    public static func write(_ indexed: IndexedImage, to path: String) throws {
        try AtomicFile.write(try encode(indexed), to: path)
    }

    // MARK: libpng plumbing

    private static func newImage(width: Int, height: Int, format: UInt32) -> png_image {
        var image = png_image()
        image.version = sccam_png_image_version()
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = format
        return image
    }

    /// Runs `body` on a reader opened on `bytes`; the reader points into the
    /// bytes, so it must not outlive this scope.
    private static func withReader<Result>(_ bytes: [UInt8], path: String,
                                           _ body: (inout png_image) throws -> Result) throws -> Result {
        try bytes.withUnsafeBytes { raw in
            var image = png_image()
            image.version = sccam_png_image_version()
            defer { png_image_free(&image) }
            guard png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count) != 0 else {
                throw FormatError(path: path, "not a readable PNG (\(message(of: &image))); re-export or re-download the file")
            }
            let width = Int(image.width), height = Int(image.height)
            try DecodeLimits.checkImage(width: width, height: height, path: path)
            // Each row holds at least a filter byte and one bit per pixel.
            guard height * (1 + (width + 7) / 8) <= DecodeLimits.deflateExpansion * raw.count else {
                throw FormatError(path: path, "PNG header claims \(width)x\(height) pixels, more than its \(raw.count) bytes can hold (corrupt or truncated file)")
            }
            return try body(&image)
        }
    }

    private static func finishRead(_ image: inout png_image, buffer: UnsafeMutableRawPointer,
                                   colormap: UnsafeMutableRawPointer?, path: String) throws {
        guard png_image_finish_read(&image, nil, buffer, 0, colormap) != 0, sccam_png_image_failed(&image) == 0 else {
            throw FormatError(path: path, "corrupt or truncated PNG (\(message(of: &image))); re-export or re-download the file")
        }
    }

    private static func writeToMemory(_ image: inout png_image, pixels: UnsafeRawPointer,
                                      colormap: UnsafeRawPointer?) throws -> [UInt8] {
        var size = 0
        guard png_image_write_to_memory(&image, nil, &size, 0, pixels, 0, colormap) != 0 else {
            throw FormatError(path: "<png encoder>", message(of: &image))
        }
        var output = [UInt8](repeating: 0, count: size)
        let ok = output.withUnsafeMutableBytes {
            png_image_write_to_memory(&image, $0.baseAddress, &size, 0, pixels, 0, colormap)
        }
        guard ok != 0 else { throw FormatError(path: "<png encoder>", message(of: &image)) }
        return Array(output.prefix(size))
    }

    private static func message(of image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return bytes.isEmpty ? "unknown libpng error" : String(decoding: bytes, as: UTF8.self)
        }
    }
}
