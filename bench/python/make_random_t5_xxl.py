"""Writes a random umT5-XXL encoder checkpoint (Wan key names, bf16 safetensors, ~11.4 GB) so that
`turbodiff bench t5 --weights FILE` can time loading from a warm page cache where no real checkpoint exists.
Generated on the GPU when one is present; written without the safetensors package.

    python3 bench/python/make_random_t5_xxl.py /tmp/umt5_xxl_random.safetensors
"""
import json
import struct
import sys

import torch


def main():
    path = sys.argv[1]
    vocab, D, A, F, H, L, nb = 256384, 4096, 4096, 10240, 64, 24, 32
    shapes = {"token_embedding.weight": (vocab, D)}
    for i in range(L):
        p = f"blocks.{i}."
        shapes.update({p + "norm1.weight": (D,), p + "norm2.weight": (D,), p + "attn.q.weight": (A, D),
                       p + "attn.k.weight": (A, D), p + "attn.v.weight": (A, D), p + "attn.o.weight": (D, A),
                       p + "pos_embedding.embedding.weight": (nb, H), p + "ffn.gate.0.weight": (F, D),
                       p + "ffn.fc1.weight": (F, D), p + "ffn.fc2.weight": (D, F)})
    shapes["norm.weight"] = (D,)
    header, off = {}, 0
    for k, s in shapes.items():
        n = 2
        for d in s:
            n *= d
        header[k] = {"dtype": "BF16", "shape": list(s), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator(device=dev).manual_seed(0)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for k, s in shapes.items():
            t = (torch.randn(s, generator=g, device=dev) * 0.02).to(torch.bfloat16)
            f.write(t.view(torch.int16).cpu().numpy().tobytes())
    print(f"wrote {path}: {len(shapes)} tensors, {off / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
