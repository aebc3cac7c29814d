"""Baseline for `turbodiff bench dit`: the official Wan2.1 DiT structure in PyTorch eager, measured on the same GPU
in the same device call (h100-baselines.md measured the official modules at 0.700 s per 1.3B 480p forward).

Mirrors wan/modules/model.py's numerics: fp32 parameters under bf16 autocast, LayerNorms/modulation in fp32, RoPE in
float64 complex, attention through SDPA (cuDNN/flash). Random weights; only the time matters.

    python3 bench/python/torch_wan_dit_baseline.py [--dim 1536 --ffn 8960 --heads 12 --layers 30] [--frames 21 --h 60 --w 104]
"""
import argparse
import math
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=1536)
    ap.add_argument("--ffn", type=int, default=8960)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--frames", type=int, default=21)
    ap.add_argument("--h", type=int, default=60)
    ap.add_argument("--w", type=int, default=104)
    ap.add_argument("--iters", type=int, default=5)
    a = ap.parse_args()
    dev = "cuda"
    D, nh, hd = a.dim, a.heads, a.dim // a.heads
    f, hp, wp = a.frames, a.h // 2, a.w // 2
    L = f * hp * wp
    g = torch.Generator(device=dev).manual_seed(0)

    def lin(o, i):
        return (torch.randn(o, i, device=dev, generator=g) * (1.0 / math.sqrt(i)), torch.zeros(o, device=dev))

    blocks = []
    for _ in range(a.layers):
        b = {n: lin(D, D) for n in ("sq", "sk", "sv", "so", "cq", "ck", "cv", "co")}
        b["f0"], b["f2"] = lin(a.ffn, D), lin(D, a.ffn)
        b["mod"] = torch.randn(6, D, device=dev, generator=g) * 0.02
        b["n3w"], b["n3b"] = torch.ones(D, device=dev), torch.zeros(D, device=dev)
        for n in ("nsq", "nsk", "ncq", "nck"):
            b[n] = torch.ones(D, device=dev)
        blocks.append(b)
    # RoPE table as the official rope_params: complex128 [1024, hd/2]
    parts = []
    for n in (hd - 4 * (hd // 6), 2 * (hd // 6), 2 * (hd // 6)):
        inv = 1.0 / torch.pow(10000.0, torch.arange(0, n, 2, dtype=torch.float64) / n)
        ang = torch.outer(torch.arange(1024, dtype=torch.float64), inv)
        parts.append(torch.polar(torch.ones_like(ang), ang))
    freqs = torch.cat(parts, 1).to(dev)
    c = hd // 2
    tf, th, tw = freqs.split([c - 2 * (c // 3), c // 3, c // 3], 1)
    mult = torch.cat([tf[:f].view(f, 1, 1, -1).expand(f, hp, wp, -1), th[:hp].view(1, hp, 1, -1).expand(f, hp, wp, -1),
                      tw[:wp].view(1, 1, wp, -1).expand(f, hp, wp, -1)], -1).reshape(L, 1, -1)

    def rope(x):
        xc = torch.view_as_complex(x.to(torch.float64).reshape(L, nh, -1, 2))
        return torch.view_as_real(xc * mult).flatten(2).float()

    def rms(x, w):
        x = x.float()
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w

    def attn(q, k, v):
        q, k, v = (t.to(torch.bfloat16).transpose(0, 1).unsqueeze(0) for t in (q, k, v))
        return F.scaled_dot_product_attention(q, k, v).squeeze(0).transpose(0, 1)

    x0 = torch.randn(L, D, device=dev, generator=g)
    ctx = torch.randn(512, D, device=dev, generator=g)
    e0 = torch.randn(6, D, device=dev, generator=g) * 0.1

    def forward():
        x = x0
        with torch.autocast("cuda", dtype=torch.bfloat16):
            for b in blocks:
                m = (b["mod"] + e0).float()
                h = F.layer_norm(x.float(), (D,), eps=1e-6) * (1 + m[1]) + m[0]
                q = rms(F.linear(h, *b["sq"]), b["nsq"]).view(L, nh, hd)
                k = rms(F.linear(h, *b["sk"]), b["nsk"]).view(L, nh, hd)
                v = F.linear(h, *b["sv"]).view(L, nh, hd)
                y = F.linear(attn(rope(q), rope(k), v).reshape(L, D), *b["so"])
                x = x + y * m[2]
                h = F.layer_norm(x.float(), (D,), b["n3w"], b["n3b"], 1e-6)
                q = rms(F.linear(h, *b["cq"]), b["ncq"]).view(L, nh, hd)
                k = rms(F.linear(ctx, *b["ck"]), b["nck"]).view(512, nh, hd)
                v = F.linear(ctx, *b["cv"]).view(512, nh, hd)
                x = x + F.linear(attn(q, k, v).reshape(L, D), *b["co"])
                h = F.layer_norm(x.float(), (D,), eps=1e-6) * (1 + m[4]) + m[3]
                x = x + F.linear(F.gelu(F.linear(h, *b["f0"]), approximate="tanh"), *b["f2"]) * m[5]
        return x

    with torch.no_grad():
        forward()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(a.iters):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            forward()
            e.record()
            torch.cuda.synchronize()
            times.append(s.elapsed_time(e))
    times.sort()
    print(f"torch baseline (official Wan block structure, bf16 autocast, SDPA) dim {D} layers {a.layers} tokens {L}: "
          f"median {times[len(times) // 2]:.1f} ms over {a.iters}, peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB "
          f"(torch {torch.__version__}, {torch.cuda.get_device_name()})")


if __name__ == "__main__":
    main()
