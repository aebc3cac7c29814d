"""A PyTorch re-implementation of the official Wan2.1/2.2 WanModel forward (wan/modules/model.py), for golden tests.

Written from ../shared/reference/wan_spec.md §1.2-1.3 and checked against the official module's behaviour. It works
on a plain state dict with official key names and runs in any dtype (float64 for references). Single sample, no
sequence padding (one GPU: seq_len == token count), t2v and Wan2.2-style i2v (y channels, no CLIP branch).

    out = wan_forward(state_dict, cfg, x, t, context, y=None, dtype=torch.float64)

cfg: dict with dim, ffn_dim, num_heads, num_layers, in_dim, out_dim, text_len, text_dim, freq_dim, eps.
x: [C, F, H, W]; t: float; context: [L <= text_len, text_dim]; y: [in_dim - C, F, H, W] or None.
Returns [out_dim, F, H, W] in `dtype`.
"""
import math

import torch
import torch.nn.functional as Fn


def sinusoid(freq_dim, t):
    # Position in float64, cos half first, then cast to float32 (the official code calls .float()).
    half = freq_dim // 2
    pos = torch.tensor([float(t)], dtype=torch.float64)
    ang = torch.outer(pos, torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) / half))
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=1).float()


def rope_table(head_dim, max_pos=1024, theta=10000.0):
    # Three tables of d-4(d/6), 2(d/6), 2(d/6) dims, i.e. angle[p, i] = p * theta^(-2i/n) per axis, complex128.
    d = head_dim
    parts = []
    for n in (d - 4 * (d // 6), 2 * (d // 6), 2 * (d // 6)):
        inv = 1.0 / torch.pow(torch.tensor(theta, dtype=torch.float64),
                              torch.arange(0, n, 2, dtype=torch.float64) / n)
        ang = torch.outer(torch.arange(max_pos, dtype=torch.float64), inv)
        parts.append(torch.polar(torch.ones_like(ang), ang))
    return torch.cat(parts, dim=1)  # [max_pos, d/2]


def rope_apply(x, grid, table):
    # x: [L, heads, d]; interleaved pairs rotate by frame, row, column (c - 2(c/3), c/3, c/3 pairs), in float64.
    L, n, d = x.shape
    c = d // 2
    tf, th, tw = table.split([c - 2 * (c // 3), c // 3, c // 3], dim=1)
    f, h, w = grid
    mult = torch.cat([
        tf[:f].view(f, 1, 1, -1).expand(f, h, w, -1),
        th[:h].view(1, h, 1, -1).expand(f, h, w, -1),
        tw[:w].view(1, 1, w, -1).expand(f, h, w, -1),
    ], dim=-1).reshape(L, 1, -1)
    xc = torch.view_as_complex(x.to(torch.float64).reshape(L, n, -1, 2).contiguous())
    return torch.view_as_real(xc * mult).flatten(2).to(x.dtype)


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def layer_norm(x, eps, weight=None, bias=None):
    return Fn.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def attention(q, k, v):
    # q: [Lq, n, d], k/v: [Lk, n, d]; softmax(q k^T / sqrt(d)) v, no mask.
    d = q.shape[-1]
    s = torch.einsum("qnd,knd->nqk", q, k) / math.sqrt(d)
    return torch.einsum("nqk,knd->qnd", torch.softmax(s, dim=-1), v)


def patch_weight(w, dim, in_dim):
    # Conv3d [dim, in, 1, 2, 2] or Linear [dim, in*4]: the same numbers in (c, kt, kh, kw) order.
    return w.reshape(dim, in_dim * 4)


def wan_forward(sd, cfg, x, t, context, y=None, dtype=torch.float64):
    P = {k: v.to(dtype) for k, v in sd.items()}
    D, nh, eps = cfg["dim"], cfg["num_heads"], cfg["eps"]
    hd = D // nh
    lin = lambda name, a: Fn.linear(a, P[name + ".weight"], P[name + ".bias"])
    gelu = lambda a: Fn.gelu(a, approximate="tanh")

    x = x.to(dtype)
    if y is not None:
        x = torch.cat([x, y.to(dtype)], dim=0)
    C, F, H, W = x.shape
    assert C == cfg["in_dim"], (C, cfg["in_dim"])
    Hp, Wp = H // 2, W // 2
    # Patch embedding as a strided Conv3d == Linear over (c, kh, kw) patches; tokens (f, h, w) row-major.
    patches = x.reshape(C, F, Hp, 2, Wp, 2).permute(1, 2, 4, 0, 3, 5).reshape(F * Hp * Wp, C * 4)
    xs = Fn.linear(patches, patch_weight(P["patch_embedding.weight"], D, C), P["patch_embedding.bias"])
    L = xs.shape[0]
    grid = (F, Hp, Wp)

    # Time embedding in fp32 in the official code; here in `dtype` from the f32 sinusoid.
    s = sinusoid(cfg["freq_dim"], t).to(dtype)
    e = lin("time_embedding.2", Fn.silu(lin("time_embedding.0", s)))  # [1, D]
    e0 = lin("time_projection.1", Fn.silu(e)).view(6, D)

    # Text: zero-pad to text_len rows, then the MLP; no mask afterwards.
    ctx = torch.zeros(cfg["text_len"], cfg["text_dim"], dtype=dtype)
    ctx[: context.shape[0]] = context.to(dtype)
    ctx = lin("text_embedding.2", gelu(lin("text_embedding.0", ctx)))

    table = rope_table(hd)
    for i in range(cfg["num_layers"]):
        b = f"blocks.{i}."
        m = P[b + "modulation"].view(6, D) + e0
        # self-attention
        h = layer_norm(xs, eps) * (1 + m[1]) + m[0]
        q = rms_norm(lin(b + "self_attn.q", h), P[b + "self_attn.norm_q.weight"], eps).view(L, nh, hd)
        k = rms_norm(lin(b + "self_attn.k", h), P[b + "self_attn.norm_k.weight"], eps).view(L, nh, hd)
        v = lin(b + "self_attn.v", h).view(L, nh, hd)
        o = attention(rope_apply(q, grid, table), rope_apply(k, grid, table), v).reshape(L, D)
        xs = xs + lin(b + "self_attn.o", o) * m[2]
        # cross-attention (norm3 is the affine LayerNorm)
        h = layer_norm(xs, eps, P[b + "norm3.weight"], P[b + "norm3.bias"])
        q = rms_norm(lin(b + "cross_attn.q", h), P[b + "cross_attn.norm_q.weight"], eps).view(L, nh, hd)
        k = rms_norm(lin(b + "cross_attn.k", ctx), P[b + "cross_attn.norm_k.weight"], eps).view(-1, nh, hd)
        v = lin(b + "cross_attn.v", ctx).view(-1, nh, hd)
        xs = xs + lin(b + "cross_attn.o", attention(q, k, v).reshape(L, D))
        # FFN
        h = layer_norm(xs, eps) * (1 + m[4]) + m[3]
        xs = xs + lin(b + "ffn.2", gelu(lin(b + "ffn.0", h))) * m[5]

    # Head: 2-chunk modulation with e (no SiLU), LN without affine.
    hm = P["head.modulation"].view(2, D) + e
    out = lin("head.head", layer_norm(xs, eps) * (1 + hm[1]) + hm[0])  # [L, out_dim*4], (kh, kw, c) order

    # Unpatchify: [F, Hp, Wp, 1, 2, 2, c] -> [c, F, Hp*2, Wp*2].
    co = cfg["out_dim"]
    u = out.view(F, Hp, Wp, 1, 2, 2, co)
    u = torch.einsum("fhwpqrc->cfphqwr", u)
    return u.reshape(co, F, Hp * 2, Wp * 2)
