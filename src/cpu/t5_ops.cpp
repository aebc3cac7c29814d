#include "cpu/t5_ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "core/threads.h"

namespace td {
namespace cpu {

int t5_relative_bucket(int64_t rel, int num_buckets, int max_dist, bool bidirectional) {
  int nb = num_buckets, bucket = 0;
  int64_t a;
  if (bidirectional) {
    nb = num_buckets / 2;
    bucket = rel > 0 ? nb : 0;
    a = rel < 0 ? -rel : rel;
  } else {
    a = rel < 0 ? -rel : 0;
  }
  int max_exact = nb / 2;
  if (a < max_exact) return bucket + int(a);
  // Same float32 expression as torch: log(a / max_exact) / log(max_dist / max_exact) * (nb - max_exact), truncated.
  float r = std::log(float(a) / float(max_exact)) / float(std::log(double(max_dist) / double(max_exact))) *
            float(nb - max_exact);
  int large = max_exact + int(r);
  return bucket + std::min(large, nb - 1);
}

namespace {

void expect_f32_host(const Tensor& t, const char* what) {
  TD_CHECK(t.defined() && !t.is_cuda() && t.dtype() == DType::F32 && t.is_contiguous(), what,
           "expected a contiguous host f32 tensor, got ", t.defined() ? t.describe() : "none");
}

// Row-block size for widening a weight: ~16 MB of fp32 scratch per block keeps memory flat for the XXL matrices.
int64_t rows_per_block(int64_t K) { return std::max<int64_t>(64, (int64_t(4) << 20) / std::max<int64_t>(K, 1)); }

}  // namespace

T5Matrix t5_quantize_int8(const Tensor& w, int64_t group) {
  TD_CHECK(w.dim() == 2 && w.is_contiguous() && !w.is_cuda(), w.name(), "int8 quantization needs a host 2-D weight, got ",
           w.describe());
  const int64_t N = w.size(0), K = w.size(1);
  TD_CHECK(group > 0 && K % group == 0, w.name(), "int8 group ", group, " does not divide K=", K);
  T5Matrix m;
  m.group = group;
  m.w = Tensor::empty({N, K}, DType::I8).set_name(w.name());
  m.scales = Tensor::empty({N, K / group}, DType::F32);
  int8_t* q = m.w.ptr<int8_t>();
  float* s = m.scales.ptr<float>();
  parallel_for(N, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(K));
    for (int64_t r = r0; r < r1; r++) {
      convert_to_f32(static_cast<const char*>(w.data()) + size_t(r * K) * dtype_size(w.dtype()), w.dtype(), row.data(),
                     size_t(K));
      for (int64_t g = 0; g < K / group; g++) {
        float amax = 0.f;
        for (int64_t j = 0; j < group; j++) amax = std::max(amax, std::fabs(row[size_t(g * group + j)]));
        float sc = amax > 0.f ? amax / 127.f : 1.f;
        s[r * (K / group) + g] = sc;
        float inv = 1.f / sc;
        for (int64_t j = 0; j < group; j++) {
          float v = std::nearbyint(row[size_t(g * group + j)] * inv);
          q[r * K + g * group + j] = int8_t(std::max(-127.f, std::min(127.f, v)));
        }
      }
    }
  }, 16);
  return m;
}

void t5_dequantize_rows(const T5Matrix& m, int64_t r0, int64_t r1, float* dst) {
  const int64_t K = m.cols();
  if (m.w.dtype() == DType::I8) {
    const int8_t* q = m.w.ptr<int8_t>();
    const float* s = m.scales.ptr<float>();
    const int64_t G = m.group, ng = K / G;
    parallel_for(r1 - r0, [&](int64_t a, int64_t b) {
      for (int64_t r = r0 + a; r < r0 + b; r++)
        for (int64_t g = 0; g < ng; g++) {
          float sc = s[r * ng + g];
          for (int64_t j = 0; j < G; j++) dst[(r - r0) * K + g * G + j] = float(q[r * K + g * G + j]) * sc;
        }
    }, 16);
    return;
  }
  const size_t es = dtype_size(m.w.dtype());
  const char* base = static_cast<const char*>(m.w.data());
  parallel_for(r1 - r0, [&](int64_t a, int64_t b) {
    convert_to_f32(base + size_t((r0 + a) * K) * es, m.w.dtype(), dst + a * K, size_t((b - a) * K));
  }, 16);
}

void t5_linear(const Tensor& x, const T5Matrix& w, Tensor& y) {
  expect_f32_host(x, "t5 linear input");
  expect_f32_host(y, "t5 linear output");
  TD_CHECK(w.w.dim() == 2 && w.w.is_contiguous(), w.w.name(), "weight must be a contiguous 2-D tensor, got ", w.w.describe());
  const int64_t N = w.rows(), K = w.cols();
  const int64_t M = x.numel() / std::max<int64_t>(K, 1);
  TD_CHECK(x.size(-1) == K && y.size(-1) == N && y.numel() == M * N, w.w.name(), "shape mismatch: input ", x.describe(),
           ", weight ", w.w.describe(), ", output ", y.describe());
  if (M == 0) return;
  if (w.w.dtype() == DType::F32) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(N), int(K), 1.f, x.ptr<float>(), int(K),
                w.w.ptr<float>(), int(K), 0.f, y.ptr<float>(), int(N));
    return;
  }
  // TODO(t5): switch to td::cpu::linear once it accepts bf16/int8 weights; it takes f32 only today.
  const int64_t rb = std::min(N, rows_per_block(K));
  std::vector<float> scratch(size_t(rb * K));
  for (int64_t r0 = 0; r0 < N; r0 += rb) {
    int64_t r1 = std::min(N, r0 + rb);
    t5_dequantize_rows(w, r0, r1, scratch.data());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(r1 - r0), int(K), 1.f, x.ptr<float>(), int(K),
                scratch.data(), int(K), 0.f, y.ptr<float>() + r0, int(N));
  }
}

void t5_rmsnorm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) {
  expect_f32_host(x, "t5 rmsnorm input");
  expect_f32_host(y, "t5 rmsnorm output");
  const int64_t D = x.size(-1), M = x.numel() / std::max<int64_t>(D, 1);
  TD_CHECK(weight.numel() == D && y.numel() == x.numel(), weight.name(), "rmsnorm weight ", weight.describe(),
           " does not match input ", x.describe());
  std::vector<float> w(static_cast<size_t>(D));
  Tensor wc = weight.to(Device::CPU).contiguous();
  convert_to_f32(wc.data(), wc.dtype(), w.data(), size_t(D));
  const float* xp = x.ptr<float>();
  float* yp = y.ptr<float>();
  parallel_for(M, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      double ss = 0;
      for (int64_t j = 0; j < D; j++) ss += double(xp[r * D + j]) * xp[r * D + j];
      float inv = float(1.0 / std::sqrt(ss / double(D) + double(eps)));
      for (int64_t j = 0; j < D; j++) yp[r * D + j] = xp[r * D + j] * inv * w[size_t(j)];
    }
  });
}

void t5_gated_gelu(Tensor& fc1, const Tensor& gate) {
  expect_f32_host(fc1, "t5 ffn fc1");
  expect_f32_host(gate, "t5 ffn gate");
  TD_CHECK(fc1.numel() == gate.numel(), "t5 ffn", "fc1 ", fc1.describe(), " and gate ", gate.describe(), " differ");
  float* h = fc1.ptr<float>();
  const float* g = gate.ptr<float>();
  parallel_for(fc1.numel(), [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; i++) {
      float v = g[i];
      float gel = 0.5f * v * (1.f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
      h[i] *= gel;
    }
  }, 4096);
}

void t5_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& pos_table, const int32_t* mask,
                  int num_heads, int max_dist, Tensor& o) {
  expect_f32_host(q, "t5 attention q");
  expect_f32_host(k, "t5 attention k");
  expect_f32_host(v, "t5 attention v");
  expect_f32_host(o, "t5 attention output");
  const int64_t L = q.size(0), A = q.size(-1);
  TD_CHECK(num_heads > 0 && A % num_heads == 0, "t5 attention", "width ", A, " is not a multiple of ", num_heads, " heads");
  TD_CHECK(k.numel() == L * A && v.numel() == L * A && o.numel() == L * A, "t5 attention", "q/k/v/o shapes differ");
  TD_CHECK(pos_table.dim() == 2 && pos_table.size(1) == num_heads, pos_table.name(), "relative position table ",
           pos_table.describe(), " must be [num_buckets, ", num_heads, "]");
  const int nb = int(pos_table.size(0));
  const int64_t Dh = A / num_heads;
  Tensor tab = pos_table.to(Device::CPU).contiguous().to(DType::F32);
  // Bias per relative offset (j - i in [-(L-1), L-1]) and head, shared by all rows.
  std::vector<float> bias(size_t(2 * L) * num_heads);
  for (int64_t r = -(L - 1); r <= L - 1; r++) {
    int b = t5_relative_bucket(r, nb, max_dist, true);
    for (int h = 0; h < num_heads; h++) bias[size_t(r + L - 1) * num_heads + h] = tab.ptr<float>()[b * num_heads + h];
  }
  const float* qp = q.ptr<float>();
  const float* kp = k.ptr<float>();
  const float* vp = v.ptr<float>();
  float* op = o.ptr<float>();
  parallel_for(int64_t(num_heads) * L, [&](int64_t a, int64_t b) {
    std::vector<float> p(static_cast<size_t>(L));
    for (int64_t t = a; t < b; t++) {
      int64_t h = t / L, i = t % L;
      const float* qi = qp + i * A + h * Dh;
      float mx = -INFINITY;
      for (int64_t j = 0; j < L; j++) {
        if (mask && mask[j] == 0) {
          p[size_t(j)] = -INFINITY;
          continue;
        }
        const float* kj = kp + j * A + h * Dh;
        float s = 0.f;
        for (int64_t d = 0; d < Dh; d++) s += qi[d] * kj[d];
        s += bias[size_t(j - i + L - 1) * num_heads + h];
        p[size_t(j)] = s;
        mx = std::max(mx, s);
      }
      double den = 0;
      for (int64_t j = 0; j < L; j++) {
        float e = std::isinf(p[size_t(j)]) ? 0.f : std::exp(p[size_t(j)] - mx);
        p[size_t(j)] = e;
        den += e;
      }
      float inv = den > 0 ? float(1.0 / den) : 0.f;
      float* oi = op + i * A + h * Dh;
      for (int64_t d = 0; d < Dh; d++) oi[d] = 0.f;
      for (int64_t j = 0; j < L; j++) {
        float pj = p[size_t(j)] * inv;
        if (pj == 0.f) continue;
        const float* vj = vp + j * A + h * Dh;
        for (int64_t d = 0; d < Dh; d++) oi[d] += pj * vj[d];
      }
    }
  }, 8);
}

}  // namespace cpu
}  // namespace td
