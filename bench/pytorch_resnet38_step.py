"""PyTorch's CPU training step for the network `sccam bench network` times.

Only for measuring: neither the tests nor sccam need PyTorch. Install it with
`pip install torch==2.13.0+cpu` (the CPU-only wheel on PyPI). The model is psa's
ResNet-38 (resnet38d) with SC-CAM's two heads, built the same way as ours:
conv1a, b2, b2_1 and b2_2 frozen (no gradient reaches below b3), every
BatchNorm frozen (eval mode), dropout 0.3 / 0.5 in b6 / b7 and 0.5 before the
heads, multilabel soft-margin loss on 20 parents + 5 x on 200 sub-categories.
It times forward + loss + backward (no optimiser step), as ours does, and
prints one JSON line per timed step.

    python3 bench/pytorch_resnet38_step.py --threads 2 --batch 2 --size 224 --iterations 3
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    """psa's ResBlock: pre-activation, two 3x3 convolutions, 1x1 projection."""

    def __init__(self, cin, cmid, cout, stride=1, first_dilation=None, dilation=1):
        super().__init__()
        first_dilation = dilation if first_dilation is None else first_dilation
        self.same_shape = cin == cout and stride == 1
        self.bn_branch2a = nn.BatchNorm2d(cin)
        self.conv_branch2a = nn.Conv2d(cin, cmid, 3, stride, padding=first_dilation, dilation=first_dilation, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(cmid)
        self.conv_branch2b1 = nn.Conv2d(cmid, cout, 3, padding=dilation, dilation=dilation, bias=False)
        if not self.same_shape:
            self.conv_branch1 = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        branch2 = F.relu(self.bn_branch2a(x))
        branch1 = x if self.same_shape else self.conv_branch1(branch2)
        branch2 = self.conv_branch2a(branch2)
        branch2 = self.conv_branch2b1(F.relu(self.bn_branch2b1(branch2)))
        return branch1 + branch2


class Bottleneck(nn.Module):
    """psa's ResBlock_bot: 1x1 → dilated 3x3 → 1x1 with dropout."""

    def __init__(self, cin, cout, dilation, dropout):
        super().__init__()
        self.bn_branch2a = nn.BatchNorm2d(cin)
        self.conv_branch1 = nn.Conv2d(cin, cout, 1, bias=False)
        self.conv_branch2a = nn.Conv2d(cin, cout // 4, 1, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(cout // 4)
        self.dropout_2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = nn.Conv2d(cout // 4, cout // 2, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn_branch2b2 = nn.BatchNorm2d(cout // 2)
        self.dropout_2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = nn.Conv2d(cout // 2, cout, 1, bias=False)

    def forward(self, x):
        branch2 = F.relu(self.bn_branch2a(x))
        branch1 = self.conv_branch1(branch2)
        branch2 = self.dropout_2b1(F.relu(self.bn_branch2b1(self.conv_branch2a(branch2))))
        branch2 = self.dropout_2b2(F.relu(self.bn_branch2b2(self.conv_branch2b1(branch2))))
        return branch1 + self.conv_branch2b2(branch2)


class SCCAMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1a = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        self.frozen = nn.Sequential(Block(64, 128, 128, stride=2), Block(128, 128, 128), Block(128, 128, 128))
        blocks = [Block(128, 256, 256, stride=2), Block(256, 256, 256), Block(256, 256, 256),
                  Block(256, 512, 512, stride=2)] + [Block(512, 512, 512) for _ in range(5)]
        blocks += [Block(512, 512, 1024, first_dilation=1, dilation=2), Block(1024, 512, 1024, dilation=2),
                   Block(1024, 512, 1024, dilation=2), Bottleneck(1024, 2048, 4, 0.3), Bottleneck(2048, 4096, 4, 0.5)]
        self.trained = nn.Sequential(*blocks)
        self.bn7 = nn.BatchNorm2d(4096)
        self.dropout7 = nn.Dropout2d(0.5)
        self.fc8_20 = nn.Conv2d(4096, 20, 1, bias=False)
        self.fc8_200 = nn.Conv2d(4096, 200, 1, bias=False)
        for module in [self.conv1a, self.frozen]:
            for parameter in module.parameters():
                parameter.requires_grad = False

    def forward(self, x):
        x = self.trained(self.frozen(self.conv1a(x)))
        x = self.dropout7(F.relu(self.bn7(x)))
        pooled = F.adaptive_avg_pool2d(x, 1)
        return self.fc8_20(pooled).flatten(1), self.fc8_200(pooled).flatten(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--iterations", type=int, default=3, help="timed steps after one untimed warm-up")
    parser.add_argument("--channels-last", action="store_true", help="NHWC activations (oneDNN's preferred layout)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = SCCAMNet()
    model.train()
    for module in model.modules():  # frozen BatchNorm, as in psa and SC-CAM
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    labels20 = torch.zeros(args.batch, 20)
    labels200 = torch.zeros(args.batch, 200)
    for n in range(args.batch):
        labels20[n, n % 20] = 1
        labels200[n, (n % 20) * 10] = 1
    macs = 0

    def count(module, inputs, output):
        nonlocal macs
        macs += output.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    for iteration in range(args.iterations + 1):
        start = time.perf_counter()
        logits20, logits200 = model(x)
        loss = F.multilabel_soft_margin_loss(logits20, labels20) + 5 * F.multilabel_soft_margin_loss(logits200, labels200)
        model.zero_grad(set_to_none=False)
        loss.backward()
        seconds = time.perf_counter() - start
        if iteration > 0:
            print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": args.batch,
                              "size": args.size, "channels_last": args.channels_last, "seconds": seconds,
                              "forward_gflop_per_image": 2 * macs / args.batch / 1e9}), flush=True)


if __name__ == "__main__":
    main()
