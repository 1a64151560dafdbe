#!/usr/bin/env python3
"""Convert pytorch-fid's Inception weights to the file vtok's FID extractor reads.

pytorch-fid (https://github.com/mseitzer/pytorch-fid) computes the standard FID
with an Inception-v3 whose weights it downloads from

  https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth

(a PyTorch state dict ported from TensorFlow's 2015-12-05 Inception graph).
Download that file where you can, then:

  python3 scripts/convert-pytorch-fid.py pt_inception-2015-12-05-6726825d.pth pt_inception-2015-12-05.safetensors
  vtok eval fid DIR_A DIR_B --extractor pytorch-fid-inception --weights pt_inception-2015-12-05.safetensors

Needs PyTorch to unpickle the .pth (Debian: apt-get install python3-torch; or pip install torch) and numpy.

The output is a safetensors file (8-byte little-endian header length, JSON
header, raw little-endian float32 data) holding every conv and BatchNorm
tensor under its PyTorch name (`Mixed_5b.branch1x1.conv.weight`, ...; the
1008-way fc layer and num_batches_tracked are dropped: FID uses the 2048-d pool
features). Its metadata:

  format "vtok-fid-inception", version "1", width "1",
  source            the input file's name,
  source_sha256     its SHA-256,
  standard          "true" when the input is pytorch-fid's file, else "false",
  standard_evidence why.

vtok calls a Fréchet distance "FID" only with a file marked standard. The
file is recognised by its SHA-256 starting with 6726825d, the suffix of its
name (torch.hub's convention). If your copy is pytorch-fid's file but does not
match, check it; pass --assert-standard only if you are sure.
"""
import argparse
import hashlib
import json
import os
import struct
import sys

import numpy as np

HASH_PREFIX = "6726825d"
FORMAT = "vtok-fid-inception"
VERSION = "1"
# Spot checks of the state dict (the vtok loader checks every name and shape).
EXPECTED = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "Mixed_7c.branch_pool.bn.running_var": (192,),
}
NUM_TENSORS = 470  # 94 BasicConv2d x (conv.weight + 4 BatchNorm tensors)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_state_dict(path):
    import torch  # only needed to unpickle the .pth

    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        sys.exit(f"error: {path} does not hold a state dict (got {type(obj).__name__})")
    out = {}
    for name, t in obj.items():
        if name.startswith("module."):
            name = name[len("module."):]
        if name.startswith("fc.") or name.endswith("num_batches_tracked"):
            continue
        out[name] = t.detach().cpu().numpy().astype("<f4")
    return out


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    offset = 0
    for name, a in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    head = json.dumps(header).encode("utf-8")
    head += b" " * ((8 - (8 + len(head)) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for a in tensors.values():
            f.write(np.ascontiguousarray(a).tobytes())
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pth", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
    p.add_argument("out", help="output .safetensors file")
    p.add_argument("--assert-standard", action="store_true", help="mark the output standard even if the SHA-256 prefix does not match")
    args = p.parse_args()

    digest = sha256_of(args.pth)
    tensors = load_state_dict(args.pth)
    for name, shape in EXPECTED.items():
        if name not in tensors:
            sys.exit(f"error: {args.pth} has no tensor {name}: not pytorch-fid's FID Inception state dict")
        if tuple(tensors[name].shape) != shape:
            sys.exit(f"error: {name} has shape {tuple(tensors[name].shape)}, expected {shape}")
    if len(tensors) != NUM_TENSORS:
        sys.exit(f"error: expected {NUM_TENSORS} conv/BatchNorm tensors, found {len(tensors)}")

    if digest.startswith(HASH_PREFIX):
        standard, evidence = "true", f"sha256 starts with {HASH_PREFIX}, the suffix of pytorch-fid's file name"
    elif args.assert_standard:
        standard, evidence = "true", f"asserted by the user (--assert-standard); sha256 {digest[:8]} does not start with {HASH_PREFIX}"
    else:
        standard, evidence = "false", f"sha256 {digest[:8]}... does not start with {HASH_PREFIX}"
        print(
            f"warning: {os.path.basename(args.pth)} is not recognised as pytorch-fid's weights ({evidence}); "
            "distances computed with it will not be called FID",
            file=sys.stderr,
        )
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "width": "1",
        "source": os.path.basename(args.pth),
        "source_sha256": digest,
        "standard": standard,
        "standard_evidence": evidence,
    }
    write_safetensors(args.out, tensors, metadata)
    total = sum(a.size for a in tensors.values())
    print(f"wrote {args.out}: {len(tensors)} tensors, {total} values, standard={standard}")


if __name__ == "__main__":
    main()
