#!/usr/bin/env python3
"""PyTorch reference of Wan's umT5 encoder (wan/modules/t5.py: T5Encoder with shared_pos=False), fp32.

Written for turbodiff's tests from the published architecture (see shared/reference/wan_spec.md section 3): the
same parameter names as Wan's state dict, the same bucket arithmetic (float32 log), the masked_fill with
finfo.min for padding keys, no attention scaling, gated tanh-GELU, T5 RMSNorm with eps 1e-6.
"""
import math

import torch


def relative_bucket(rel, num_buckets=32, max_dist=128):
    nb = num_buckets // 2
    buckets = (rel > 0).long() * nb
    a = rel.abs()
    max_exact = nb // 2
    large = max_exact + (torch.log(a.float() / max_exact) / math.log(max_dist / max_exact) * (nb - max_exact)).long()
    large = torch.minimum(large, torch.full_like(large, nb - 1))
    return buckets + torch.where(a < max_exact, a, large)


def rms(x, w, eps=1e-6):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def encode(sd, cfg, ids, mask=None):
    """sd: Wan-named fp32 tensors; ids: LongTensor [L]; mask: LongTensor [L] or None. Returns [L, dim]."""
    L = ids.shape[0]
    n = cfg["num_heads"]
    c = cfg["dim_attn"] // n
    x = sd["token_embedding.weight"][ids]
    rel = torch.arange(L)[None, :] - torch.arange(L)[:, None]  # key - query
    bucket = relative_bucket(rel, cfg["num_buckets"])
    for i in range(cfg["num_layers"]):
        p = f"blocks.{i}."
        pos = sd[p + "pos_embedding.embedding.weight"][bucket].permute(2, 0, 1)  # [n, L, L]
        bias = pos.clone()
        if mask is not None:
            bias = bias.masked_fill(mask.view(1, 1, L) == 0, torch.finfo(torch.float32).min)
        h = rms(x, sd[p + "norm1.weight"])
        q = (h @ sd[p + "attn.q.weight"].T).view(L, n, c)
        k = (h @ sd[p + "attn.k.weight"].T).view(L, n, c)
        v = (h @ sd[p + "attn.v.weight"].T).view(L, n, c)
        att = torch.einsum("inc,jnc->nij", q, k) + bias
        att = torch.softmax(att.float(), dim=-1)
        o = torch.einsum("nij,jnc->inc", att, v).reshape(L, n * c)
        x = x + o @ sd[p + "attn.o.weight"].T
        h = rms(x, sd[p + "norm2.weight"])
        f = (h @ sd[p + "ffn.fc1.weight"].T) * gelu_tanh(h @ sd[p + "ffn.gate.0.weight"].T)
        x = x + f @ sd[p + "ffn.fc2.weight"].T
    return rms(x, sd["norm.weight"])
