import CJPEG
import Foundation

/// JPEG through TurboJPEG. Decoding uses the accurate integer IDCT and fancy
/// upsampling, libjpeg's defaults, which is what PIL uses on VOC's images.
public enum JPEG {
    public static func decode(_ bytes: [UInt8], path: String = "<memory>") throws -> RGBImage {
        guard let handle = tjInitDecompress() else {
            throw FormatError(path: path, "cannot create a JPEG decoder: \(String(cString: tjGetErrorStr2(nil)))")
        }
        defer { tjDestroy(handle) }
        return try bytes.withUnsafeBufferPointer { source in
            let size = UInt(source.count)
            var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
            guard tjDecompressHeader3(handle, source.baseAddress, size, &width, &height, &subsampling, &colorspace) == 0 else {
                throw FormatError(path: path, "not a readable JPEG (\(errorText(handle))); re-download the image")
            }
            try DecodeLimits.checkImage(width: Int(width), height: Int(height), path: path)
            var pixels = [UInt8](repeating: 0, count: Int(width) * Int(height) * 3)
            let status = pixels.withUnsafeMutableBufferPointer { target in
                tjDecompress2(handle, source.baseAddress, size, target.baseAddress, width, 0, height,
                              Int32(TJPF_RGB.rawValue), TJFLAG_ACCURATEDCT)
            }
            if status != 0 {
                let message = errorText(handle)
                // Warnings (e.g. extraneous bytes) still give the full image, as
                // PIL accepts them; a premature end means missing rows, which PIL
                // refuses as a truncated image, and so do we.
                let fatal = tjGetErrorCode(handle) == Int32(TJERR_FATAL.rawValue) || message.contains("Premature end")
                if fatal {
                    throw FormatError(path: path, "corrupt or truncated JPEG (\(message)); re-download the image")
                }
            }
            return RGBImage(width: Int(width), height: Int(height), pixels: pixels)
        }
    }

    public static func read(_ path: String) throws -> RGBImage {
        try decode(try AtomicFile.read(path), path: path)
    }

    /// Encodes with 4:4:4 chroma (no colour subsampling): fixtures and demo
    /// images keep sharp colour edges.
    public static func encode(_ image: RGBImage, quality: Int = 95) throws -> [UInt8] {
        guard let handle = tjInitCompress() else {
            throw FormatError(path: "<jpeg encoder>", "cannot create a JPEG encoder")
        }
        defer { tjDestroy(handle) }
        var output: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        let status = image.pixels.withUnsafeBufferPointer { source in
            tjCompress2(handle, source.baseAddress, Int32(image.width), 0, Int32(image.height),
                        Int32(TJPF_RGB.rawValue), &output, &size, Int32(TJSAMP_444.rawValue),
                        Int32(max(1, min(100, quality))), TJFLAG_ACCURATEDCT)
        }
        defer { if let output { tjFree(output) } }
        guard status == 0, let output else {
            throw FormatError(path: "<jpeg encoder>", errorText(handle))
        }
        return Array(UnsafeBufferPointer(start: output, count: Int(size)))
    }

    public static func write(_ image: RGBImage, to path: String, quality: Int = 95) throws {
        try AtomicFile.write(try encode(image, quality: quality), to: path)
    }

    private static func errorText(_ handle: tjhandle) -> String {
        String(cString: tjGetErrorStr2(handle))
    }
}
