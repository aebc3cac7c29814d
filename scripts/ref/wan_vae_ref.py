"""PyTorch reference of the Wan2.1 VAE (z_dim 16), written for turbodiff's tests.

Follows the behaviour of Wan-Video/Wan2.1 wan/modules/vae.py (causal 3-D convs with front padding, 2-frame feature
caches, 'Rep' marker on the first decoded chunk, encode in chunks of 1, 4, 4, ...). State-dict key names match
Wan2.1_VAE.pth so the same weights load in both. The channel counts are configurable (dim) for tiny test models.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

CACHE_T = 2
MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
        0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
       3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]


class CConv(nn.Conv3d):
    """Causal conv: time padded 2*p in front only; an optional cache of earlier frames replaces part of that pad."""

    def __init__(self, cin, cout, k, stride=1, padding=0):
        super().__init__(cin, cout, k, stride=stride, padding=padding)
        p = self.padding
        self.front = 2 * p[0]
        self.sp = (p[2], p[2], p[1], p[1])
        self.padding = (0, 0, 0)

    def forward(self, x, cache=None):
        front = self.front
        if cache is not None and front > 0:
            x = torch.cat([cache, x], 2)
            front -= cache.shape[2]
        x = F.pad(x, self.sp + (front, 0))
        return super().forward(x)


def cached_call(conv, x, caches, idx):
    """Runs a cached causal conv at slot idx[0] the way Wan does, updating the slot with its input's last frames."""
    i = idx[0]
    new = x[:, :, -CACHE_T:].clone()
    if new.shape[2] < 2 and caches[i] is not None:
        new = torch.cat([caches[i][:, :, -1:], new], 2)
    y = conv(x, caches[i])
    caches[i] = new
    idx[0] += 1
    return y


class RMSNorm(nn.Module):
    def __init__(self, dim, images=True):
        super().__init__()
        self.scale = dim ** 0.5
        self.gamma = nn.Parameter(torch.ones((dim, 1, 1) if images else (dim, 1, 1, 1)))

    def forward(self, x):
        return F.normalize(x, dim=1) * self.scale * self.gamma


class Resample(nn.Module):
    def __init__(self, dim, mode):
        super().__init__()
        self.mode = mode
        if mode.startswith('up'):
            self.resample = nn.Sequential(nn.Upsample(scale_factor=(2., 2.), mode='nearest-exact'),
                                          nn.Conv2d(dim, dim // 2, 3, padding=1))
            if mode == 'upsample3d':
                self.time_conv = CConv(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        else:
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=(2, 2)))
            if mode == 'downsample3d':
                self.time_conv = CConv(dim, dim, (3, 1, 1), stride=(2, 1, 1), padding=(0, 0, 0))

    def forward(self, x, caches, idx):
        b, c, t, h, w = x.shape
        if self.mode == 'upsample3d':
            i = idx[0]
            if caches[i] is None:
                caches[i] = 'Rep'
            else:
                new = x[:, :, -CACHE_T:].clone()
                if new.shape[2] < 2:
                    prev = torch.zeros_like(new) if isinstance(caches[i], str) else caches[i][:, :, -1:]
                    new = torch.cat([prev, new], 2)
                x = self.time_conv(x, None if isinstance(caches[i], str) else caches[i])
                caches[i] = new
                x = x.reshape(b, 2, c, t, h, w).permute(0, 2, 3, 1, 4, 5).reshape(b, c, 2 * t, h, w)
            idx[0] += 1
        t = x.shape[2]
        x = x.permute(0, 2, 1, 3, 4).reshape(b * t, x.shape[1], x.shape[3], x.shape[4])
        x = self.resample(x)
        x = x.reshape(b, t, x.shape[1], x.shape[2], x.shape[3]).permute(0, 2, 1, 3, 4)
        if self.mode == 'downsample3d':
            i = idx[0]
            if caches[i] is None:
                caches[i] = x.clone()
            else:
                new = x[:, :, -1:].clone()
                x = self.time_conv(torch.cat([caches[i][:, :, -1:], x], 2))
                caches[i] = new
            idx[0] += 1
        return x


class ResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.residual = nn.Sequential(RMSNorm(cin, images=False), nn.SiLU(), CConv(cin, cout, 3, padding=1),
                                      RMSNorm(cout, images=False), nn.SiLU(), nn.Dropout(0.0),
                                      CConv(cout, cout, 3, padding=1))
        self.shortcut = CConv(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, caches, idx):
        h = self.shortcut(x)
        for layer in self.residual:
            x = cached_call(layer, x, caches, idx) if isinstance(layer, CConv) else layer(x)
        return x + h


class Attn(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x, caches=None, idx=None):
        b, c, t, h, w = x.shape
        y = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        y = self.to_qkv(self.norm(y)).reshape(b * t, 3 * c, h * w).transpose(1, 2)
        q, k, v = y[..., :c], y[..., c:2 * c], y[..., 2 * c:]
        a = torch.softmax(q @ k.transpose(1, 2) / c ** 0.5, dim=-1) @ v
        y = self.proj(a.transpose(1, 2).reshape(b * t, c, h, w))
        return y.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4) + x


class Encoder(nn.Module):
    def __init__(self, dim, z2, mult, nres, tdown):
        super().__init__()
        dims = [dim * u for u in [1] + mult]
        self.conv1 = CConv(3, dims[0], 3, padding=1)
        blocks = []
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(nres):
                blocks.append(ResBlock(cin, cout))
                cin = cout
            if i != len(mult) - 1:
                blocks.append(Resample(cout, 'downsample3d' if tdown[i] else 'downsample2d'))
        self.downsamples = nn.Sequential(*blocks)
        self.middle = nn.Sequential(ResBlock(cout, cout), Attn(cout), ResBlock(cout, cout))
        self.head = nn.Sequential(RMSNorm(cout, images=False), nn.SiLU(), CConv(cout, z2, 3, padding=1))

    def forward(self, x, caches, idx):
        x = cached_call(self.conv1, x, caches, idx)
        for layer in list(self.downsamples) + list(self.middle):
            x = layer(x, caches, idx)
        for layer in self.head:
            x = cached_call(layer, x, caches, idx) if isinstance(layer, CConv) else layer(x)
        return x


class Decoder(nn.Module):
    def __init__(self, dim, z, mult, nres, tup):
        super().__init__()
        dims = [dim * u for u in [mult[-1]] + mult[::-1]]
        self.conv1 = CConv(z, dims[0], 3, padding=1)
        self.middle = nn.Sequential(ResBlock(dims[0], dims[0]), Attn(dims[0]), ResBlock(dims[0], dims[0]))
        blocks = []
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            if i in (1, 2, 3):
                cin //= 2
            for _ in range(nres + 1):
                blocks.append(ResBlock(cin, cout))
                cin = cout
            if i != len(mult) - 1:
                blocks.append(Resample(cout, 'upsample3d' if tup[i] else 'upsample2d'))
        self.upsamples = nn.Sequential(*blocks)
        self.head = nn.Sequential(RMSNorm(cout, images=False), nn.SiLU(), CConv(cout, 3, 3, padding=1))

    def forward(self, x, caches, idx):
        x = cached_call(self.conv1, x, caches, idx)
        for layer in list(self.middle) + list(self.upsamples):
            x = layer(x, caches, idx)
        for layer in self.head:
            x = cached_call(layer, x, caches, idx) if isinstance(layer, CConv) else layer(x)
        return x


class WanVAERef(nn.Module):
    def __init__(self, dim=96, z_dim=16, mult=(1, 2, 4, 4), nres=2, tdown=(False, True, True)):
        super().__init__()
        mult, tdown = list(mult), list(tdown)
        self.z_dim = z_dim
        self.encoder = Encoder(dim, z_dim * 2, mult, nres, tdown)
        self.conv1 = CConv(z_dim * 2, z_dim * 2, 1)
        self.conv2 = CConv(z_dim, z_dim, 1)
        self.decoder = Decoder(dim, z_dim, mult, nres, tdown[::-1])
        self.register_buffer('mean', torch.tensor(MEAN[:z_dim]), persistent=False)
        self.register_buffer('std', torch.tensor(STD[:z_dim]), persistent=False)

    @torch.no_grad()
    def encode(self, video):
        """video [3, T, H, W] in [-1, 1] (T = 1 + 4n) -> normalised latent [z, 1 + n, H/8, W/8]."""
        x = video[None]
        caches = [None] * 64
        outs = []
        n = 1 + (x.shape[2] - 1) // 4
        for i in range(n):
            chunk = x[:, :, :1] if i == 0 else x[:, :, 1 + 4 * (i - 1):1 + 4 * i]
            outs.append(self.encoder(chunk, caches, [0]))
        mu = self.conv1(torch.cat(outs, 2))[:, :self.z_dim]
        return ((mu - self.mean.view(1, -1, 1, 1, 1)) / self.std.view(1, -1, 1, 1, 1))[0]

    @torch.no_grad()
    def decode(self, z):
        """z [z, T, h, w] normalised -> video [3, 1 + 4(T-1), 8h, 8w] clamped to [-1, 1]."""
        z = z[None] * self.std.view(1, -1, 1, 1, 1) + self.mean.view(1, -1, 1, 1, 1)
        x = self.conv2(z)
        caches = [None] * 64
        outs = [self.decoder(x[:, :, i:i + 1], caches, [0]) for i in range(x.shape[2])]
        return torch.cat(outs, 2).clamp(-1, 1)[0]
