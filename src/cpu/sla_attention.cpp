#include "cpu/sla_attention.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/threads.h"

namespace td {
namespace cpu {

namespace {

struct Dims {
  int64_t L, H, D;
};

Dims check_qkv(const Tensor& q, const Tensor& k, const Tensor& v) {
  for (const Tensor* t : {&q, &k, &v}) {
    TD_CHECK(t->defined() && t->dim() == 3, "attention", "q/k/v must be [L, H, Dh], got ",
             t->defined() ? t->describe() : "none");
    TD_CHECK(t->dtype() == DType::F32 && t->device() == Device::CPU && t->is_contiguous(), "attention",
             "CPU sla expects contiguous f32 host tensors, got ", t->describe());
  }
  TD_CHECK(q.shape() == k.shape() && k.shape() == v.shape(), "attention", "q, k, v shapes differ: ",
           shape_str(q.shape()), " ", shape_str(k.shape()), " ", shape_str(v.shape()));
  TD_CHECK(q.size(0) > 0 && q.size(2) > 0, "attention", "empty q ", shape_str(q.shape()));
  return {q.size(0), q.size(1), q.size(2)};
}

inline int64_t nblocks(int64_t L, int b) { return (L + b - 1) / b; }

void check_table(const Tensor& table, const Dims& d, int bq, int bk) {
  TD_CHECK(table.dtype() == DType::I32 && table.dim() == 3 && table.size(0) == d.H &&
               table.size(1) == nblocks(d.L, bq) && table.is_contiguous(),
           "sla block table", "expected I32 [", d.H, ", ", nblocks(d.L, bq), ", kc], got ", table.describe());
  const int64_t nk = nblocks(d.L, bk);
  const int32_t* p = table.ptr<int32_t>();
  for (int64_t i = 0; i < table.numel(); i++)
    TD_CHECK(p[i] >= 0 && p[i] < nk, "sla block table", "block index ", p[i], " out of range [0, ", nk, ")");
}

// Softmax over the head dim of one row (the linear branch's feature map).
void phi_row(const float* x, float* out, int64_t D) {
  float m = -INFINITY;
  for (int64_t d = 0; d < D; d++) m = std::max(m, x[d]);
  double s = 0;
  for (int64_t d = 0; d < D; d++) s += (out[d] = std::exp(x[d] - m));
  const float inv = float(1.0 / s);
  for (int64_t d = 0; d < D; d++) out[d] *= inv;
}

// int8 quantization as SageAttention's per-block kernels: scale = amax / 127 + 1e-7, round half away from zero.
float quant_scale(float amax) { return amax / 127.f + 1e-7f; }

}  // namespace

int8_t sagesla_quant_i8(float x, float scale) {
  float r = std::round(x / scale);
  return int8_t(std::max(-127.f, std::min(127.f, r)));
}

int sla_topk_count(float topk, int nk) {
  TD_CHECK(std::isfinite(topk) && topk > 0.f && topk <= 1.f, "--topk", "must be in (0, 1], got ", topk);
  int c = int(std::floor(double(topk) * nk + 1e-4));
  return std::max(1, std::min(nk, c));
}

Tensor sla_block_map(const Tensor& q, const Tensor& k, int bq, int bk, float topk, Tensor* scores) {
  Dims d = check_qkv(q, k, k);
  TD_CHECK(bq > 0 && bk > 0, "--block-q/--block-k", "block sizes must be positive, got ", bq, "x", bk);
  const int64_t L = d.L, H = d.H, D = d.D, nq = nblocks(L, bq), nk = nblocks(L, bk);
  const int kc = sla_topk_count(topk, int(nk));
  const float* qp = q.ptr<float>();
  const float* kp = k.ptr<float>();
  // Pooled blocks, [H][n][D]; sums in double then one rounding to f32 (the GPU sums f32 in another order, so
  // scores may differ in the last bits: only near-exact ties can flip).
  std::vector<double> kmean(H * D, 0.0);
  for (int64_t t = 0; t < L; t++)
    for (int64_t i = 0; i < H * D; i++) kmean[i] += kp[t * H * D + i];
  for (auto& x : kmean) x /= double(L);
  std::vector<float> pq(H * nq * D), pk(H * nk * D);
  auto pool = [&](const float* x, int b, int64_t n, const double* sub, std::vector<float>& out) {
    for (int64_t h = 0; h < H; h++)
      for (int64_t j = 0; j < n; j++) {
        const int64_t t0 = j * b, t1 = std::min<int64_t>(L, t0 + b);
        for (int64_t c = 0; c < D; c++) {
          double s = 0;
          for (int64_t t = t0; t < t1; t++) s += x[(t * H + h) * D + c] - (sub ? sub[h * D + c] : 0.0);
          out[(h * n + j) * D + c] = float(s / double(t1 - t0));
        }
      }
  };
  pool(qp, bq, nq, nullptr, pq);
  pool(kp, bk, nk, kmean.data(), pk);

  Tensor table = Tensor::empty({H, nq, kc}, DType::I32);
  if (scores) *scores = Tensor::empty({H, nq, nk}, DType::F32);
  parallel_for(H * nq, [&](int64_t r0, int64_t r1) {
    std::vector<float> s(nk);
    std::vector<int32_t> order(nk);
    for (int64_t r = r0; r < r1; r++) {
      const int64_t h = r / nq, i = r % nq;
      const float* a = &pq[(h * nq + i) * D];
      for (int64_t j = 0; j < nk; j++) {
        const float* b = &pk[(h * nk + j) * D];
        float acc = 0;
        for (int64_t c = 0; c < D; c++) acc += a[c] * b[c];
        s[j] = acc;
      }
      if (scores) std::copy(s.begin(), s.end(), scores->ptr<float>() + r * nk);
      std::iota(order.begin(), order.end(), 0);
      // Higher score first; equal scores: lower block index first (the documented tie rule).
      std::partial_sort(order.begin(), order.begin() + kc, order.end(),
                        [&](int32_t x, int32_t y) { return s[x] > s[y] || (s[x] == s[y] && x < y); });
      std::sort(order.begin(), order.begin() + kc);
      std::copy(order.begin(), order.begin() + kc, table.ptr<int32_t>() + r * kc);
    }
  });
  return table;
}

void sla_sparse(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& table, int bq, int bk, float scale,
                Tensor& o) {
  Dims d = check_qkv(q, k, v);
  check_table(table, d, bq, bk);
  expect_shape(o, q.shape(), "attention output");
  const int64_t L = d.L, H = d.H, D = d.D, nq = nblocks(L, bq), kc = table.size(2);
  const float* qp = q.ptr<float>();
  const float* kp = k.ptr<float>();
  const float* vp = v.ptr<float>();
  float* op = o.ptr<float>();
  parallel_for(H * nq, [&](int64_t r0, int64_t r1) {
    std::vector<float> s(kc * bk);
    std::vector<int64_t> keys(kc * bk);
    std::vector<double> acc(D);
    for (int64_t r = r0; r < r1; r++) {
      const int64_t h = r / nq, i = r % nq;
      const int32_t* sel = table.ptr<int32_t>() + r * kc;
      int64_t nkeys = 0;
      for (int64_t c = 0; c < kc; c++)
        for (int64_t t = int64_t(sel[c]) * bk; t < std::min<int64_t>(L, int64_t(sel[c] + 1) * bk); t++)
          keys[nkeys++] = t;
      for (int64_t tq = i * bq; tq < std::min<int64_t>(L, (i + 1) * bq); tq++) {
        const float* qr = qp + (tq * H + h) * D;
        float m = -INFINITY;
        for (int64_t n = 0; n < nkeys; n++) {
          const float* kr = kp + (keys[n] * H + h) * D;
          float a = 0;
          for (int64_t c = 0; c < D; c++) a += qr[c] * kr[c];
          s[n] = a * scale;
          m = std::max(m, s[n]);
        }
        double l = 0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t n = 0; n < nkeys; n++) {
          const double p = std::exp(double(s[n]) - m);
          l += p;
          const float* vr = vp + (keys[n] * H + h) * D;
          for (int64_t c = 0; c < D; c++) acc[c] += p * vr[c];
        }
        float* orow = op + (tq * H + h) * D;
        for (int64_t c = 0; c < D; c++) orow[c] = float(acc[c] / l);
      }
    }
  });
}

void sagesla_sparse_emulated(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& table, int bq, int bk,
                             float scale, Tensor& o) {
  Dims d = check_qkv(q, k, v);
  check_table(table, d, bq, bk);
  expect_shape(o, q.shape(), "attention output");
  const int64_t L = d.L, H = d.H, D = d.D, nq = nblocks(L, bq), nk = nblocks(L, bk), kc = table.size(2);
  const float* qp = q.ptr<float>();
  const float* kp = k.ptr<float>();
  const float* vp = v.ptr<float>();
  float* op = o.ptr<float>();

  // K smoothing and per-channel V scales need whole-sequence statistics (the GPU's stats pass).
  std::vector<float> kmean(H * D), vscale(H * D);
  {
    std::vector<double> ks(H * D, 0.0);
    std::vector<float> vmax(H * D, 0.f);
    for (int64_t t = 0; t < L; t++)
      for (int64_t i = 0; i < H * D; i++) {
        ks[i] += kp[t * H * D + i];
        vmax[i] = std::max(vmax[i], std::fabs(vp[t * H * D + i]));
      }
    for (int64_t i = 0; i < H * D; i++) {
      kmean[i] = float(ks[i] / double(L));
      vscale[i] = vmax[i] > 0.f ? vmax[i] / 448.f : 1.f;
    }
  }
  // Quantized copies, head-major.
  std::vector<int8_t> qi(H * L * D), ki(H * L * D);
  std::vector<float> qs(H * nq), ksc(H * nk), v8(H * L * D);
  auto quant_blocks = [&](const float* x, const float* sub, int b, int64_t n, std::vector<int8_t>& out,
                          std::vector<float>& sc) {
    for (int64_t h = 0; h < H; h++)
      for (int64_t j = 0; j < n; j++) {
        const int64_t t0 = j * b, t1 = std::min<int64_t>(L, t0 + b);
        float amax = 0;
        for (int64_t t = t0; t < t1; t++)
          for (int64_t c = 0; c < D; c++)
            amax = std::max(amax, std::fabs(x[(t * H + h) * D + c] - (sub ? sub[h * D + c] : 0.f)));
        const float s = quant_scale(amax);
        sc[h * n + j] = s;
        for (int64_t t = t0; t < t1; t++)
          for (int64_t c = 0; c < D; c++)
            out[(h * L + t) * D + c] = sagesla_quant_i8(x[(t * H + h) * D + c] - (sub ? sub[h * D + c] : 0.f), s);
      }
  };
  quant_blocks(qp, nullptr, bq, nq, qi, qs);
  quant_blocks(kp, kmean.data(), bk, nk, ki, ksc);
  for (int64_t h = 0; h < H; h++)
    for (int64_t t = 0; t < L; t++)
      for (int64_t c = 0; c < D; c++)
        v8[(h * L + t) * D + c] = f8e4m3_to_f32(f32_to_f8e4m3(vp[(t * H + h) * D + c] / vscale[h * D + c]));

  const float c2 = scale * 1.4426950408889634f;  // base-2 softmax, as the kernel
  parallel_for(H * nq, [&](int64_t r0, int64_t r1) {
    std::vector<int32_t> sel(kc);
    std::vector<float> s(bk), acc(D), blk(D);
    for (int64_t r = r0; r < r1; r++) {
      const int64_t h = r / nq, i = r % nq;
      std::copy(table.ptr<int32_t>() + r * kc, table.ptr<int32_t>() + (r + 1) * kc, sel.begin());
      std::sort(sel.begin(), sel.end());  // the kernel walks its table in ascending order
      for (int64_t tq = i * bq; tq < std::min<int64_t>(L, (i + 1) * bq); tq++) {
        const int8_t* qr = &qi[(h * L + tq) * D];
        float m = -INFINITY, l = 0;
        std::fill(acc.begin(), acc.end(), 0.f);
        for (int64_t c = 0; c < kc; c++) {
          const int64_t j = sel[c], t0 = j * bk, t1 = std::min<int64_t>(L, t0 + bk);
          const float f = qs[h * nq + i] * ksc[h * nk + j] * c2;
          float bm = -INFINITY;
          for (int64_t t = t0; t < t1; t++) {
            const int8_t* kr = &ki[(h * L + t) * D];
            int32_t a = 0;
            for (int64_t x = 0; x < D; x++) a += int32_t(qr[x]) * int32_t(kr[x]);
            s[t - t0] = float(a) * f;
            bm = std::max(bm, s[t - t0]);
          }
          const float mn = std::max(m, bm);
          const float alpha = std::exp2(m - mn);  // m = -inf on the first block -> 0
          l *= alpha;
          for (int64_t x = 0; x < D; x++) acc[x] *= alpha;
          std::fill(blk.begin(), blk.end(), 0.f);
          for (int64_t t = t0; t < t1; t++) {
            const float p = std::exp2(s[t - t0] - mn);
            l += p;
            const float p8 = f8e4m3_to_f32(f32_to_f8e4m3(p * 448.f));
            const float* vr = &v8[(h * L + t) * D];
            for (int64_t x = 0; x < D; x++) blk[x] += p8 * vr[x];
          }
          for (int64_t x = 0; x < D; x++) acc[x] += blk[x];
          m = mn;
        }
        float* orow = op + (tq * H + h) * D;
        for (int64_t x = 0; x < D; x++) orow[x] = acc[x] * vscale[h * D + x] / (448.f * l);
      }
    }
  });
}

void sla_linear_add(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* w, const Tensor* b, Tensor& o) {
  Dims d = check_qkv(q, k, v);
  expect_shape(o, q.shape(), "attention output");
  const int64_t L = d.L, H = d.H, D = d.D;
  if (w) {
    expect_shape(*w, {D, D}, "proj_l.weight");
    expect_dtype(*w, DType::F32, "proj_l.weight");
  }
  if (b) {
    expect_shape(*b, {D}, "proj_l.bias");
    expect_dtype(*b, DType::F32, "proj_l.bias");
  }
  const float* qp = q.ptr<float>();
  const float* kp = k.ptr<float>();
  const float* vp = v.ptr<float>();
  float* op = o.ptr<float>();
  // Per head: kv = sum_t phi(k_t)^T v_t [D, D], z = sum_t phi(k_t) [D] (double: L may be large).
  std::vector<double> kv(H * D * D, 0.0), z(H * D, 0.0);
  parallel_for(H, [&](int64_t h0, int64_t h1) {
    std::vector<float> pk(D);
    for (int64_t h = h0; h < h1; h++)
      for (int64_t t = 0; t < L; t++) {
        phi_row(kp + (t * H + h) * D, pk.data(), D);
        const float* vr = vp + (t * H + h) * D;
        for (int64_t a = 0; a < D; a++) {
          z[h * D + a] += pk[a];
          double* row = &kv[(h * D + a) * D];
          for (int64_t c = 0; c < D; c++) row[c] += double(pk[a]) * vr[c];
        }
      }
  });
  parallel_for(L * H, [&](int64_t r0, int64_t r1) {
    std::vector<float> pq(D);
    std::vector<double> ol(D);
    for (int64_t r = r0; r < r1; r++) {
      const int64_t h = r % H;
      phi_row(qp + r * D, pq.data(), D);
      double den = 1e-5;
      std::fill(ol.begin(), ol.end(), 0.0);
      for (int64_t a = 0; a < D; a++) {
        den += double(pq[a]) * z[h * D + a];
        const double* row = &kv[(h * D + a) * D];
        for (int64_t c = 0; c < D; c++) ol[c] += double(pq[a]) * row[c];
      }
      for (auto& x : ol) x /= den;
      float* orow = op + r * D;
      for (int64_t n = 0; n < D; n++) {
        double y = w ? 0.0 : ol[n];
        if (w) {
          const float* wr = w->ptr<float>() + n * D;
          for (int64_t c = 0; c < D; c++) y += double(wr[c]) * ol[c];
        }
        if (b) y += b->ptr<float>()[n];
        orow[n] += float(y);
      }
    }
  }, 64);
}

void sla_attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& o, int bq, int bk, float topk,
                   float scale, const Tensor* proj_w, const Tensor* proj_b, bool quantized) {
  Dims d = check_qkv(q, k, v);
  if (scale == 0.f) scale = 1.f / std::sqrt(float(d.D));
  Tensor table = sla_block_map(q, k, bq, bk, topk);
  if (quantized)
    sagesla_sparse_emulated(q, k, v, table, bq, bk, scale, o);
  else
    sla_sparse(q, k, v, table, bq, bk, scale, o);
  sla_linear_add(q, k, v, proj_w, proj_b, o);
}

}  // namespace cpu
}  // namespace td
