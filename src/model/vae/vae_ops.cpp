#include "model/vae/vae_ops.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "core/log.h"
#include "cpu/vae_attention.h"
#include "cpu/vae_resample.h"
#include "cpu/vae_rms_norm.h"
#ifdef TD_WITH_CUDA
#include "cuda/conv3d.h"
#include "cuda/conv3d_config.h"
#include "cuda/vae_ops.h"
#define TD_VAE_DISPATCH(out, name, ...)     \
  do {                                      \
    if ((out).is_cuda()) {                  \
      ::td::cuda::name(__VA_ARGS__);        \
    } else {                                \
      ::td::cpu::name(__VA_ARGS__);         \
    }                                       \
  } while (0)
#else
#define TD_VAE_DISPATCH(out, name, ...)                                                      \
  do {                                                                                       \
    TD_CHECK(!(out).is_cuda(), "--device cuda", "this turbodiff was built without CUDA");   \
    ::td::cpu::name(__VA_ARGS__);                                                            \
  } while (0)
#endif

namespace td {
namespace vae {

namespace {
struct Bucket {
  double ms = 0;
  int64_t calls = 0;
};
std::mutex g_prof_mu;
std::map<std::string, Bucket> g_prof;
}  // namespace

bool profiling() {
  static const bool on = [] {
    const char* e = std::getenv("TD_VAE_PROFILE");
    return e && *e && std::string(e) != "0";
  }();
  return on;
}

ProfileScope::ProfileScope(const char* bucket) {
  if (!profiling()) return;
  name_ = bucket;
  device_synchronize();
  t0_ = 1e3 * monotonic_seconds();
}
ProfileScope::ProfileScope(std::string bucket) {
  if (!profiling()) return;
  name_ = std::move(bucket);
  device_synchronize();
  t0_ = 1e3 * monotonic_seconds();
}
ProfileScope::~ProfileScope() {
  if (t0_ < 0) return;
  try {
    device_synchronize();
  } catch (...) {  // a destructor must not throw; the error resurfaces at the next sync
  }
  const double dt = 1e3 * monotonic_seconds() - t0_;
  std::lock_guard<std::mutex> lk(g_prof_mu);
  Bucket& b = g_prof[name_];
  b.ms += dt;
  b.calls++;
}

void profile_reset() {
  std::lock_guard<std::mutex> lk(g_prof_mu);
  g_prof.clear();
}

std::string profile_report() {
  std::lock_guard<std::mutex> lk(g_prof_mu);
  if (g_prof.empty()) return {};
  std::vector<std::pair<std::string, Bucket>> v(g_prof.begin(), g_prof.end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
  double total = 0;
  for (const auto& e : v) total += e.second.ms;
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "  profile: %.1f ms in %zu buckets\n", total, v.size());
  out += line;
  for (const auto& e : v) {
    std::snprintf(line, sizeof line, "    %8.1f ms %5.1f%% %6lld calls  %s\n", e.second.ms, 100.0 * e.second.ms / total,
                  (long long)e.second.calls, e.first.c_str());
    out += line;
  }
  return out;
}

namespace {
// Buckets convs by problem: kernel, channels and output size (frames vary with the chunking, so they are left out).
std::string conv_bucket(const Tensor& x, const Tensor& w, const Tensor& y) {
  return cat("conv ", w.size(1), "x", w.size(2), "x", w.size(3), " ", x.size(3), "->", w.size(0), " @", y.size(1),
             "x", y.size(2));
}
std::string hw_bucket(const char* what, const Tensor& t) {
  return t.dim() == 4 ? cat(what, " @", t.size(1), "x", t.size(2), "x", t.size(3)) : std::string(what);
}
}  // namespace

void conv3d(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, const Conv3dParams& p, bool accumulate) {
  ProfileScope ps(profiling() ? conv_bucket(x, w, y) : std::string());
  TD_VAE_DISPATCH(y, conv3d, x, w, bias, y, p, accumulate);
}
void rms_norm(const Tensor& x, const Tensor& gamma, const Tensor* pre_bias, bool silu, Tensor& y) {
  ProfileScope ps(profiling() ? hw_bucket("rms_norm", x) : std::string());
  TD_VAE_DISPATCH(y, vae_rms_norm, x, gamma, pre_bias, silu, y);
}
void attention(const Tensor& qkv, Tensor& o) {
  ProfileScope ps("attention core");
  TD_VAE_DISPATCH(o, vae_attention, qkv, o);
}
void upsample_nearest2x(const Tensor& x, Tensor& y) {
  ProfileScope ps("upsample");
  TD_VAE_DISPATCH(y, vae_upsample_nearest2x, x, y);
}
void time_interleave(const Tensor& x, Tensor& y) {
  ProfileScope ps("time_interleave");
  TD_VAE_DISPATCH(y, vae_time_interleave, x, y);
}
void phase_shuffle(const Tensor& x, Tensor& y) {
  ProfileScope ps(profiling() ? hw_bucket("phase_shuffle", y) : std::string());
  TD_VAE_DISPATCH(y, vae_phase_shuffle, x, y);
}
bool conv_subpixel_shuffled(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv3dParams& p, Tensor& y) {
#ifdef TD_WITH_CUDA
  if (y.is_cuda()) {
    ProfileScope ps(profiling() ? cat(conv_bucket(x, w, y), " (sub-pixel, shuffle fused)") : std::string());
    return cuda::conv3d_subpixel_shuffled(x, w, bias, y, p);
  }
#endif
  (void)x, (void)w, (void)bias, (void)p;
  return false;
}
void zero(Tensor& x) {
  ProfileScope ps("zero");
  TD_VAE_DISPATCH(x, vae_zero, x);
}

void conv3d_causal(const Tensor& hist, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y,
                   const Conv3dParams& p, bool accumulate) {
  ProfileScope ps(profiling() ? conv_bucket(x, w, y) + " (causal, in place)" : std::string());
#ifdef TD_WITH_CUDA
  if (y.is_cuda()) return cuda::conv3d_causal(hist, x, w, bias, y, p, accumulate);
#endif
  Shape bs = x.shape();
  bs[0] += 2;
  Tensor buf = Tensor::zeros(bs, x.dtype(), x.device());
  const int64_t cf = hist.defined() ? hist.size(0) : 0;
  if (cf) buf.slice(0, 2 - cf, 2).copy_from(hist);
  buf.slice(0, 2, bs[0]).copy_from(x);
  TD_VAE_DISPATCH(y, conv3d, buf, w, bias, y, p, accumulate);
}

bool causal_direct(const Tensor& w) {
#ifdef TD_WITH_CUDA
  if (w.is_cuda()) return cuda::conv3d_causal_direct(w);
#endif
  (void)w;
  return false;
}

bool ring_ok(Device dev, int64_t C, int64_t O) {
  const char* e = std::getenv("TD_VAE_RING");  // read per call: only model loads ask, and tests toggle it
  const std::string v = e ? e : "";
  if (dev == Device::CPU) return v == "1";
#ifdef TD_WITH_CUDA
  if (v == "0") return false;
  const char* m = std::getenv("TD_VAE_RING_MAX_CH");
  const int64_t max_ch = m && *m ? std::atol(m) : cuda::conv3d_config::kRingMaxChannels;
  return cuda::vae_ring_norm_ok(C) && O % 8 == 0 && C <= max_ch && O <= max_ch;
#else
  (void)C;
  (void)O;
  return false;
#endif
}

void rms_norm_ring(const Tensor& x, const Tensor& gamma, const Tensor* pre_bias, bool silu, Tensor& ring, int slot) {
  ProfileScope ps(profiling() ? hw_bucket("rms_norm (ring)", x) : std::string());
#ifdef TD_WITH_CUDA
  if (ring.is_cuda()) return cuda::vae_rms_norm_ring(x, gamma, pre_bias, silu, ring, slot);
#endif
  const int64_t C = x.size(-1), rows = x.numel() / C;
  TD_CHECK(ring.size(-1) == 3 * C && ring.numel() == 3 * x.numel() && slot >= 0 && slot < 3 && ring.is_contiguous(),
           "rms_norm_ring", "x ", shape_str(x.shape()), " does not fit ring ", shape_str(ring.shape()));
  Tensor tmp = Tensor::empty(x.shape(), x.dtype(), x.device());
  cpu::vae_rms_norm(x, gamma, pre_bias, silu, tmp);
  const float* src = tmp.ptr<float>();
  float* dst = ring.ptr<float>() + slot * C;
  for (int64_t r = 0; r < rows; r++) std::copy(src + r * C, src + (r + 1) * C, dst + r * 3 * C);
}

void conv_ring(const Tensor& ring, const Tensor& w_rot, const Tensor* bias, Tensor& y, const Conv3dParams& p,
               bool accumulate) {
  ProfileScope ps(profiling() ? conv_bucket(ring, w_rot, y) + " (ring)" : std::string());
#ifdef TD_WITH_CUDA
  if (y.is_cuda()) return cuda::conv3d_ring(ring, w_rot, bias, y, p, accumulate);
#endif
  cpu::conv3d(ring, w_rot, bias, y, p, accumulate);
}

bool conv_ring_norm(const Tensor& ring, const Tensor& w_rot, const Tensor* bias, const Tensor& gamma, Tensor& ring_out,
                    int slot, const Conv3dParams& p) {
#ifdef TD_WITH_CUDA
  if (ring_out.is_cuda()) {
    ProfileScope ps(profiling() ? cat(conv_bucket(ring, w_rot, ring_out), " (ring, norm fused)") : std::string());
    return cuda::conv3d_ring_norm(ring, w_rot, bias, gamma, ring_out, slot, p);
  }
#endif
  (void)ring, (void)w_rot, (void)bias, (void)gamma, (void)slot, (void)p;
  return false;
}

bool conv_ring_res_norm(const Tensor& ring, const Tensor& w_rot, const Tensor* bias, Tensor& y, const Tensor& gamma,
                        const Tensor* pre_bias, Tensor& ring_out, int slot, const Conv3dParams& p) {
#ifdef TD_WITH_CUDA
  if (ring_out.is_cuda()) {
    ProfileScope ps(profiling() ? cat(conv_bucket(ring, w_rot, ring_out), " (ring, residual + norm fused)")
                                : std::string());
    return cuda::conv3d_ring_norm(ring, w_rot, bias, gamma, ring_out, slot, p, &y, pre_bias);
  }
#endif
  (void)ring, (void)w_rot, (void)bias, (void)y, (void)gamma, (void)pre_bias, (void)slot, (void)p;
  return false;
}

}  // namespace vae
}  // namespace td
