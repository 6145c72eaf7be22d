"""An independent re-implementation of GPEN's official use_sr steps, for the tests to compare with.

`RRDBNet` is basicsr's architecture as GPEN's `sr_model/rrdbnet_arch.py` writes it, with the
key names of the published realesrnet_x2/x4 files (growth 32, which spandrel assumes);
`official_sr` is `RealESRNet.process` with its default tile_size 0 (including its crop of
only `pad` rows after a x2 reflect pad, which leaves odd sides one pixel longer than 2x);
`official_paste` is the paste loop of `FaceEnhancement.process` with whole-image warps.
Written from the official code, sharing nothing with gpen_cli's implementation, so agreement
means the same arithmetic.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class DenseBlock(nn.Module):
    def __init__(self, feat: int, grow: int):
        super().__init__()
        for i in range(1, 5):
            setattr(self, f"conv{i}", nn.Conv2d(feat + (i - 1) * grow, grow, 3, 1, 1))
        self.conv5 = nn.Conv2d(feat + 4 * grow, feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        return self.conv5(torch.cat((x, x1, x2, x3, x4), 1)) * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, feat: int, grow: int):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = (DenseBlock(feat, grow) for _ in range(3))

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    def __init__(self, scale: int, feat: int = 8, blocks: int = 1, grow: int = 32):
        super().__init__()
        self.scale = scale
        in_ch = 3 * {2: 4, 1: 16}.get(scale, 1)
        self.conv_first = nn.Conv2d(in_ch, feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(feat, grow) for _ in range(blocks)))
        self.conv_body = nn.Conv2d(feat, feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(feat, feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(feat, feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(feat, feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(feat, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
        feat = F.pixel_unshuffle(x, {2: 2, 1: 4}[self.scale]) if self.scale < 4 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


def seeded_rrdbnet(scale: int, seed: int = 0, **shape) -> RRDBNet:
    """Random weights scaled down, as trained SR nets are, so outputs are not all clipped."""
    torch.manual_seed(seed)
    net = RRDBNet(scale, **shape).eval()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.mul_(0.5)
    return net


@torch.no_grad()
def official_sr(net: nn.Module, img: np.ndarray) -> np.ndarray:
    """RealESRNet.process, tile_size 0."""
    img = img.astype(np.float32) / 255.0
    x = torch.from_numpy(np.transpose(img[:, :, [2, 1, 0]], (2, 0, 1))).float().unsqueeze(0)
    mod = {2: 2, 1: 4}.get(net.scale)
    h_pad = w_pad = 0
    if mod is not None:
        _, _, h, w = x.size()
        h_pad = (mod - h % mod) % mod
        w_pad = (mod - w % mod) % mod
        x = F.pad(x, (0, w_pad, 0, h_pad), "reflect")
    out = net(x)
    if mod is not None:
        _, _, h, w = out.size()
        out = out[:, :, 0 : h - h_pad, 0 : w - w_pad]
    out = out.data.squeeze().float().cpu().clamp_(0, 1).numpy()
    out = np.transpose(out[[2, 1, 0], :, :], (1, 2, 0))
    return (out * 255.0).round().astype(np.uint8)


SOFTEN = np.array([[0.0625, 0.125, 0.0625], [0.125, 0.25, 0.125], [0.0625, 0.125, 0.0625]], "f4")


def official_paste(img_sr, faces, restored, masks, inverses) -> np.ndarray:
    """The paste loop of FaceEnhancement.process (alpha 1) onto the upscaled photo."""
    height, width = img_sr.shape[:2]
    full_mask = np.zeros((height, width), dtype=np.float32)
    full_img = np.zeros(img_sr.shape, dtype=np.uint8)
    for face, ef, mask, inverse in zip(faces, restored, masks, inverses, strict=True):
        fh, fw = face.box[3] - face.box[1], face.box[2] - face.box[0]
        tmp_mask = cv2.warpAffine(mask, inverse, (width, height), flags=3)
        if min(fh, fw) < 100:
            ef = cv2.filter2D(ef, -1, SOFTEN)
        tmp_img = cv2.warpAffine(ef, inverse, (width, height), flags=3)
        grow = tmp_mask - full_mask
        full_mask[np.where(grow > 0)] = tmp_mask[np.where(grow > 0)]
        full_img[np.where(grow > 0)] = tmp_img[np.where(grow > 0)]
    full_mask = full_mask[:, :, np.newaxis]
    return cv2.convertScaleAbs(img_sr * (1 - full_mask) + full_img * full_mask)
