"""Makes the checkpoints that `WeightFileTests` reads, with PyTorch's own
`torch.save` on real `nn.Module`s (not hand-built dicts), so the files carry
what real checkpoints carry: the state dict's `_metadata` attribute (a BUILD
opcode on the OrderedDict), `num_batches_tracked`, Parameter rebuilds, storages
saved on `cuda:0`, and training checkpoints that wrap the state dict.

Made with torch 2.13.0+cpu (pip install "torch==2.13.0+cpu"), Python 3.11:

    cd Tests/NetworkTests/Golden && python3 make_module_checkpoints.py

The tests never need PyTorch: they recompute the weights from `value()` below,
which `ModuleCheckpointTests.expectedValue` mirrors in Swift. Every value is a
small integer over a power of two, so float32 holds it exactly.
"""
import torch
import torch.nn as nn
import torch.serialization


def value(tensor_index, element_index, kind):
    n = (element_index * 37 + tensor_index * 101) % 251 - 125
    if kind == "running_var":
        return 0.5 + ((element_index * 37 + tensor_index) % 64) / 64.0
    if kind == "bn":  # weight, bias, running_mean
        return n / 1024.0
    return n / 8192.0  # conv weights


class ResBlock(nn.Module):
    """The reference's pre-activation basic block (resnet38d.ResBlock)."""

    def __init__(self, cin, cmid, cout, stride=1, first_dilation=None, dilation=1):
        super().__init__()
        self.same_shape = cin == cout and stride == 1
        first_dilation = dilation if first_dilation is None else first_dilation
        self.bn_branch2a = nn.BatchNorm2d(cin)
        self.conv_branch2a = nn.Conv2d(cin, cmid, 3, stride, padding=first_dilation, dilation=first_dilation, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(cmid)
        self.conv_branch2b1 = nn.Conv2d(cmid, cout, 3, padding=dilation, dilation=dilation, bias=False)
        if not self.same_shape:
            self.conv_branch1 = nn.Conv2d(cin, cout, 1, stride, bias=False)


class ResBlockBottleneck(nn.Module):
    """The reference's bottleneck block (resnet38d.ResBlock_bot)."""

    def __init__(self, cin, cout, stride=1, dilation=1, dropout=0.0):
        super().__init__()
        self.bn_branch2a = nn.BatchNorm2d(cin)
        self.conv_branch2a = nn.Conv2d(cin, cout // 4, 1, stride, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(cout // 4)
        self.dropout_2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = nn.Conv2d(cout // 4, cout // 2, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn_branch2b2 = nn.BatchNorm2d(cout // 2)
        self.dropout_2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = nn.Conv2d(cout // 2, cout, 1, bias=False)
        self.conv_branch1 = nn.Conv2d(cin, cout, 1, stride, bias=False)


class SCCAMNet(nn.Module):
    """ResNet-38 (resnet38d.Net) with SC-CAM's round >= 1 heads, channels / divisor."""

    def __init__(self, divisor=16, k=10):
        super().__init__()
        c = lambda n: n // divisor
        self.conv1a = nn.Conv2d(3, c(64), 3, padding=1, bias=False)
        self.b2 = ResBlock(c(64), c(128), c(128), stride=2)
        self.b2_1 = ResBlock(c(128), c(128), c(128))
        self.b2_2 = ResBlock(c(128), c(128), c(128))
        self.b3 = ResBlock(c(128), c(256), c(256), stride=2)
        self.b3_1 = ResBlock(c(256), c(256), c(256))
        self.b3_2 = ResBlock(c(256), c(256), c(256))
        self.b4 = ResBlock(c(256), c(512), c(512), stride=2)
        for i in range(1, 6):
            setattr(self, f"b4_{i}", ResBlock(c(512), c(512), c(512)))
        self.b5 = ResBlock(c(512), c(512), c(1024), stride=1, first_dilation=1, dilation=2)
        self.b5_1 = ResBlock(c(1024), c(512), c(1024), dilation=2)
        self.b5_2 = ResBlock(c(1024), c(512), c(1024), dilation=2)
        self.b6 = ResBlockBottleneck(c(1024), c(2048), dilation=4, dropout=0.3)
        self.b7 = ResBlockBottleneck(c(2048), c(4096), dilation=4, dropout=0.5)
        self.bn7 = nn.BatchNorm2d(c(4096))
        self.dropout7 = nn.Dropout2d(0.5)
        self.fc8_20 = nn.Conv2d(c(4096), 20, 1, bias=False)
        self.fc8_200 = nn.Conv2d(c(4096), 20 * k, 1, bias=False)


def fill(module):
    """Deterministic values, and num_batches_tracked = its BN's index (int64)."""
    with torch.no_grad():
        for t, (name, tensor) in enumerate(module.state_dict().items()):
            leaf = name.rsplit(".", 1)[1]
            if leaf == "num_batches_tracked":
                tensor.fill_(t)
                continue
            kind = "running_var" if leaf == "running_var" else "bn" if tensor.dim() == 1 else "conv"
            flat = torch.tensor([value(t, i, kind) for i in range(tensor.numel())], dtype=torch.float32)
            tensor.copy_(flat.view_as(tensor))


class Small(nn.Module):
    """A conv + BN + classifier module for the wrapped checkpoints."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=True)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)


def main():
    torch.manual_seed(0)
    net = SCCAMNet()
    fill(net)
    torch.save(net.state_dict(), "r38w16_module.pth")
    torch.save(net.state_dict(), "r38w16_module_legacy.pth", _use_new_zipfile_serialization=False)

    small = Small()
    fill(small)
    # A training checkpoint: the state dict beside an epoch, a score and an
    # SGD optimiser's state (momentum buffers are tensors too, and skipped).
    optimizer = torch.optim.SGD(small.parameters(), lr=0.1, momentum=0.9)
    small.train()
    small.fc(small.bn(small.conv(torch.ones(1, 3, 5, 5))).mean((2, 3))).sum().backward()
    optimizer.step()
    fill(small)  # the saved weights are the known values again
    checkpoint = {"epoch": 7, "state_dict": small.state_dict(), "optimizer": optimizer.state_dict(), "best_miou": 0.625}
    torch.save(checkpoint, "small_checkpoint.pth")
    torch.save({"net": small.state_dict(), "iteration": 1200}, "small_net_legacy.pth", _use_new_zipfile_serialization=False)

    # Parameters (not detached tensors) on a GPU: torch.save records the
    # storage location; without a GPU here, tag them as cuda:0 the way
    # torch.save does for tensors that live there.
    original = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:0"
    try:
        parameters = dict(small.named_parameters())
        torch.save(parameters, "small_cuda_parameters.pth")
        torch.save(parameters, "small_cuda_parameters_legacy.pth", _use_new_zipfile_serialization=False)
    finally:
        torch.serialization.location_tag = original


if __name__ == "__main__":
    main()
