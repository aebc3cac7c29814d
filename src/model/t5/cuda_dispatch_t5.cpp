// CUDA side of the umT5 encoder (compiled only in CUDA builds; see DEVNOTES.md). GEMMs go through ops::linear
// (cuBLASLt, bf16 in, bf16 or f32 out); the rest are the kernels in cuda/t5_kernels.h. The residual stream stays f32.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "core/log.h"
#include "cuda/t5_kernels.h"
#include "model/t5/t5_encoder.h"
#include "ops/ops.h"

namespace td {

namespace {

int64_t group_for(int64_t K, int64_t want) { return (want > 0 && K % want == 0) ? want : K; }

// One source block of rows of a device matrix: a host tensor to upload, or random values of a given std.
struct Part {
  Tensor host;
  int64_t rows = 0;
  float stdev = 0.f;
};

Tensor host_bf16(const Tensor& t) { return t.dtype() == DType::BF16 ? t.contiguous() : t.contiguous().to(DType::BF16); }

// Builds a [sum(rows), K] device matrix (bf16, or INT8 + scales) from parts stacked along the rows.
cpu::T5Matrix device_matrix(const std::vector<Part>& parts, int64_t K, const T5Options& opt, uint64_t* seed,
                            const std::string& name) {
  int64_t N = 0;
  for (const auto& p : parts) N += p.rows;
  cpu::T5Matrix m;
  if (!opt.int8) {
    m.w = Tensor::empty({N, K}, DType::BF16, Device::CUDA).set_name(name);
  } else {
    m.group = group_for(K, opt.int8_group);
    m.w = Tensor::empty({N, K}, DType::I8, Device::CUDA).set_name(name);
    m.scales = Tensor::empty({N, K / m.group}, DType::F32, Device::CUDA);
  }
  int64_t r0 = 0;
  for (const auto& p : parts) {
    Tensor dst_bf16;
    if (!opt.int8) {
      dst_bf16 = m.w.slice(0, r0, r0 + p.rows);
    } else {
      dst_bf16 = Tensor::empty({p.rows, K}, DType::BF16, Device::CUDA);
    }
    if (p.host.defined()) {
      dst_bf16.copy_from(host_bf16(p.host));
    } else {
      cuda::t5_fill_uniform(dst_bf16, (*seed)++, p.stdev * std::sqrt(3.f));
    }
    if (opt.int8) {
      Tensor q = m.w.slice(0, r0, r0 + p.rows), s = m.scales.slice(0, r0, r0 + p.rows);
      cuda::t5_quantize_int8(dst_bf16, m.group, q, s);
    }
    r0 += p.rows;
  }
  return m;
}

Tensor device_f32(const Tensor& host) { return host.contiguous().to(DType::F32).to(Device::CUDA); }

}  // namespace

void T5Encoder::upload_cuda() {
  TD_CHECK(cuda_available(), "--device cuda", "no usable CUDA device for the T5 encoder");
  const int64_t D = cfg_.dim, A = cfg_.dim_attn, F = cfg_.dim_ffn;
  const bool rnd = random_embedding_;
  uint64_t seed = random_seed_ * 1000003ull + 17;
  auto pd = [](double v) { return float(v); };
  if (rnd) layers_.resize(size_t(cfg_.num_layers));
  for (int l = 0; l < cfg_.num_layers; l++) {
    Layer& L = layers_[size_t(l)];
    std::string nm = cat("blocks.", l, ".");
    auto part = [&](const cpu::T5Matrix& h, int64_t rows, double stdev) {
      Part p;
      if (!rnd) p.host = h.w;
      p.rows = rows;
      p.stdev = pd(stdev);
      return p;
    };
    L.qkv = device_matrix({part(L.q, A, std::pow(double(D) * A, -0.5)), part(L.k, A, std::pow(double(D), -0.5)),
                           part(L.v, A, std::pow(double(D), -0.5))},
                          D, opt_, &seed, nm + "attn.qkv");
    L.o_d = device_matrix({part(L.o, D, std::pow(double(cfg_.num_heads) * A, -0.5))}, A, opt_, &seed, nm + "attn.o");
    L.gatefc1 = device_matrix({part(L.gate, F, std::pow(double(D), -0.5)), part(L.fc1, F, std::pow(double(D), -0.5))}, D,
                              opt_, &seed, nm + "ffn.gate|fc1");
    L.fc2_d = device_matrix({part(L.fc2, D, std::pow(double(F), -0.5))}, F, opt_, &seed, nm + "ffn.fc2");
    if (rnd) {
      L.norm1 = Tensor::from_f32({D}, std::vector<float>(size_t(D), 1.f)).to(Device::CUDA);
      L.norm2 = L.norm1;
      L.pos = Tensor::empty({cfg_.num_buckets, cfg_.num_heads}, DType::F32, Device::CUDA);
      cuda::t5_fill_uniform(L.pos, seed++, pd(std::pow(2.0 * cfg_.num_buckets * cfg_.num_heads, -0.5) * std::sqrt(3.0)));
    } else {
      L.norm1 = device_f32(L.norm1);
      L.norm2 = device_f32(L.norm2);
      L.pos = device_f32(L.pos);
    }
    // The host copies (mmapped pages) are no longer needed.
    L.q = L.k = L.v = L.o = L.gate = L.fc1 = L.fc2 = cpu::T5Matrix();
  }
  final_norm_ = rnd ? Tensor::from_f32({D}, std::vector<float>(size_t(D), 1.f)).to(Device::CUDA) : device_f32(final_norm_);
  device_synchronize();
}

Tensor T5Encoder::forward_cuda(const std::vector<int32_t>& ids, const int32_t* mask) {
  const int64_t L = int64_t(ids.size()), D = cfg_.dim, A = cfg_.dim_attn, F = cfg_.dim_ffn;
  const Device dev = Device::CUDA;
  Tensor x;
  if (random_embedding_) {
    // Benchmarks: the same rows as the host gather, without hashing L x dim values on one CPU core per prompt.
    Tensor ids_h = Tensor::empty({L}, DType::I32);
    for (int64_t i = 0; i < L; i++) {
      const int32_t id = ids[size_t(i)];
      TD_CHECK(id >= 0 && id < cfg_.vocab, "token ids", "id ", id, " at position ", i,
               " is outside the embedding table (", cfg_.vocab, " rows)");
      ids_h.ptr<int32_t>()[i] = id;
    }
    x = Tensor::empty({L, D}, DType::F32, dev);
    cuda::t5_embed_random(ids_h.to(dev), random_seed_, std::sqrt(3.f), x);
  } else {
    x = embed(ids).to(dev);
  }
  Tensor buckets_h = Tensor::empty({2 * L - 1}, DType::I32);
  for (int64_t r = -(L - 1); r <= L - 1; r++)
    buckets_h.ptr<int32_t>()[r + L - 1] = cpu::t5_relative_bucket(r, cfg_.num_buckets, cfg_.max_dist, true);
  Tensor buckets = buckets_h.to(dev);
  Tensor mask_d;
  if (mask) {
    Tensor mh = Tensor::empty({L}, DType::I32);
    for (int64_t i = 0; i < L; i++) mh.ptr<int32_t>()[i] = mask[i];
    mask_d = mh.to(dev);
  }
  Tensor xn = Tensor::empty({L, D}, DType::BF16, dev);
  Tensor qkv = Tensor::empty({L, 3 * A}, DType::BF16, dev);
  Tensor att = Tensor::empty({L, A}, DType::BF16, dev);
  Tensor y = Tensor::empty({L, D}, DType::F32, dev);
  Tensor h = Tensor::empty({L, 2 * F}, DType::BF16, dev);
  Tensor g = Tensor::empty({L, F}, DType::BF16, dev);
  // INT8: each matrix is widened to bf16 on a side stream one GEMM ahead (see cuda::T5Int8Widener), so the
  // widening overlaps the previous GEMM instead of running between GEMMs.
  std::vector<const cpu::T5Matrix*> order;
  std::unique_ptr<cuda::T5Int8Widener> widen;
  int64_t next_linear = 0;
  if (opt_.int8) {
    for (auto& Ly : layers_)
      for (const cpu::T5Matrix* m : {&Ly.qkv, &Ly.o_d, &Ly.gatefc1, &Ly.fc2_d}) order.push_back(m);
    int64_t most = 0;
    for (const cpu::T5Matrix* m : order) most = std::max(most, m->rows() * m->cols());
    widen = std::make_unique<cuda::T5Int8Widener>(most);
    if (!order.empty()) widen->enqueue(0, order[0]->w, order[0]->scales, order[0]->group);
  }
  auto linear = [&](const Tensor& in, const cpu::T5Matrix& m, Tensor& out) {
    if (m.w.dtype() == DType::I8) {
      const int64_t n = next_linear++;
      TD_ASSERT(n < int64_t(order.size()) && order[size_t(n)] == &m);
      if (n + 1 < int64_t(order.size())) {
        const cpu::T5Matrix& nx = *order[size_t(n + 1)];
        widen->enqueue(n + 1, nx.w, nx.scales, nx.group);
      }
      Tensor w = widen->acquire(n);
      ops::linear(in, w, nullptr, out);
      widen->release(n);
    } else {
      ops::linear(in, m.w, nullptr, out);
    }
  };
  for (auto& Ly : layers_) {
    cuda::t5_rmsnorm(x, Ly.norm1, cfg_.eps, xn);
    linear(xn, Ly.qkv, qkv);
    cuda::t5_attention(qkv, Ly.pos, buckets, mask ? &mask_d : nullptr, cfg_.num_heads, att);
    linear(att, Ly.o_d, y);
    cuda::t5_add_inplace(x, y);
    cuda::t5_rmsnorm(x, Ly.norm2, cfg_.eps, xn);
    linear(xn, Ly.gatefc1, h);
    cuda::t5_gated_gelu(h, g);
    linear(g, Ly.fc2_d, y);
    cuda::t5_add_inplace(x, y);
  }
  Tensor out = Tensor::empty({L, D}, DType::F32, dev);
  cuda::t5_rmsnorm(x, final_norm_, cfg_.eps, out);
  return out.to(Device::CPU);
}

}  // namespace td
