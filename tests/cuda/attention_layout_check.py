# Host-side check of the index math in src/cuda/attention.cu (no GPU needed): emulates the swizzled shared-memory
# tiles, ldmatrix(.trans) x4 and mma.m16n8k16 fragment layouts (PTX ISA) for one warp and one tile, and checks
# S = Q K^T and O = P V against numpy plus the absence of bank conflicts in every ldmatrix phase.
# Run: python3 tests/cuda/attention_layout_check.py  (keep it in sync with the kernel when tiles/offsets change)
import numpy as np
rng = np.random.default_rng(0)

def swz(D, row, chunk): return row * D + ((chunk ^ (row & 7)) << 3)

def store_tile(M, D):  # M [rows, D] -> smem flat (element units)
    rows = M.shape[0]
    s = np.full(rows * D, np.nan)
    for r in range(rows):
        for c in range(D // 8):
            o = swz(D, r, c)
            s[o:o+8] = M[r, c*8:c*8+8]
    return s

def ldmatrix_x4(s, addrs_bytes, trans=False):
    # addrs_bytes[lane]: byte address of row (lane%8) of matrix lane//8
    out = np.zeros((32, 4, 2))
    for m in range(4):
        mat = np.array([s[addrs_bytes[8*m + r]//2 : addrs_bytes[8*m + r]//2 + 8] for r in range(8)])
        if trans: mat = mat.T
        for t in range(32):
            out[t, m, 0] = mat[t // 4, 2 * (t % 4)]
            out[t, m, 1] = mat[t // 4, 2 * (t % 4) + 1]
    return out

def mma(c, a, b0, b1):
    # c [32,4], a [32,4,2], b0,b1 [32,2]
    A = np.zeros((16, 16)); B = np.zeros((16, 8))
    for t in range(32):
        g, q = t // 4, t % 4
        A[g, 2*q:2*q+2] = a[t, 0]; A[g+8, 2*q:2*q+2] = a[t, 1]
        A[g, 2*q+8:2*q+10] = a[t, 2]; A[g+8, 2*q+8:2*q+10] = a[t, 3]
        B[2*q:2*q+2, g] = b0[t]; B[2*q+8:2*q+10, g] = b1[t]
    C = A @ B
    for t in range(32):
        g, q = t // 4, t % 4
        c[t, 0] += C[g, 2*q]; c[t, 1] += C[g, 2*q+1]; c[t, 2] += C[g+8, 2*q]; c[t, 3] += C[g+8, 2*q+1]

def run(D, BM, BN, WARPS, warp):
    MT = BM // WARPS // 16; NT = BN // 8; DT = D // 8
    Q = rng.standard_normal((BM, D)); K = rng.standard_normal((BN, D)); V = rng.standard_normal((BN, D))
    sQ, sK, sV = store_tile(Q, D), store_tile(K, D), store_tile(V, D)
    lanes = np.arange(32)
    wrow = warp * MT * 16
    q_off0 = np.array([swz(D, wrow + (l & 7) + ((l >> 3) & 1) * 8, l >> 4) * 2 for l in lanes])
    k_off0 = np.array([swz(D, (l & 7) + (l >> 4) * 8, (l >> 3) & 1) * 2 for l in lanes])
    v_off0 = np.array([swz(D, (l & 7) + ((l >> 3) & 1) * 8, l >> 4) * 2 for l in lanes])
    s = np.zeros((MT, NT, 32, 4))
    for kk in range(D // 16):
        a = [ldmatrix_x4(sQ, mt * 16 * D * 2 + (q_off0 ^ (kk * 2 << 4))) for mt in range(MT)]
        for np_ in range(NT // 2):
            b = ldmatrix_x4(sK, np_ * 16 * D * 2 + (k_off0 ^ (kk * 2 << 4)))
            for mt in range(MT):
                mma(s[mt, 2*np_], a[mt], b[:, 0], b[:, 1])
                mma(s[mt, 2*np_+1], a[mt], b[:, 2], b[:, 3])
    S = Q @ K.T
    err = 0
    for mt in range(MT):
        for nt in range(NT):
            for t in range(32):
                g, q = t // 4, t % 4
                r0 = wrow + mt * 16 + g
                c0 = nt * 8 + 2 * q
                err = max(err, abs(s[mt, nt, t, 0] - S[r0, c0]), abs(s[mt, nt, t, 1] - S[r0, c0+1]),
                          abs(s[mt, nt, t, 2] - S[r0+8, c0]), abs(s[mt, nt, t, 3] - S[r0+8, c0+1]))
    # PV with P = s (no softmax; tests the fragment reuse)
    acc = np.zeros((MT, DT, 32, 4))
    for kk in range(BN // 16):
        a = []
        for mt in range(MT):
            am = np.zeros((32, 4, 2))
            am[:, 0] = s[mt, 2*kk][:, 0:2]; am[:, 1] = s[mt, 2*kk][:, 2:4]
            am[:, 2] = s[mt, 2*kk+1][:, 0:2]; am[:, 3] = s[mt, 2*kk+1][:, 2:4]
            a.append(am)
        for dp in range(D // 16):
            b = ldmatrix_x4(sV, kk * 16 * D * 2 + (v_off0 ^ (dp * 2 << 4)), trans=True)
            for mt in range(MT):
                mma(acc[mt, 2*dp], a[mt], b[:, 0], b[:, 1])
                mma(acc[mt, 2*dp+1], a[mt], b[:, 2], b[:, 3])
    O = S @ V
    err2 = 0
    for mt in range(MT):
        for dt in range(DT):
            for t in range(32):
                g, q = t // 4, t % 4
                r0 = wrow + mt * 16 + g; c0 = dt * 8 + 2 * q
                err2 = max(err2, abs(acc[mt, dt, t, 0] - O[r0, c0]), abs(acc[mt, dt, t, 3] - O[r0+8, c0+1]))
    # bank-conflict check: each ldmatrix phase (8 lanes) must hit 8 distinct 16B bank groups
    def conflicts(addrs):
        bad = 0
        for m in range(4):
            banks = [(addrs[8*m + r] // 16) % 8 for r in range(8)]
            bad += len(banks) - len(set(banks))
        return bad
    cf = conflicts(q_off0) + conflicts(k_off0) + conflicts(v_off0) + conflicts(k_off0 ^ (2 << 4))
    print(f"D={D} BM={BM} BN={BN} W={WARPS} warp={warp}: S err {err:.2e}, O err {err2:.2e}, bank conflicts {cf}")
    assert err < 1e-9 and err2 < 1e-9 and cf == 0, "fragment mapping or swizzle is wrong"

for cfg in [(128, 128, 64, 4, 0), (128, 128, 64, 4, 3), (64, 128, 64, 4, 1), (128, 128, 32, 4, 2), (128, 128, 64, 8, 5), (64, 128, 64, 8, 7), (128, 64, 64, 4, 1)]:
    run(*cfg)
