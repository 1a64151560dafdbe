"""Reference outputs for tests/tf/tokenizer-reference.test.ts, from an independent PyTorch model.

Run with Debian's python3-torch (1.13):  /usr/bin/python3 tests/tf/tokenizer.reference.py
Writes tests/tf/tokenizer.reference.json.

The tokenizer of src/tf (encoder with semantic and pixel heads, dual-codebook
quantizer, pixel decoder reading both code branches, semantic decoder),
written again here in PyTorch's NCHW layout with its own ops: nn.functional
conv2d, group_norm, silu, interpolate(mode='nearest'), normalize. Weights are
random (numpy, seeded) under the weight names of src/tf, stored in the tfjs
layout (conv kernels [kh, kw, cin, cout]); everything is computed in float64.
Stored as base64 little-endian float32 (codes as int32).
"""
import base64
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

CONFIG = {
    'imageChannels': 3,
    'downsample': 8,
    'baseChannels': 4,
    'channelMult': [1, 1, 2, 2],
    'resBlocks': 1,
    'normGroups': 2,
    'normEps': 1e-6,
    'headResBlocks': 1,
    'semanticDim': 3,
    'pixelDim': 2,
    'codebookSize': 8,
    'pixelWeight': 0.5,
    'beta': 0.25,
    'decoderInput': 'both',
    'teacherDim': 5,
    'semanticDecoderChannels': 4,
    'semanticDecoderBlocks': 1,
}
B, H, W = 2, 16, 16


def shapes(c):
    """Weight names and tfjs shapes, as src/tf/encoder.ts and decoder.ts name them."""
    s = {}

    def conv(name, k, cin, cout):
        s[name + '.w'] = [k, k, cin, cout]
        s[name + '.b'] = [cout]

    def norm(name, ch):
        s[name + '.g'] = [ch]
        s[name + '.b'] = [ch]

    def res(name, cin, cout):
        norm(name + '.norm1', cin)
        conv(name + '.conv1', 3, cin, cout)
        norm(name + '.norm2', cout)
        conv(name + '.conv2', 3, cout, cout)
        if cin != cout:
            conv(name + '.skip', 1, cin, cout)

    widths = [c['baseChannels'] * m for m in c['channelMult']]
    conv('encoder.conv_in', 3, c['imageChannels'], widths[0])
    cur = widths[0]
    for i, width in enumerate(widths):
        for r in range(c['resBlocks']):
            res(f'encoder.level{i}.res{r}', cur, width)
            cur = width
        if i < len(widths) - 1:
            conv(f'encoder.level{i}.down', 3, cur, cur)
    res('encoder.mid', cur, cur)
    for head, dim in (('semantic', c['semanticDim']), ('pixel', c['pixelDim'])):
        for r in range(c['headResBlocks']):
            res(f'encoder.{head}.res{r}', cur, cur)
        norm(f'encoder.{head}.norm', cur)
        conv(f'encoder.{head}.proj', 1, cur, dim)
    dec_in = c['pixelDim'] + (c['semanticDim'] if c['decoderInput'] == 'both' else 0)
    cur = widths[-1]
    conv('decoder.conv_in', 3, dec_in, cur)
    res('decoder.mid', cur, cur)
    for i in reversed(range(len(widths))):
        for r in range(c['resBlocks']):
            res(f'decoder.level{i}.res{r}', cur, widths[i])
            cur = widths[i]
        if i > 0:
            conv(f'decoder.level{i}.up', 3, cur, cur)
    norm('decoder.norm_out', cur)
    conv('decoder.conv_out', 3, cur, c['imageChannels'])
    sw = c['semanticDecoderChannels']
    conv('semdec.conv_in', 3, c['semanticDim'], sw)
    for r in range(c['semanticDecoderBlocks']):
        res(f'semdec.res{r}', sw, sw)
    norm('semdec.norm_out', sw)
    conv('semdec.proj', 1, sw, c['teacherDim'])
    s['quantizer.semantic'] = [c['codebookSize'], c['semanticDim']]
    s['quantizer.pixel'] = [c['codebookSize'], c['pixelDim']]
    return s


def make_weights(c, rng):
    w = {}
    for name, shape in shapes(c).items():
        if name.endswith('.g'):
            w[name] = 1 + 0.2 * rng.standard_normal(shape)
        elif len(shape) == 4:
            fan_in = shape[0] * shape[1] * shape[2]
            w[name] = rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)
        else:
            w[name] = 0.1 * rng.standard_normal(shape)
    # Codebooks are stored un-normalized on purpose: the model normalizes rows when it uses them.
    w['quantizer.semantic'] = 2 * rng.standard_normal(shapes(c)['quantizer.semantic'])
    w['quantizer.pixel'] = 2 * rng.standard_normal(shapes(c)['quantizer.pixel'])
    return {k: v.astype(np.float32) for k, v in w.items()}


class Net:
    def __init__(self, c, weights):
        self.c = c
        self.w = {k: torch.tensor(v, dtype=torch.float64) for k, v in weights.items()}

    def conv(self, x, name, stride=1):
        k = self.w[name + '.w'].permute(3, 2, 0, 1)  # [kh, kw, cin, cout] -> [cout, cin, kh, kw]
        size = k.shape[-1]
        if stride == 2:
            x = F.pad(x, (0, 1, 0, 1))  # TF 'same' for stride 2 on even sizes pads after only
            return F.conv2d(x, k, self.w[name + '.b'], stride=2)
        return F.conv2d(x, k, self.w[name + '.b'], padding=size // 2)

    def norm(self, x, name):
        return F.group_norm(x, self.c['normGroups'], self.w[name + '.g'], self.w[name + '.b'], eps=self.c['normEps'])

    def res(self, x, name):
        h = self.conv(F.silu(self.norm(x, name + '.norm1')), name + '.conv1')
        h = self.conv(F.silu(self.norm(h, name + '.norm2')), name + '.conv2')
        skip = self.conv(x, name + '.skip') if name + '.skip.w' in self.w else x
        return skip + h

    def encode(self, x):
        c = self.c
        levels = len(c['channelMult'])
        h = self.conv(x, 'encoder.conv_in')
        for i in range(levels):
            for r in range(c['resBlocks']):
                h = self.res(h, f'encoder.level{i}.res{r}')
            if i < levels - 1:
                h = self.conv(h, f'encoder.level{i}.down', 2)
        h = self.res(h, 'encoder.mid')
        out = {}
        for head in ('semantic', 'pixel'):
            g = h
            for r in range(c['headResBlocks']):
                g = self.res(g, f'encoder.{head}.res{r}')
            out[head] = F.normalize(self.conv(F.silu(self.norm(g, f'encoder.{head}.norm')), f'encoder.{head}.proj'), dim=1)
        return out['semantic'], out['pixel']

    def quantize(self, zs, zp):
        """Brute-force d[k] over [B, h, w, K]."""
        es = F.normalize(self.w['quantizer.semantic'], dim=1)
        ep = F.normalize(self.w['quantizer.pixel'], dim=1)
        zs_ = zs.permute(0, 2, 3, 1)[..., None, :]  # [B, h, w, 1, d_s]
        zp_ = zp.permute(0, 2, 3, 1)[..., None, :]
        d = ((zs_ - es) ** 2).sum(-1) + self.c['pixelWeight'] * ((zp_ - ep) ** 2).sum(-1)  # [B, h, w, K]
        srt = torch.sort(d, dim=-1).values
        margin = (srt[..., 1] - srt[..., 0]).min().item()
        codes = d.argmin(-1)
        qs = es[codes].permute(0, 3, 1, 2)
        qp = ep[codes].permute(0, 3, 1, 2)
        dmin = d.min(-1).values
        return codes, qs, qp, dmin.mean().item(), margin

    def decode(self, qp, qs):
        c = self.c
        levels = len(c['channelMult'])
        z = torch.cat([qp, qs], 1) if c['decoderInput'] == 'both' else qp
        h = self.conv(z, 'decoder.conv_in')
        h = self.res(h, 'decoder.mid')
        for i in reversed(range(levels)):
            for r in range(c['resBlocks']):
                h = self.res(h, f'decoder.level{i}.res{r}')
            if i > 0:
                h = self.conv(F.interpolate(h, scale_factor=2, mode='nearest'), f'decoder.level{i}.up')
        return self.conv(F.silu(self.norm(h, 'decoder.norm_out')), 'decoder.conv_out')

    def semantic(self, qs):
        h = self.conv(qs, 'semdec.conv_in')
        for r in range(self.c['semanticDecoderBlocks']):
            h = self.res(h, f'semdec.res{r}')
        return self.conv(F.silu(self.norm(h, 'semdec.norm_out')), 'semdec.proj')


def b64(a, dtype=np.float32):
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder('<')).tobytes()).decode('ascii')


def nhwc(t):
    return t.permute(0, 2, 3, 1).numpy()


def main():
    rng = np.random.default_rng(20240611)
    weights = make_weights(CONFIG, rng)
    images = rng.uniform(-1, 1, (B, H, W, CONFIG['imageChannels'])).astype(np.float32)
    net = Net(CONFIG, weights)
    x = torch.tensor(images, dtype=torch.float64).permute(0, 3, 1, 2)
    with torch.no_grad():
        zs, zp = net.encode(x)
        codes, qs, qp, dmin, margin = net.quantize(zs, zp)
        recon = net.decode(qp, qs)
        sem = net.semantic(qs)
    assert margin > 1e-3, f'a near-tie in d[k] ({margin}); pick another seed'
    out = {
        'config': CONFIG,
        'images': {'shape': [B, H, W, CONFIG['imageChannels']], 'data': b64(images)},
        'weights': {k: {'shape': list(v.shape), 'data': b64(v)} for k, v in weights.items()},
        'zs': b64(nhwc(zs)),
        'zp': b64(nhwc(zp)),
        'codes': b64(codes.numpy(), np.int32),
        'recon': b64(nhwc(recon)),
        'semantic': b64(nhwc(sem)),
        'codebookLoss': dmin,
        'commitLoss': CONFIG['beta'] * dmin,
        'minMargin': margin,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'tokenizer.reference.json')
    with open(path, 'w') as f:
        json.dump(out, f)
    print('wrote', path, 'codes', codes.flatten().tolist(), 'margin', margin)


if __name__ == '__main__':
    main()
