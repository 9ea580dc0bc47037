"""kestrel's CIFAR ResNets (`ResNetConfig::cifar(n)` in crates/kestrel-models/src/resnet.rs) in
PyTorch, with timm's key names (conv1, bn1, layer1..3, fc), so state_dicts load into kestrel
unchanged: a 3x3 stem of 16, three stages of n basic blocks of 16/32/64 (stride 2 at stages 2
and 3, a 1x1 conv + BN `downsample` where the shape changes), global average pooling, one linear
layer. n = 1 is resnet8_cifar, n = 3 resnet20_cifar. The one PyTorch twin the scripts share.
"""
import torch.nn as nn
import torch.nn.functional as F

BLOCKS = {"resnet8_cifar": 1, "resnet20_cifar": 3}


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + shortcut)


class CifarResNet(nn.Module):
    def __init__(self, blocks_per_stage, num_classes, in_chans=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for i, width in enumerate([16, 32, 64]):
            blocks = []
            for j in range(blocks_per_stage):
                blocks.append(BasicBlock(cin, width, 2 if (i > 0 and j == 0) else 1))
                cin = width
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean((2, 3)))
