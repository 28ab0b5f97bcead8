"""Writes dlv2w16.caffemodel: the width-16 DeepLab-v2 of dlv2w16.safetensors in the
Caffe wire format the DeepLab authors' init.caffemodel uses (deeplab-v2.md 2.4-2.5),
so that the native reader is tested on a file made independently of it.

Layers in Caffe's naming (conv1, bn_conv1, scale_conv1, pool1, res2a_branch2a,
bn2a_branch2a, scale2a_branch2a, ..., res4b22_branch2c, fc1_voc12_c0..c3), with
BatchNorm statistics stored times a moving-average factor (third blob), Scale
layers carrying the BN affine, blob-less layers (data, ReLU, Eltwise) mixed in,
weight-shared MSC branches (res075_*, res05_*) that must be skipped, and the blob
data written packed for most layers and unpacked for one.

Usage: python3 make_caffemodel.py   (needs numpy and safetensors)
"""
import struct
import numpy as np
from safetensors.numpy import load_file

FACTOR = 999.0


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def length_delimited(field, body):
    return key(field, 2) + varint(len(body)) + body


def blob(values, shape, packed=True):
    values = np.asarray(values, dtype=np.float32).ravel()
    body = length_delimited(7, length_delimited(1, b"".join(varint(d) for d in shape)))
    if packed:
        body += length_delimited(5, values.tobytes())
    else:
        body += b"".join(key(5, 5) + struct.pack("<f", v) for v in values)
    return body


def layer(name, kind, blobs=(), extra=b""):
    body = length_delimited(1, name.encode()) + length_delimited(2, kind.encode())
    for b in blobs:
        body += length_delimited(7, b)
    return length_delimited(100, body + extra)


def conv_param(kernel, stride=None, pad=None, dilation=None, bias=False):
    body = key(4, 0) + varint(kernel)
    if not bias:
        body += key(2, 0) + varint(0)
    if stride is not None:
        body += key(6, 0) + varint(stride)
    if pad is not None:
        body += key(3, 0) + varint(pad)
    if dilation is not None:
        body += key(18, 0) + varint(dilation)
    return length_delimited(106, body)


def bn_param():
    return length_delimited(139, key(1, 0) + varint(1) + key(2, 5) + struct.pack("<f", 0.999) + key(3, 5) + struct.pack("<f", 1e-5))


w = load_file("dlv2w16.safetensors")
out = bytearray()
out += layer("data", "Input")


def conv_bn(caffe_conv, caffe_bn, caffe_scale, key_prefix, kernel, stride=None, pad=None, dilation=None, packed=True):
    global out
    weight = w[key_prefix + ".conv.weight"]
    out += layer(caffe_conv, "Convolution", [blob(weight, weight.shape, packed)], conv_param(kernel, stride, pad, dilation))
    mean, var = w[key_prefix + ".bn.running_mean"], w[key_prefix + ".bn.running_var"]
    out += layer(caffe_bn, "BatchNorm", [blob(mean.astype(np.float64) * FACTOR, mean.shape), blob(var.astype(np.float64) * FACTOR, var.shape),
                                         blob([FACTOR], [1])], bn_param())
    out += layer(caffe_scale, "Scale", [blob(w[key_prefix + ".bn.weight"], mean.shape), blob(w[key_prefix + ".bn.bias"], mean.shape)])
    out += layer(caffe_conv + "_relu", "ReLU")


conv_bn("conv1", "bn_conv1", "scale_conv1", "base.layer1.conv1", 7, 2, 3, packed=False)
out += layer("pool1", "Pooling", extra=length_delimited(121, key(1, 0) + varint(0) + key(2, 0) + varint(3) + key(3, 0) + varint(2) + key(4, 0) + varint(1)))
for stage, blocks, dilation in [(2, 3, 1), (3, 4, 1), (4, 23, 2), (5, 3, 4)]:
    for b in range(1, blocks + 1):
        suffix = "abc"[b - 1] if blocks == 3 else ("a" if b == 1 else "b%d" % (b - 1))
        name = "%d%s" % (stage, suffix)
        prefix = "base.layer%d.block%d" % (stage, b)
        stride = 2 if (stage == 3 and b == 1) else None
        if b == 1:
            conv_bn("res%s_branch1" % name, "bn%s_branch1" % name, "scale%s_branch1" % name, prefix + ".shortcut", 1, stride)
        conv_bn("res%s_branch2a" % name, "bn%s_branch2a" % name, "scale%s_branch2a" % name, prefix + ".reduce", 1, stride)
        conv_bn("res%s_branch2b" % name, "bn%s_branch2b" % name, "scale%s_branch2b" % name, prefix + ".conv3x3", 3, None,
                dilation, dilation if dilation > 1 else None)
        conv_bn("res%s_branch2c" % name, "bn%s_branch2c" % name, "scale%s_branch2c" % name, prefix + ".increase", 1)
        out += layer("res%s" % name, "Eltwise")
        if stage == 2 and b == 1:
            # A weight-shared MSC branch layer: convert.py skips these names.
            junk = np.full(w[prefix + ".reduce.conv.weight"].shape, 7.0, np.float32)
            out += layer("res075_res%s_branch2a" % name, "Convolution", [blob(junk, junk.shape)], conv_param(1))
            out += layer("res05_res%s_branch2a" % name, "Convolution", [blob(junk, junk.shape)], conv_param(1))
for i, rate in enumerate([6, 12, 18, 24]):
    weight, bias = w["base.aspp.c%d.weight" % i], w["base.aspp.c%d.bias" % i]
    out += layer("fc1_voc12_c%d" % i, "Convolution", [blob(weight, weight.shape), blob(bias, bias.shape)],
                 conv_param(3, None, rate, rate, bias=True))
open("dlv2w16.caffemodel", "wb").write(bytes(out))
print("dlv2w16.caffemodel: %d bytes" % len(out))
