"""Reference rows for bench/eval.ts (npm run bench:eval); not run by tests.

  python3 bench/eval_scipy.py fd --dir DIR [--runs 3]
      Reads the two Gaussians bench/eval.ts wrote to DIR (meta.json; mean1/cov1/mean2/cov2
      as little-endian float64) and times the Fréchet distance the way pytorch-fid computes
      it: scipy.linalg.sqrtm(S1 @ S2), real part. Also computes it with numpy's eigh in the
      symmetric form, as an independent check of the value. Prints one JSON object.

  /usr/bin/python3 bench/eval_scipy.py inception [--batch 16] [--size 256] [--runs 3] [--threads 2]
      Images/s of the same FID Inception-v3 in PyTorch (float32, CPU; the architecture of
      tests/fixtures/inception/make_inception_fixture.py with its seeded weights; speed does
      not depend on the weights), resize to 299 included. Prints one JSON object.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np


def fd_mode(args):
    import scipy
    import scipy.linalg

    meta = json.load(open(os.path.join(args.dir, "meta.json")))
    d = meta["dim"]

    def load(name, shape):
        return np.fromfile(os.path.join(args.dir, name + ".f64"), dtype="<f8").reshape(shape)

    mu1, s1, mu2, s2 = load("mean1", (d,)), load("cov1", (d, d)), load("mean2", (d,)), load("cov2", (d, d))
    diff = mu1 - mu2
    times, fd = [], None
    for _ in range(args.runs):
        t0 = time.perf_counter()
        covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
        if np.iscomplexobj(covmean):
            imag = float(np.max(np.abs(covmean.imag)))
            covmean = covmean.real
        else:
            imag = 0.0
        fd = float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ev = np.linalg.eigvalsh(root @ s2 @ root)
    fd_eigh = float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(ev, 0, None)).sum())
    eigh_s = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "fd": fd,
                "seconds": times,
                "median_s": statistics.median(times),
                "max_imag": imag,
                "fd_eigh": fd_eigh,
                "eigh_s": eigh_s,
                "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "python": sys.version.split()[0]},
                "env_threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
            }
        )
    )


def inception_mode(args):
    import torch

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "tests", "fixtures", "inception"))
    import make_inception_fixture as ref  # the PyTorch FID Inception and its seeded weights

    torch.set_num_threads(args.threads)
    net = ref.torchvision_fid_inception().eval()
    ref.load_seeded(net, ref.SEED)
    x = torch.rand(args.batch, 3, args.size, args.size)
    times = []
    with torch.no_grad():
        ref.pool3(net, x)  # warm-up
        for _ in range(args.runs):
            t0 = time.perf_counter()
            f = ref.pool3(net, x)
            times.append(time.perf_counter() - t0)
    assert f.shape == (args.batch, 2048)
    med = statistics.median(times)
    print(
        json.dumps(
            {
                "images_per_s": args.batch / med,
                "seconds": times,
                "batch": args.batch,
                "threads": torch.get_num_threads(),
                "versions": {"torch": torch.__version__},
            }
        )
    )


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    a = sub.add_parser("fd")
    a.add_argument("--dir", required=True)
    a.add_argument("--runs", type=int, default=3)
    b = sub.add_parser("inception")
    b.add_argument("--batch", type=int, default=16)
    b.add_argument("--size", type=int, default=256)
    b.add_argument("--runs", type=int, default=3)
    b.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    fd_mode(args) if args.mode == "fd" else inception_mode(args)


if __name__ == "__main__":
    main()
