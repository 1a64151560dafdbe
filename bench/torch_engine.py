"""PyTorch CPU side of `npm run bench:engine` (bench/engine.ts runs it).

Reads a JSON spec on stdin: {"threads": N, "reps": R, "warmup": W, "rows": [...]}
where each row has an "id" and a "kind" (conv_fwd, conv_dx, conv_dw, matmul,
attention, train_step) with the same shapes bench/engine.ts uses (NHWC there;
NCHW here, PyTorch's native layout: the same arithmetic). Prints JSON
{"torch": version, "threads": N, "results": {id: [seconds, ...]}} on stdout.

The conv gradient rows call aten's convolution_backward directly, with only
the wanted gradient in the output mask, as the forward's autograd would.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F


def conv_row(row, kind):
    b, h, w, c = row["x"]
    fh, fw, _, o = row["f"]
    s = row["stride"]
    # 'same' padding as TensorFlow computes it (may be asymmetric for even kernels).
    oh, ow = -(-h // s), -(-w // s)
    ph = max((oh - 1) * s + fh - h, 0)
    pw = max((ow - 1) * s + fw - w, 0)
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    x = torch.randn(b, c, h, w)
    wt = torch.randn(o, c, fh, fw) * 0.05
    xp = F.pad(x, pad)
    if kind == "conv_fwd":
        return lambda: F.conv2d(xp, wt, stride=s)
    dy = torch.randn(b, o, oh, ow)
    mask = [kind == "conv_dx", kind == "conv_dw", False]

    def run():
        return torch.ops.aten.convolution_backward(dy, xp, wt, None, [s, s], [0, 0], [1, 1], False, [0, 0], 1, mask)

    return run


def attention_row(row):
    shape = (row["batchHeads"], row["t"], row["d"])
    q, k, v = torch.randn(shape), torch.randn(shape), torch.randn(shape)
    scale = row["d"] ** -0.5
    return lambda: torch.softmax(q @ k.transpose(1, 2) * scale, dim=-1) @ v


class VQ(torch.nn.Module):
    """The model of bench/engine.ts: 3x3 convs with two stride-2 downsamplings,
    GroupNorm + SiLU, 1x1 projection, nearest-code quantizer with
    straight-through gradients, decoder with nearest 2x upsampling."""

    def __init__(self, row):
        super().__init__()
        self.layers = {layer["name"]: layer for layer in row["layers"]}
        self.groups = row["groups"]
        self.convs = torch.nn.ModuleDict()
        for name, layer in self.layers.items():
            fh, fw, c, o = layer["f"]
            self.convs[name] = torch.nn.Conv2d(c, o, (fh, fw), stride=layer["stride"], bias=False)
        self.codebook = torch.nn.Parameter(torch.randn(row["codebook"], row["codeDim"]) * 0.5)

    def conv(self, x, name):
        layer = self.layers[name]
        fh, fw = layer["f"][0], layer["f"][1]
        s = layer["stride"]
        h, w = x.shape[2], x.shape[3]
        oh, ow = -(-h // s), -(-w // s)
        ph = max((oh - 1) * s + fh - h, 0)
        pw = max((ow - 1) * s + fw - w, 0)
        return self.convs[name](F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)))

    def forward(self, images):
        act = F.silu
        h = act(self.conv(images, "enc_in"))
        h = act(self.conv(h, "enc_down1"))
        h = self.conv(h, "enc_down2")
        z = self.conv(act(F.group_norm(h, self.groups, eps=1e-6)), "enc_proj")  # (B, D, 16, 16)
        b, d, hh, ww = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)  # (N, D)
        dist = (flat * flat).sum(1, keepdim=True) - 2 * flat @ self.codebook.t() + (self.codebook * self.codebook).sum(1)
        idx = dist.argmin(1)
        q = self.codebook[idx].reshape(b, hh, ww, d).permute(0, 3, 1, 2)
        zq = q + z - z.detach()  # value q; gradient to z (straight through) and to the codebook
        commit = ((z - zq.detach()) ** 2).mean()
        h = act(F.group_norm(self.conv(zq, "dec_in"), self.groups, eps=1e-6))
        h = act(self.conv(F.interpolate(h, scale_factor=2, mode="nearest"), "dec_up1"))
        h = act(self.conv(F.interpolate(h, scale_factor=2, mode="nearest"), "dec_up2"))
        out = self.conv(h, "dec_out")
        return ((out - images) ** 2).mean() + 0.25 * commit


def train_row(row):
    torch.manual_seed(1)
    model = VQ(row)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = torch.randn(row["batch"], 3, row["size"], row["size"]) * 0.5

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(images)
        loss.backward()
        opt.step()
        return loss

    return step


def make(row):
    kind = row["kind"]
    if kind.startswith("conv_"):
        return conv_row(row, kind)
    if kind == "matmul":
        n = row["n"]
        a, b = torch.randn(n, n), torch.randn(n, n)
        return lambda: a @ b
    if kind == "attention":
        return attention_row(row)
    if kind == "train_step":
        return train_row(row)
    raise ValueError(f"unknown row kind {kind}")


def main():
    spec = json.load(sys.stdin)
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    results = {}
    for row in spec["rows"]:
        fn = make(row)
        grad = row["kind"] == "train_step"
        with torch.set_grad_enabled(grad):
            for _ in range(spec["warmup"]):
                fn()
            samples = []
            for _ in range(spec["reps"]):
                t0 = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - t0)
        results[row["id"]] = samples
        samples.sort()
        print(f"  torch {spec['threads']}t {row['id']}: {samples[len(samples) // 2] * 1000:.1f} ms", file=sys.stderr)
    json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
