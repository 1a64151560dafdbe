"""Reference logits for tests/tf/transformer.test.ts, from an independent PyTorch model.

Run with Debian's python3-torch (1.13):  /usr/bin/python3 tests/tf/transformer.reference.py
Writes tests/tf/transformer.reference.json.

For each configuration: random weights (numpy, seeded) under the names of
src/tf/transformer.ts weightShapes(), and logits for a few id rows. Every row
is run ALONE and unpadded here; the TypeScript test runs the rows as one
left-padded batch, so agreement also checks that padding is invisible.
Weights and logits are stored as base64 little-endian float32.
"""
import base64
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)  # the reference in float64; the test tolerance covers float32


def mlp_width(c):
    if c["mlpHidden"] > 0:
        return c["mlpHidden"]
    return 4 * c["dModel"] if c["mlp"] == "gelu" else math.ceil(8 * c["dModel"] / 3 / 8) * 8


def shapes(c):
    V, C, L, Fh = c["vocabSize"], c["dModel"], c["nLayers"], mlp_width(c)
    s = {"tok_emb": (V, C)}
    if c["positions"] == "learned":
        s["pos_emb"] = (c["contextLength"], C)
    if c["gridRows"] > 0:
        s["row_emb"] = (c["gridRows"], C)
        s["col_emb"] = (c["gridCols"], C)

    def norm(n):
        s[n + ".g"] = (C,)
        if c["norm"] == "layer" and c["bias"]:
            s[n + ".b"] = (C,)

    for l in range(L):
        p = f"h{l}"
        norm(p + ".ln1")
        s[p + ".attn.wqkv"] = (C, 3 * C)
        if c["bias"]:
            s[p + ".attn.bqkv"] = (3 * C,)
        s[p + ".attn.wo"] = (C, C)
        if c["bias"]:
            s[p + ".attn.bo"] = (C,)
        norm(p + ".ln2")
        s[p + ".mlp.w1"] = (C, Fh)
        if c["bias"]:
            s[p + ".mlp.b1"] = (Fh,)
        if c["mlp"] == "swiglu":
            s[p + ".mlp.w3"] = (C, Fh)
        s[p + ".mlp.w2"] = (Fh, C)
        if c["bias"]:
            s[p + ".mlp.b2"] = (C,)
    norm("ln_f")
    if not c["tieEmbeddings"]:
        s["head"] = (C, V)
    return s


def norm(c, w, name, x):
    g = w[name + ".g"]
    if c["norm"] == "rms":
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + c["normEps"]) * g
    b = w.get(name + ".b")
    return F.layer_norm(x, (x.shape[-1],), g, b, c["normEps"])


def rope(x, pos, base):
    # x: (T, H, hd); rotate the pair (x[i], x[i + hd/2]) by angle pos * base^(-2i/hd), as complex multiplication.
    hd = x.shape[-1]
    half = hd // 2
    freqs = base ** (-torch.arange(0, half, dtype=torch.float64) * 2 / hd)
    ang = pos[:, None].double() * freqs[None, :]  # (T, half)
    rot = torch.polar(torch.ones_like(ang), ang)[:, None, :]  # (T, 1, half)
    z = torch.complex(x[..., :half], x[..., half:]) * rot
    return torch.cat([z.real, z.imag], dim=-1)


def run_row(c, w, ids, pos2d):
    """Logits (T, V) for one unpadded row."""
    T = len(ids)
    C, H = c["dModel"], c["nHeads"]
    hd = C // H
    ids_t = torch.tensor(ids)
    pos = torch.arange(T)
    x = w["tok_emb"][ids_t]
    if c["positions"] == "learned":
        x = x + w["pos_emb"][pos]
    if c["gridRows"] > 0:
        for t, (r, col) in enumerate(pos2d):
            if r >= 0:
                x[t] = x[t] + w["row_emb"][r] + w["col_emb"][col]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(c["nLayers"]):
        p = f"h{l}"
        h = norm(c, w, p + ".ln1", x)
        qkv = h @ w[p + ".attn.wqkv"] + (w[p + ".attn.bqkv"] if c["bias"] else 0)
        q, k, v = [t.reshape(T, H, hd) for t in qkv.split(C, dim=-1)]
        if c["positions"] == "rope":
            q, k = rope(q, pos, c["ropeBase"]), rope(k, pos, c["ropeBase"])
        att = torch.einsum("thd,shd->hts", q, k) / math.sqrt(hd)
        att = att.masked_fill(~causal, float("-inf")).softmax(-1)
        y = torch.einsum("hts,shd->thd", att, v).reshape(T, C)
        x = x + y @ w[p + ".attn.wo"] + (w[p + ".attn.bo"] if c["bias"] else 0)
        h2 = norm(c, w, p + ".ln2", x)
        if c["mlp"] == "swiglu":
            m = F.silu(h2 @ w[p + ".mlp.w1"]) * (h2 @ w[p + ".mlp.w3"])
        else:
            m = F.gelu(h2 @ w[p + ".mlp.w1"] + (w[p + ".mlp.b1"] if c["bias"] else 0), approximate="tanh")
        x = x + m @ w[p + ".mlp.w2"] + (w[p + ".mlp.b2"] if c["bias"] else 0)
    x = norm(c, w, "ln_f", x)
    return x @ (w["tok_emb"].T if c["tieEmbeddings"] else w["head"])


def b64(a):
    return base64.b64encode(np.asarray(a, dtype="<f4").tobytes()).decode()


def case(name, config, rows, pos2d, seed):
    rng = np.random.default_rng(seed)
    w32 = {}
    for n, shp in shapes(config).items():
        if n.endswith(".g"):
            a = 1 + 0.1 * rng.standard_normal(shp)  # gains near 1, not exactly 1, so they are tested
        else:
            a = 0.3 * rng.standard_normal(shp)
        w32[n] = a.astype(np.float32)
    w = {n: torch.from_numpy(a.astype(np.float64)) for n, a in w32.items()}
    logits = [run_row(config, w, r, p).numpy() for r, p in zip(rows, pos2d)]
    return {
        "name": name,
        "config": config,
        "weights": {n: b64(a.ravel()) for n, a in w32.items()},
        "rows": rows,
        "pos2d": pos2d,
        "logits": [b64(l.ravel()) for l in logits],
    }


def main():
    llama = dict(vocabSize=23, contextLength=12, dModel=16, nLayers=2, nHeads=2, mlp="swiglu", mlpHidden=0, norm="rms",
                 normEps=1e-5, positions="rope", ropeBase=10000, gridRows=3, gridCols=2, tieEmbeddings=True, bias=False,
                 dropout=0, padId=0, initStd=0.02)
    gpt2 = dict(llama, mlp="gelu", norm="layer", positions="learned", gridRows=0, gridCols=0, tieEmbeddings=False, bias=True)
    rows = [[1, 5, 3, 9, 11, 12, 4, 2], [1, 7, 3, 20, 4]]
    # anchors of the visual ids (9, 11, 12 in row 0; 20 in row 1), -1 elsewhere
    pos2d = [[(-1, -1), (-1, -1), (-1, -1), (0, 0), (1, 1), (2, 0), (-1, -1), (-1, -1)],
             [(-1, -1), (-1, -1), (-1, -1), (2, 1), (-1, -1)]]
    out = [case("llama", llama, rows, pos2d, 1), case("gpt2", gpt2, rows, [[(-1, -1)] * len(r) for r in rows], 2)]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "transformer.reference.json")
    with open(path, "w") as f:
        json.dump({"script": "tests/tf/transformer.reference.py", "torch": torch.__version__, "cases": out}, f)
    print("wrote", path)


if __name__ == "__main__":
    main()
