/// A reader of the few Caffe `NetParameter` fields a `.caffemodel` needs for
/// DeepLab's initial weights (deeplab-v2.md 2.5): the new-style `layer` list
/// (field 100) with each layer's name, type, blobs (packed or unpacked float
/// data, the shape for checks) and the convolution, BatchNorm and pooling
/// parameters that are checked. The protobuf wire format is decoded by hand:
/// no protobuf compiler, unknown fields skipped by their wire type.
public enum CaffeModel {
    public struct Blob: Sendable, Equatable {
        public var data: [Float] = []
        /// BlobShape.dim, or the legacy num/channels/height/width when present.
        public var shape: [Int] = []
    }

    public struct ConvolutionParameters: Sendable, Equatable {
        public var kernel: [Int] = [], stride: [Int] = [], pad: [Int] = [], dilation: [Int] = []
        public var biasTerm = true
    }

    public struct Layer: Sendable, Equatable {
        public var name = ""
        public var type = ""
        public var blobs: [Blob] = []
        public var convolution: ConvolutionParameters?
        /// BatchNorm's eps (default 1e-5) and moving_average_fraction (default 0.999).
        public var batchNormEpsilon: Float?
        public var movingAverageFraction: Float?
        /// Pooling's kernel, stride and pad.
        public var pooling: (kernel: Int, stride: Int, pad: Int)?

        public static func == (a: Layer, b: Layer) -> Bool {
            a.name == b.name && a.type == b.type && a.blobs == b.blobs && a.convolution == b.convolution
                && a.batchNormEpsilon == b.batchNormEpsilon && a.movingAverageFraction == b.movingAverageFraction
                && a.pooling?.kernel == b.pooling?.kernel && a.pooling?.stride == b.pooling?.stride && a.pooling?.pad == b.pooling?.pad
        }
    }

    /// Every layer of the `layer` list, in file order.
    public static func decode(_ bytes: [UInt8], path: String) throws -> [Layer] {
        var layers: [Layer] = []
        var reader = WireReader(bytes: bytes[...], path: path, message: "NetParameter")
        while let (field, value) = try reader.next() {
            if field == 100, case .bytes(let body) = value { layers.append(try layer(body, path: path)) }
        }
        guard !layers.isEmpty else {
            throw FormatError(path: path, "holds no Caffe layers (field 100): not a .caffemodel, or an old V1 model (layers, field 2), which the reference's convert.py does not read either")
        }
        return layers
    }

    public static func read(_ path: String) throws -> [Layer] { try decode(try AtomicFile.read(path), path: path) }

    static func layer(_ bytes: ArraySlice<UInt8>, path: String) throws -> Layer {
        var layer = Layer()
        var reader = WireReader(bytes: bytes, path: path, message: "LayerParameter")
        while let (field, value) = try reader.next() {
            switch (field, value) {
            case (1, .bytes(let s)): layer.name = String(decoding: s, as: UTF8.self)
            case (2, .bytes(let s)): layer.type = String(decoding: s, as: UTF8.self)
            case (7, .bytes(let b)): layer.blobs.append(try blob(b, path: path, layer: layer.name))
            case (106, .bytes(let b)): layer.convolution = try convolution(b, path: path)
            case (139, .bytes(let b)):
                var r = WireReader(bytes: b, path: path, message: "BatchNormParameter")
                layer.batchNormEpsilon = 1e-5
                layer.movingAverageFraction = 0.999
                while let (f, v) = try r.next() {
                    if f == 2, case .fixed32(let x) = v { layer.movingAverageFraction = Float(bitPattern: x) }
                    if f == 3, case .fixed32(let x) = v { layer.batchNormEpsilon = Float(bitPattern: x) }
                }
            case (121, .bytes(let b)):
                var r = WireReader(bytes: b, path: path, message: "PoolingParameter")
                var pooling = (kernel: 0, stride: 1, pad: 0)
                while let (f, v) = try r.next() {
                    guard case .varint(let x) = v else { continue }
                    if f == 2 { pooling.kernel = Int(x) }
                    if f == 3 { pooling.stride = Int(x) }
                    if f == 4 { pooling.pad = Int(x) }
                }
                layer.pooling = pooling
            default: break
            }
        }
        return layer
    }

    static func blob(_ bytes: ArraySlice<UInt8>, path: String, layer: String) throws -> Blob {
        var blob = Blob()
        var legacy = [0, 0, 0, 0]
        var reader = WireReader(bytes: bytes, path: path, message: "BlobProto of layer \(layer)")
        while let (field, value) = try reader.next() {
            switch (field, value) {
            case (5, .bytes(let packed)):
                guard packed.count % 4 == 0 else { throw FormatError(path: path, "layer \(layer): packed blob data of \(packed.count) bytes, not a whole number of floats") }
                blob.data.reserveCapacity(blob.data.count + packed.count / 4)
                var i = packed.startIndex
                while i < packed.endIndex {
                    let bits = UInt32(packed[i]) | UInt32(packed[i + 1]) << 8 | UInt32(packed[i + 2]) << 16 | UInt32(packed[i + 3]) << 24
                    blob.data.append(Float(bitPattern: bits))
                    i += 4
                }
            case (5, .fixed32(let bits)): blob.data.append(Float(bitPattern: bits))
            case (7, .bytes(let shape)):
                var r = WireReader(bytes: shape, path: path, message: "BlobShape of layer \(layer)")
                while let (f, v) = try r.next() {
                    guard f == 1 else { continue }
                    switch v {
                    case .varint(let d): blob.shape.append(Int(d))
                    case .bytes(let dims):
                        var p = WireReader(bytes: dims, path: path, message: "BlobShape.dim of layer \(layer)")
                        while let d = try p.varint() { blob.shape.append(Int(d)) }
                    default: break
                    }
                }
            case (1...4, .varint(let x)): legacy[field - 1] = Int(x)
            default: break
            }
        }
        if blob.shape.isEmpty && legacy.contains(where: { $0 > 0 }) { blob.shape = legacy }
        return blob
    }

    static func convolution(_ bytes: ArraySlice<UInt8>, path: String) throws -> ConvolutionParameters {
        var parameters = ConvolutionParameters()
        var reader = WireReader(bytes: bytes, path: path, message: "ConvolutionParameter")
        while let (field, value) = try reader.next() {
            var values: [Int] = []
            switch value {
            case .varint(let x): values = [Int(x)]
            case .bytes(let packed):
                var p = WireReader(bytes: packed, path: path, message: "ConvolutionParameter")
                while let x = try p.varint() { values.append(Int(x)) }
            default: continue
            }
            switch field {
            case 2: parameters.biasTerm = values.first != 0
            case 3: parameters.pad += values
            case 4: parameters.kernel += values
            case 6: parameters.stride += values
            case 18: parameters.dilation += values
            default: break
            }
        }
        return parameters
    }
}

/// Protobuf's wire format: (field << 3 | type) keys, then a varint, a fixed
/// 64- or 32-bit value, or a length-delimited body.
struct WireReader {
    enum Value { case varint(UInt64), fixed64(UInt64), bytes(ArraySlice<UInt8>), fixed32(UInt32) }
    var bytes: ArraySlice<UInt8>
    let path: String
    let message: String

    init(bytes: ArraySlice<UInt8>, path: String, message: String) {
        self.bytes = bytes
        self.path = path
        self.message = message
    }

    func truncated() -> FormatError { FormatError(path: path, "is truncated or malformed (inside a \(message)); the download may be incomplete") }

    mutating func varint() throws -> UInt64? {
        guard !bytes.isEmpty else { return nil }
        var value: UInt64 = 0, shift: UInt64 = 0
        while true {
            guard let byte = bytes.popFirst(), shift < 64 else { throw truncated() }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
    }

    mutating func next() throws -> (field: Int, value: Value)? {
        guard let key = try varint() else { return nil }
        let field = Int(key >> 3)
        guard field > 0 else { throw truncated() }
        switch key & 7 {
        case 0:
            guard let value = try varint() else { throw truncated() }
            return (field, .varint(value))
        case 1:
            guard bytes.count >= 8 else { throw truncated() }
            let value = bytes.prefix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            bytes = bytes.dropFirst(8)
            return (field, .fixed64(value))
        case 2:
            guard let length = try varint(), length <= UInt64(bytes.count) else { throw truncated() }
            let body = bytes.prefix(Int(length))
            bytes = bytes.dropFirst(Int(length))
            return (field, .bytes(body))
        case 5:
            guard bytes.count >= 4 else { throw truncated() }
            let value = bytes.prefix(4).reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            bytes = bytes.dropFirst(4)
            return (field, .fixed32(value))
        default:
            throw FormatError(path: path, "has protobuf wire type \(key & 7) (inside a \(message)): not a .caffemodel, or corrupt")
        }
    }
}
