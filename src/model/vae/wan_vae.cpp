#include "model/vae/wan_vae.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "core/allocator.h"
#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"
#include "model/vae/vae_ops.h"
#ifdef TD_WITH_CUDA
#include "cuda/vae_ops.h"
#endif

namespace td {

const float kWanVaeMean[16] = {-0.7571f, -0.7089f, -0.9113f, 0.1075f,  -0.1745f, 0.9653f, -0.1517f, 1.5508f,
                               0.4134f,  -0.0715f, 0.5517f,  -0.3632f, -0.1922f, -0.9497f, 0.2503f, -0.2921f};
const float kWanVaeStd[16] = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
                              3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};

VaeConfig VaeConfig::from_weights(const TensorMap& w) {
  VaeConfig c;
  if (const Tensor* g = w.find("decoder.head.0.gamma")) c.dim = int(g->size(0));
  else if (const Tensor* e = w.find("encoder.conv1.weight")) c.dim = int(e->size(0));
  else fail(w.source, "not a Wan VAE checkpoint: neither decoder.head.0.gamma nor encoder.conv1.weight is present");
  if (const Tensor* z = w.find("conv2.weight")) c.z_dim = int(z->size(0));
  else if (const Tensor* z1 = w.find("conv1.weight")) c.z_dim = int(z1->size(0) / 2);
  return c;
}

namespace {

// RGB channel count of the decoder's output and the encoder's input on CUDA (3 real + zero channels; see
// Loader::conv). The CPU path uses 3.
constexpr int64_t kRgbPadded = 8;

struct Conv {
  Tensor w, b;  // w [O, kt, kh, kw, I] in the device dtype; b [O] f32
  // Where the device runs this causal 3x3x3 conv on a frame ring (vae::ring_ok): [3, O, 1, kh, kw, 3I], for rotation
  // r = t % 3 the time taps placed at the ring slots: slot s holds frame t - 2 + dt with dt = (s - r + 2) % 3.
  Tensor ring_w;
  int kt = 1;
  Conv3dParams p;
  bool defined() const { return w.defined(); }
};

struct Res {
  Tensor g1, g2;  // f32 [C]
  Conv c1, c2, sc;
  // Deferred biases (the decoder's last stage, see load): c2's bias is not added to the output (defer_out), and
  // norm1 adds defer_in, the sum of the biases the blocks before it deferred. Saves one pass over the largest
  // activations per block; the final sum goes into the head norm.
  Tensor defer_in;
  bool defer_out = false;
};

struct Attn {
  Tensor g;
  Conv qkv, proj;
};

enum class Mode { Up2d, Up3d, Down2d, Down3d };
struct Resample {
  Mode mode;
  Conv conv, time_conv;
};

struct Block {
  bool is_res = true;
  Res res;
  Resample rs;
};

// Per-call state: the 2-frame caches, indexed in call order (identical for every chunk), and whether a slot has
// seen its first chunk.
struct Run {
  std::vector<Tensor> slot;
  std::vector<char> started;
  std::vector<int64_t> frames;  // frames a ring slot has seen (its rotation is frames % 3)
  size_t idx = 0;
  void begin_chunk() { idx = 0; }
  size_t next() {
    if (idx == slot.size()) {
      slot.emplace_back();
      started.push_back(0);
      frames.push_back(0);
    }
    return idx++;
  }
};

class Loader {
 public:
  Loader(const TensorMap& m, Device dev) : m_(m), dev_(dev) {}
  // Generating mode: every tensor asked for is created at random (and recorded in *gen) instead of read.
  Loader(TensorMap* gen, uint64_t seed) : m_(*gen), dev_(Device::CPU), gen_(gen), rng_(seed) {}

  const Tensor& fetch(const std::string& name, const Shape& want) {
    if (!gen_) return m_.get(name);
    Tensor t = Tensor::empty(want, DType::F32);
    std::normal_distribution<float> nd(0.f, 1.f);
    const bool gamma = name.size() > 5 && name.compare(name.size() - 5, 5, "gamma") == 0;
    const bool bias = name.size() > 4 && name.compare(name.size() - 4, 4, "bias") == 0;
    // Scaled so activations stay O(1) through the stack (fan-in init); gammas near 1.
    const float sd = gamma ? 0.2f : bias ? 0.05f : 1.f / std::sqrt(float(t.numel() / want[0]));
    float* p = t.ptr<float>();
    for (int64_t i = 0; i < t.numel(); i++) p[i] = (gamma ? 1.f : 0.f) + sd * nd(rng_);
    gen_->put(name, t);
    return gen_->get(name);
  }

  // A conv weight [O, I, (kt,) kh, kw] -> channels-last [O, kt, kh, kw, I] in the device dtype. On CUDA, cuda_o /
  // cuda_i (if larger) zero-pad the output / input channels: the 3-channel ends of the model (encoder input, decoder
  // output) run as 8-channel convs there, since cuDNN's bf16 channels-last kernels want channel counts in multiples
  // of 8 and otherwise fall back to slow paths. The padded outputs are zero; the padded inputs must be zero too.
  Conv conv(const std::string& prefix, int64_t O, int64_t I, int kt, int kh, int kw, const Conv3dParams& p = {},
            int64_t cuda_o = 0, int64_t cuda_i = 0) {
    const std::string wn = prefix + ".weight", bn = prefix + ".bias";
    Shape want = kt == 0 ? Shape{O, I, kh, kw} : Shape{O, I, kt, kh, kw};
    const Tensor& w = fetch(wn, want);
    TD_CHECK(w.shape() == want, m_.source, "tensor ", wn, " has shape ", shape_str(w.shape()), ", expected ",
             shape_str(want), " (is this a Wan2.1 VAE with the configured channel counts?)");
    int KT = kt == 0 ? 1 : kt;
    Tensor cl = channels_last(w, O, I, KT * kh * kw, KT, kh, kw);
    Conv c;
    const int64_t Op = dev_ == Device::CUDA ? std::max(O, cuda_o) : O;
    const int64_t Ip = dev_ == Device::CUDA ? std::max(I, cuda_i) : I;
    if (Op != O || Ip != I) {
      Tensor big = Tensor::zeros({Op, KT, kh, kw, Ip}, DType::F32);
      const int64_t K = int64_t(KT) * kh * kw;
      for (int64_t r = 0; r < O * K; r++)
        std::memcpy(big.ptr<float>() + r * Ip, cl.ptr<float>() + r * I, size_t(I) * sizeof(float));
      cl = big;
    }
    c.w = on_device(cl, true).set_name(wn);
    if (KT == 3 && kh == 3 && kw == 3 && p.stride_t == 1 && vae::ring_ok(dev_, Ip, Op))
      c.ring_w = on_device(ring_weights(cl, Op, Ip), true).set_name(wn + " (ring)");
    c.b = vec(bn, O);
    if (Op != O) {
      Tensor b = Tensor::zeros({Op}, DType::F32);
      std::memcpy(b.ptr<float>(), c.b.to(Device::CPU).ptr<float>(), size_t(O) * sizeof(float));
      c.b = on_device(b, false).set_name(bn + " (padded)");
    }
    c.kt = KT;
    c.p = p;
    return c;
  }
  // [O, 3, 3, 3, I] -> [3, O, 1, 3, 3, 3I]: per rotation r, tap dt goes to ring slot (r + dt + 1) % 3 (the slot of
  // frame t - 2 + dt when t % 3 == r).
  static Tensor ring_weights(const Tensor& cl, int64_t O, int64_t I) {
    Tensor rw = Tensor::empty({3, O, 1, 3, 3, 3 * I}, DType::F32);
    const float* s = cl.ptr<float>();
    float* d = rw.ptr<float>();
    for (int r = 0; r < 3; r++)
      for (int64_t o = 0; o < O; o++)
        for (int dt = 0; dt < 3; dt++) {
          const int slot = (r + dt + 1) % 3;
          for (int k = 0; k < 9; k++)
            std::memcpy(d + ((r * O + o) * 9 + k) * 3 * I + slot * I, s + ((o * 3 + dt) * 9 + k) * I,
                        size_t(I) * sizeof(float));
        }
    return rw;
  }
  static Tensor channels_last(const Tensor& w, int64_t O, int64_t I, int64_t K, int kt, int kh, int kw) {
    Tensor f = w.to_f32_host().contiguous();
    Tensor cl = Tensor::empty({O, kt, kh, kw, I}, DType::F32);
    const float* s = f.ptr<float>();
    float* d = cl.ptr<float>();
    for (int64_t o = 0; o < O; o++)
      for (int64_t i = 0; i < I; i++)
        for (int64_t k = 0; k < K; k++) d[(o * K + k) * I + i] = s[(o * I + i) * K + k];
    return cl;
  }

  // The up-sampling Conv2d(I, O, 3, pad 1) applied after nearest x2, in sub-pixel form (see vae_phase_shuffle): a 2x2
  // conv with pad 1 whose 4*O outputs are the four phases. Phase a's row taps: a=0 -> {dy=-1} on row i-1 and
  // {dy=0, dy=+1} on row i; a=1 -> {dy=-1, dy=0} on row i and {dy=+1} on row i+1 (likewise for columns).
  Conv upconv(const std::string& prefix, int64_t O, int64_t I) {
    const std::string wn = prefix + ".weight";
    const Tensor& w = fetch(wn, {O, I, 3, 3});
    TD_CHECK(w.shape() == (Shape{O, I, 3, 3}), m_.source, "tensor ", wn, " has shape ", shape_str(w.shape()),
             ", expected ", shape_str({O, I, 3, 3}));
    Tensor cl = channels_last(w, O, I, 9, 1, 3, 3);  // [O, 1, 3, 3, I]
    Tensor sub = Tensor::zeros({4 * O, 1, 2, 2, I}, DType::F32);
    static const int taps[2][2][2] = {{{0, 0}, {1, 2}}, {{0, 1}, {2, 2}}};  // [phase][k] -> dy range [lo, hi]
    const float* src = cl.ptr<float>();
    float* dst = sub.ptr<float>();
    for (int a = 0; a < 2; a++)
      for (int b = 0; b < 2; b++)
        for (int64_t o = 0; o < O; o++)
          for (int ky = 0; ky < 2; ky++)
            for (int kx = 0; kx < 2; kx++) {
              float* d = dst + ((((2 * a + b) * O + o) * 2 + ky) * 2 + kx) * I;
              for (int dy = taps[a][ky][0]; dy <= taps[a][ky][1]; dy++)
                for (int dx = taps[b][kx][0]; dx <= taps[b][kx][1]; dx++) {
                  const float* sp = src + ((o * 3 + dy) * 3 + dx) * I;
                  for (int64_t i = 0; i < I; i++) d[i] += sp[i];
                }
            }
    Conv c;
    c.w = on_device(sub, true).set_name(wn + " (sub-pixel)");
    Tensor b = vec(prefix + ".bias", O).to(Device::CPU);
    Tensor b4 = Tensor::empty({4 * O}, DType::F32);
    for (int p = 0; p < 4; p++) std::memcpy(b4.ptr<float>() + p * O, b.ptr<float>(), size_t(O) * sizeof(float));
    c.b = on_device(b4, false).set_name(prefix + ".bias (sub-pixel)");
    c.kt = 1;
    c.p = pad1();
    return c;
  }

  Tensor vec(const std::string& name, int64_t n) {
    const Tensor& t = fetch(name, {n});
    TD_CHECK(t.numel() == n, m_.source, "tensor ", name, " has shape ", shape_str(t.shape()), ", expected ", n,
             " values");
    return on_device(t.to_f32_host().contiguous().view({n}), false).set_name(name);
  }
  Res res(const std::string& p, int64_t in, int64_t out) {
    Res r;
    r.g1 = vec(p + ".residual.0.gamma", in);
    r.c1 = conv(p + ".residual.2", out, in, 3, 3, 3, pad1());
    r.g2 = vec(p + ".residual.3.gamma", out);
    r.c2 = conv(p + ".residual.6", out, out, 3, 3, 3, pad1());
    if (in != out) r.sc = conv(p + ".shortcut", out, in, 1, 1, 1);
    return r;
  }
  Attn attn(const std::string& p, int64_t c) {
    Attn a;
    a.g = vec(p + ".norm.gamma", c);
    a.qkv = conv(p + ".to_qkv", 3 * c, c, 0, 1, 1);
    a.proj = conv(p + ".proj", c, c, 0, 1, 1);
    return a;
  }
  static Conv3dParams pad1() {
    Conv3dParams p;
    p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 1;
    return p;
  }
  bool has(const std::string& n) const { return gen_ || m_.has(n); }

 private:
  Tensor on_device(const Tensor& f32, bool weight) {
    if (dev_ == Device::CPU) return f32.clone();
    // CUDA: conv weights bf16 (tensor-core inputs); gammas and biases stay f32 for the fp32 epilogues.
    return (weight ? f32.to(DType::BF16) : f32).to(Device::CUDA);
  }
  const TensorMap& m_;
  Device dev_;
  TensorMap* gen_ = nullptr;
  std::mt19937_64 rng_;
};

}  // namespace

struct WanVae::Impl {
  static constexpr int64_t kHist = 2;  // frames of history a kernel-3 causal conv sees (Wan's CACHE_T)
  Device dev;
  DType act;
  // decoder
  bool has_dec = false;
  Conv conv2, dec_conv1, dec_head;
  Res dec_mid0, dec_mid2;
  Attn dec_attn;
  std::vector<Block> ups;
  Tensor dec_head_g;
  Tensor dec_head_pre;  // the last stage's deferred biases (undefined when none)
  // encoder
  bool has_enc = false;
  Conv conv1_mu, enc_conv1, enc_head;
  std::vector<Block> downs;
  Res enc_mid0, enc_mid2;
  Attn enc_attn;
  Tensor enc_head_g;

  Tensor empty(const Shape& s) const { return Tensor::empty(s, act, dev); }

  Tensor pointwise(const Conv& c, const Tensor& x) const {
    Tensor y = empty(c.p.out_shape(x.shape(), c.w.shape(), "vae conv"));
    vae::conv3d(x, c.w, &c.b, y, c.p, false);
    return y;
  }

  // Causal convs with kernel 3 in time run on [zeros, cache, x] (2 frames of history). The producer of x writes it
  // straight into frames [2, 2 + n) of the buffer causal_buffer() returns, so no concatenation copy is needed; the
  // buffer's last frames become the next cache.
  Tensor causal_buffer(Run& run, size_t slot, const Shape& x_shape) const {
    const Tensor& cache = run.slot[slot];
    const int64_t cf = cache.defined() ? cache.size(0) : 0;
    TD_ASSERT(cf <= kHist);
    Shape bs = x_shape;
    bs[0] = kHist + x_shape[0];
    Tensor buf = empty(bs);
    if (kHist - cf > 0) {
      Tensor z = buf.slice(0, 0, kHist - cf);
      vae::zero(z);
    }
    if (cf > 0) {
      vae::ProfileScope ps("cache copy-in");
      buf.slice(0, kHist - cf, kHist).copy_from(cache);
    }
    return buf;
  }
  static Tensor input_part(const Tensor& buf) { return buf.slice(0, kHist, buf.size(0)); }

  // Runs the conv on a filled buffer. bias: whether to add the conv's bias here (false when the consumer folds it
  // in, see vae_rms_norm's pre_bias). With `acc`, the result is added into *acc (the residual add).
  Tensor causal_run(const Conv& c, const Tensor& buf, Run& run, size_t slot, bool bias, Tensor* acc = nullptr) const {
    TD_ASSERT(c.kt == kHist + 1);
    const int64_t n = buf.size(0) - kHist;
    const Tensor& cache = run.slot[slot];
    const int64_t cf = cache.defined() ? cache.size(0) : 0;
    const int64_t keep = std::min<int64_t>(kHist, cf + n);
    {
      vae::ProfileScope ps("cache save");
      run.slot[slot] = buf.slice(0, kHist + n - keep, kHist + n).clone();
    }
    const Tensor* b = bias ? &c.b : nullptr;
    if (acc) {
      vae::conv3d(buf, c.w, b, *acc, c.p, true);
      return *acc;
    }
    Tensor y = empty(c.p.out_shape(buf.shape(), c.w.shape(), "vae conv"));
    vae::conv3d(buf, c.w, b, y, c.p, false);
    return y;
  }

  // Where the device can read the history frames in place (vae::causal_direct: the 96-channel full-resolution
  // stage on CUDA), a norm writes its output to a fresh [n] tensor instead of a buffer's tail, and that tensor
  // (when n == 2) becomes the next history as is: no copies in or out of a buffer at the largest activations.
  bool direct(const Conv& c) const {
    return c.kt == kHist + 1 && c.p.stride_t == 1 && vae::causal_direct(c.w);
  }
  // The tensor a norm should write the conv's input to; *buf receives the buffer it belongs to (undefined when
  // direct).
  Tensor conv_input(const Conv& c, Run& run, size_t slot, const Shape& s, Tensor* buf) const {
    if (direct(c)) {
      *buf = Tensor();
      return empty(s);
    }
    *buf = causal_buffer(run, slot, s);
    return input_part(*buf);
  }
  Tensor conv_on(const Conv& c, const Tensor& buf, const Tensor& in, Run& run, size_t slot, bool bias,
                 Tensor* acc = nullptr) const {
    if (buf.defined()) return causal_run(c, buf, run, slot, bias, acc);
    Tensor& hist = run.slot[slot];
    Shape bs = in.shape();
    bs[0] += kHist;
    Tensor y = acc ? *acc : empty(c.p.out_shape(bs, c.w.shape(), "vae conv"));
    vae::conv3d_causal(hist, in, c.w, bias ? &c.b : nullptr, y, c.p, acc != nullptr);
    // The next history: the last kHist frames of [hist, in]. `in` is this call's own norm output, never written
    // again, so it can be kept as is (stream order protects the old history until the conv above has read it).
    const int64_t n = in.size(0), cf = hist.defined() ? hist.size(0) : 0;
    vae::ProfileScope ps("cache save");
    if (n == kHist) {
      hist = in;
    } else if (n > kHist) {
      hist = in.slice(0, n - kHist, n).clone();  // don't keep all n frames alive
    } else {
      const int64_t old = std::min<int64_t>(cf, kHist - n);
      Shape hs = in.shape();
      hs[0] = old + n;
      Tensor h = empty(hs);
      if (old) h.slice(0, 0, old).copy_from(hist.slice(0, cf - old, cf));
      h.slice(0, old, old + n).copy_from(in);
      hist = h;
    }
    return y;
  }

  // A causal conv on an existing tensor (inputs not produced by a norm: the first conv, time convs).
  Tensor causal(const Conv& c, const Tensor& x, Run& run, size_t slot) const {
    Tensor buf = causal_buffer(run, slot, x.shape());
    {
      vae::ProfileScope ps("causal input copy");
      input_part(buf).copy_from(x);
    }
    return causal_run(c, buf, run, slot, true);
  }

  // The ring of a slot (vae::ring_ok), created zeroed (the frames before the first are zeros) on first use.
  Tensor& ring_for(Run& run, size_t slot, int64_t H, int64_t W, int64_t C) const {
    Tensor& r = run.slot[slot];
    if (!r.defined()) {
      r = empty({1, H, W, 3 * C});
      vae::zero(r);
    }
    TD_ASSERT(r.size(1) == H && r.size(2) == W && r.size(3) == 3 * C, "vae ring ", shape_str(r.shape()));
    return r;
  }
  // c's weights rotated for a frame in ring slot rot.
  static Tensor rotated(const Conv& c, int rot) {
    const Tensor& rw = c.ring_w;
    return rw.slice(0, rot, rot + 1).view({rw.size(1), 1, rw.size(3), rw.size(4), rw.size(5)});
  }
  // Normalises frame x [1, H, W, C] into the slot's ring and returns the rotated weights of c for it.
  Tensor ring_in(const Conv& c, Run& run, size_t slot, const Tensor& x, const Tensor& g, const Tensor* pre_bias) const {
    Tensor& ring = ring_for(run, slot, x.size(1), x.size(2), x.size(3));
    const int rot = int(run.frames[slot]++ % 3);
    vae::rms_norm_ring(x, g, pre_bias, true, ring, rot);
    return rotated(c, rot);
  }

  // conv1 of r on ring slot s1 (weights w1, rotated for this frame), then norm2 into ring slot s2: in conv1's epilogue
  // where the device can (conv1's output is then never stored), else the two steps through y1 (allocated on first
  // use). Returns conv2's weights rotated for this frame.
  Tensor conv1_norm2(const Res& r, Run& run, size_t s1, size_t s2, const Tensor& w1, Tensor& y1) const {
    const int64_t H = run.slot[s1].size(1), W = run.slot[s1].size(2), O = r.c1.w.size(0);
    Tensor& ring2 = ring_for(run, s2, H, W, O);
    if (vae::conv_ring_norm(run.slot[s1], w1, &r.c1.b, r.g2, ring2, int(run.frames[s2] % 3), r.c1.p))
      return rotated(r.c2, int(run.frames[s2]++ % 3));
    if (!y1.defined()) y1 = empty({1, H, W, O});
    vae::conv_ring(run.slot[s1], w1, nullptr, y1, r.c1.p, false);
    return ring_in(r.c2, run, s2, y1, r.g2, &r.c1.b);
  }

  // The residual block frame by frame through the two rings: norm1 -> conv1 -> norm2 -> conv2 (+= shortcut).
  Tensor res_ring(const Res& r, const Tensor& x, Run& run) const {
    Tensor h = r.sc.defined() ? pointwise(r.sc, x) : x;
    const size_t s1 = run.next(), s2 = run.next();
    Tensor y1;
    for (int64_t t = 0; t < x.size(0); t++) {
      Tensor w1 = ring_in(r.c1, run, s1, x.slice(0, t, t + 1), r.g1, defer_in(r));
      Tensor w2 = conv1_norm2(r, run, s1, s2, w1, y1);
      Tensor ht = h.slice(0, t, t + 1);
      vae::conv_ring(run.slot[s2], w2, r.defer_out ? nullptr : &r.c2.b, ht, r.c2.p, true);
    }
    return h;
  }

  // Where the head norm takes its input from (a chain of residual blocks may write it, see res_chain).
  struct HeadIn {
    const Tensor& g;
    const Conv& c;
    const Tensor* pre_bias;
  };
  static bool chainable(const Block& b) {
    return b.is_res && b.res.c1.ring_w.defined() && b.res.c2.ring_w.defined() && !b.res.sc.defined();
  }
  static const Tensor* defer_in(const Res& r) { return r.defer_in.defined() ? &r.defer_in : nullptr; }

  // Residual blocks that all run on rings without a shortcut (x is updated in place), and optionally the head after
  // them, frame by frame through all of them: each conv2 can then also write the next block's norm1 (or the head's
  // norm) into that block's ring in its epilogue (vae::conv_ring_res_norm), which saves a pass over the frame per
  // block. Block by block, a block's 3-slot ring would be overwritten by later frames before the next block read it.
  // Cache slots are taken in the order the block-at-a-time path takes them.
  Tensor res_chain(const std::vector<const Res*>& chain, Tensor x, Run& run, const HeadIn* head) const {
    const int64_t n = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
    const size_t K = chain.size();
    std::vector<size_t> s1(K), s2(K);
    for (size_t k = 0; k < K; k++) s1[k] = run.next(), s2[k] = run.next();
    const size_t sh = head ? run.next() : 0;
    Tensor y = head ? empty({n, H, W, head->c.w.size(0)}) : Tensor();
    Tensor y1;
    for (int64_t t = 0; t < n; t++) {
      Tensor xt = x.slice(0, t, t + 1);
      Tensor w1;  // conv1 weights of block k for this frame once its norm1 is in ring s1[k]
      for (size_t k = 0; k < K; k++) {
        const Res& r = *chain[k];
        if (!w1.defined()) w1 = ring_in(r.c1, run, s1[k], xt, r.g1, defer_in(r));
        Tensor w2 = conv1_norm2(r, run, s1[k], s2[k], w1, y1);
        const Tensor* b2 = r.defer_out ? nullptr : &r.c2.b;
        w1 = Tensor();
        const bool last = k + 1 == K;
        if (!last || head) {
          const size_t ns = last ? sh : s1[k + 1];
          Tensor& nring = ring_for(run, ns, H, W, C);
          const int rot = int(run.frames[ns] % 3);
          if (vae::conv_ring_res_norm(run.slot[s2[k]], w2, b2, xt, last ? head->g : chain[k + 1]->g1,
                                      last ? head->pre_bias : defer_in(*chain[k + 1]), nring, rot, r.c2.p)) {
            run.frames[ns]++;
            w1 = rotated(last ? head->c : chain[k + 1]->c1, rot);
            continue;
          }
        }
        vae::conv_ring(run.slot[s2[k]], w2, b2, xt, r.c2.p, true);
      }
      if (head) {
        Tensor wr = w1.defined() ? w1 : ring_in(head->c, run, sh, xt, head->g, head->pre_bias);
        Tensor yt = y.slice(0, t, t + 1);
        vae::conv_ring(run.slot[sh], wr, &head->c.b, yt, head->c.p, false);
      }
    }
    return head ? y : x;
  }

  // Blocks [i, end) of bl; runs of chainable residual blocks go through res_chain. With head (the decoder's, on a
  // ring): a chain that ends the list runs the head too, and *head_done is set.
  Tensor run_blocks(const std::vector<Block>& bl, size_t i, Tensor x, Run& run, const HeadIn* head,
                    bool* head_done) const {
    while (i < bl.size()) {
      std::vector<const Res*> chain;
      size_t j = i;
      while (j < bl.size() && chainable(bl[j])) chain.push_back(&bl[j++].res);
      if (chain.empty()) {
        x = bl[i].is_res ? res(bl[i].res, x, run) : resample(bl[i].rs, x, run);
        i++;
        continue;
      }
      if (j == bl.size() && head) {
        *head_done = true;
        return res_chain(chain, x, run, head);
      }
      x = res_chain(chain, x, run, nullptr);
      i = j;
    }
    return x;
  }

  // The decoder's blocks from index i0 on, then its head.
  Tensor tail_and_head(Tensor z, Run& run, size_t i0) const {
    const Tensor* pre = dec_head_pre.defined() ? &dec_head_pre : nullptr;
    const HeadIn h{dec_head_g, dec_head, pre};
    bool head_done = false;
    z = run_blocks(ups, i0, z, run, dec_head.ring_w.defined() ? &h : nullptr, &head_done);
    return head_done ? z : head(dec_head_g, dec_head, z, run, pre);
  }

  Tensor res(const Res& r, Tensor x, Run& run) const {
    if (r.c1.ring_w.defined() && r.c2.ring_w.defined()) return res_ring(r, x, run);
    Tensor h = r.sc.defined() ? pointwise(r.sc, x) : x;
    const size_t s1 = run.next();
    Tensor buf;
    Tensor a = conv_input(r.c1, run, s1, x.shape(), &buf);
    vae::rms_norm(x, r.g1, r.defer_in.defined() ? &r.defer_in : nullptr, true, a);
    Tensor y1 = conv_on(r.c1, buf, a, run, s1, /*bias=*/false);
    const size_t s2 = run.next();
    a = conv_input(r.c2, run, s2, y1.shape(), &buf);
    vae::rms_norm(y1, r.g2, &r.c1.b, true, a);
    y1 = Tensor();
    return conv_on(r.c2, buf, a, run, s2, !r.defer_out, &h);
  }

  Tensor attn(const Attn& at, Tensor x) const {
    const int64_t T = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
    Tensor a = empty(x.shape());
    vae::rms_norm(x, at.g, nullptr, false, a);
    Tensor o = empty({H * W, C});
    for (int64_t t = 0; t < T; t++) {
      Tensor qkv = pointwise(at.qkv, a.slice(0, t, t + 1));
      vae::attention(qkv.view({H * W, 3 * C}), o);
      Tensor xt = x.slice(0, t, t + 1);
      vae::conv3d(o.view({1, H, W, C}), at.proj.w, &at.proj.b, xt, at.proj.p, true);
    }
    return x;
  }

  Tensor resample(const Resample& r, Tensor x, Run& run) const {
    if (r.mode == Mode::Up2d || r.mode == Mode::Up3d) {
      if (r.mode == Mode::Up3d) {
        size_t s = run.next();
        if (!run.started[s]) {
          // First chunk: no temporal doubling; afterwards the time conv sees this frame as zeros (Wan's 'Rep').
          run.started[s] = 1;
          Shape zs = x.shape();
          zs[0] = 1;
          run.slot[s] = empty(zs);
          vae::zero(run.slot[s]);
        } else {
          Tensor y2 = causal(r.time_conv, x, run, s);
          Shape is = x.shape();
          is[0] *= 2;
          x = empty(is);
          vae::time_interleave(y2, x);
        }
      }
      Tensor y = empty({x.size(0), 2 * x.size(1), 2 * x.size(2), r.conv.w.size(0) / 4});
      if (vae::conv_subpixel_shuffled(x, r.conv.w, &r.conv.b, r.conv.p, y)) return y;
      Tensor ph = pointwise(r.conv, x);  // [n, h+1, w+1, 4 * C/2]
      x = Tensor();
      vae::phase_shuffle(ph, y);
      return y;
    }
    Tensor y = pointwise(r.conv, x);
    if (r.mode == Mode::Down2d) return y;
    size_t s = run.next();
    const int64_t n = y.size(0);
    if (!run.started[s]) {
      run.started[s] = 1;
      run.slot[s] = y.slice(0, n - 1, n).clone();
      return y;
    }
    Shape bs = y.shape();
    bs[0] = n + 1;
    Tensor buf = empty(bs);
    buf.slice(0, 0, 1).copy_from(run.slot[s]);
    buf.slice(0, 1, n + 1).copy_from(y);
    run.slot[s] = y.slice(0, n - 1, n).clone();
    y = Tensor();
    return pointwise(r.time_conv, buf);
  }


  Tensor head(const Tensor& g, const Conv& c, Tensor x, Run& run, const Tensor* pre_bias = nullptr) const {
    const size_t s = run.next();
    if (c.ring_w.defined()) {
      Tensor y = empty({x.size(0), x.size(1), x.size(2), c.w.size(0)});
      for (int64_t t = 0; t < x.size(0); t++) {
        Tensor wr = ring_in(c, run, s, x.slice(0, t, t + 1), g, pre_bias);
        Tensor yt = y.slice(0, t, t + 1);
        vae::conv_ring(run.slot[s], wr, &c.b, yt, c.p, false);
      }
      return y;
    }
    Tensor buf;
    Tensor a = conv_input(c, run, s, x.shape(), &buf);
    vae::rms_norm(x, g, pre_bias, true, a);
    x = Tensor();
    return conv_on(c, buf, a, run, s, true);
  }

  // One decoder call on latent frames x [n, h, w, z] (after conv2) -> [frames, 8h, 8w, 3].
  // After the last temporal up-sampling only spatial and causal ops remain, and the caches make any split in time
  // exact, so those high-resolution stages run `tail_frames` frames at a time: same work, a fraction of the
  // activation memory (the peak sits there: 4 frames of 96 channels at 480x832 are 300 MB per tensor).
  Tensor decoder(const Tensor& x, Run& run, int tail_frames) const {
    run.begin_chunk();
    Tensor y = causal(dec_conv1, x, run, run.next());
    y = res(dec_mid0, y, run);
    y = attn(dec_attn, y);
    y = res(dec_mid2, y, run);
    size_t last_t = 0;  // blocks [0, last_t) include every temporal up-sampling
    for (size_t i = 0; i < ups.size(); i++)
      if (!ups[i].is_res && ups[i].rs.mode == Mode::Up3d) last_t = i + 1;
    for (size_t i = 0; i < last_t; i++) y = ups[i].is_res ? res(ups[i].res, y, run) : resample(ups[i].rs, y, run);
    const int64_t n = y.size(0);
    const int64_t step = tail_frames <= 0 ? n : std::min<int64_t>(n, tail_frames);
    if (step == n) return tail_and_head(y, run, last_t);
    const size_t idx0 = run.idx;
    Tensor out;
    for (int64_t f0 = 0; f0 < n; f0 += step) {
      run.idx = idx0;  // every sub-chunk walks the same cache slots, in time order
      Tensor z = tail_and_head(y.slice(0, f0, std::min(n, f0 + step)), run, last_t);
      if (!out.defined()) out = empty({n, z.size(1), z.size(2), z.size(3)});
      vae::ProfileScope ps("tail gather");
      out.slice(0, f0, f0 + z.size(0)).copy_from(z);
    }
    return out;
  }

  // One encoder call on video frames x [n, H, W, 3] -> [n', H/8, W/8, 2z].
  Tensor encoder(const Tensor& x, Run& run) const {
    run.begin_chunk();
    Tensor y = causal(enc_conv1, x, run, run.next());
    y = run_blocks(downs, 0, y, run, nullptr, nullptr);
    y = res(enc_mid0, y, run);
    y = attn(enc_attn, y);
    y = res(enc_mid2, y, run);
    return head(enc_head_g, enc_head, y, run);
  }
};

WanVae::~WanVae() = default;
bool WanVae::has_decoder() const { return impl_->has_dec; }
bool WanVae::has_encoder() const { return impl_->has_enc; }

namespace {
void build(WanVae::Impl& I, Loader& L, const TensorMap& m, const VaeConfig& cfg);
}

WanVae::WanVae(const TensorMap& m, Device dev, const VaeConfig& cfg) : cfg_(cfg), dev_(dev), impl_(new Impl) {
  impl_->dev = dev;
  impl_->act = dev == Device::CUDA ? DType::BF16 : DType::F32;
  Loader L(m, dev);
  build(*impl_, L, m, cfg);
}

TensorMap WanVae::random_weights(const VaeConfig& cfg, uint64_t seed) {
  TensorMap gen;
  gen.source = "random weights";
  Impl scratch;
  scratch.dev = Device::CPU;
  scratch.act = DType::F32;
  Loader L(&gen, seed);
  build(scratch, L, gen, cfg);
  return gen;
}

namespace {
void build(WanVae::Impl& I, Loader& L, const TensorMap& m, const VaeConfig& cfg) {
  TD_CHECK(cfg.z_dim == 16, m.source, "only the z_dim 16 Wan2.1 VAE is supported (got z_dim ", cfg.z_dim, ")");
  TD_CHECK(cfg.dim_mult.size() == 4 && cfg.temporal_downsample.size() == 3, m.source,
           "VaeConfig: dim_mult needs 4 entries and temporal_downsample 3");
  const int64_t Z = cfg.z_dim;
  const int nm = int(cfg.dim_mult.size());
  I.has_dec = L.has("conv2.weight") && L.has("decoder.conv1.weight");
  I.has_enc = L.has("conv1.weight") && L.has("encoder.conv1.weight");
  TD_CHECK(I.has_dec || I.has_enc, m.source, "no Wan VAE encoder or decoder weights found");
  if (I.has_dec) {
    std::vector<int64_t> dims = {int64_t(cfg.dim) * cfg.dim_mult.back()};
    for (int i = nm - 1; i >= 0; i--) dims.push_back(int64_t(cfg.dim) * cfg.dim_mult[i]);
    I.conv2 = L.conv("conv2", Z, Z, 1, 1, 1);
    I.dec_conv1 = L.conv("decoder.conv1", dims[0], Z, 3, 3, 3, Loader::pad1());
    I.dec_mid0 = L.res("decoder.middle.0", dims[0], dims[0]);
    I.dec_attn = L.attn("decoder.middle.1", dims[0]);
    I.dec_mid2 = L.res("decoder.middle.2", dims[0], dims[0]);
    int idx = 0;
    int64_t out = dims[0];
    for (int i = 0; i < nm; i++) {
      int64_t in = dims[i];
      out = dims[i + 1];
      if (i >= 1) in /= 2;
      for (int j = 0; j < cfg.num_res_blocks + 1; j++, idx++) {
        Block b;
        b.res = L.res(cat("decoder.upsamples.", idx), in, out);
        I.ups.push_back(std::move(b));
        in = out;
      }
      if (i != nm - 1) {
        Block b;
        b.is_res = false;
        bool t = cfg.temporal_downsample[nm - 2 - i];
        b.rs.mode = t ? Mode::Up3d : Mode::Up2d;
        std::string p = cat("decoder.upsamples.", idx++);
        b.rs.conv = L.upconv(p + ".resample.1", out / 2, out);
        if (t) b.rs.time_conv = L.conv(p + ".time_conv", out * 2, out, 3, 1, 1);
        I.ups.push_back(std::move(b));
      }
    }
    I.dec_head_g = L.vec("decoder.head.0.gamma", out);
    // The blocks after the last resample are residual blocks of one width feeding the head norm, which can take
    // their c2 biases as a pre-bias: defer them (see Res). Their outputs then lack the sum of the biases so far,
    // which each next norm1 adds back; the residual sums are unchanged up to bf16 rounding of where the offset sits.
    size_t tail0 = I.ups.size();
    while (tail0 > 0 && I.ups[tail0 - 1].is_res && !I.ups[tail0 - 1].res.sc.defined()) tail0--;
    const char* defer_env = std::getenv("TD_VAE_DEFER_BIAS");  // "0": add every bias in place (to compare)
    if (tail0 < I.ups.size() && !(defer_env && std::string(defer_env) == "0")) {
      Tensor pend = Tensor::zeros({out}, DType::F32);
      for (size_t i = tail0; i < I.ups.size(); i++) {
        Res& r = I.ups[i].res;
        if (i > tail0) r.defer_in = I.dev == Device::CPU ? pend.clone() : pend.to(Device::CUDA);
        Tensor b = r.c2.b.to(Device::CPU);
        for (int64_t c = 0; c < out; c++) pend.ptr<float>()[c] += b.ptr<float>()[c];
        r.defer_out = true;
      }
      I.dec_head_pre = I.dev == Device::CPU ? pend : pend.to(Device::CUDA);
    }
    I.dec_head = L.conv("decoder.head.2", 3, out, 3, 3, 3, Loader::pad1(), kRgbPadded);
  }
  if (I.has_enc) {
    std::vector<int64_t> dims = {int64_t(cfg.dim)};
    for (int u : cfg.dim_mult) dims.push_back(int64_t(cfg.dim) * u);
    I.enc_conv1 = L.conv("encoder.conv1", dims[0], 3, 3, 3, 3, Loader::pad1(), 0, kRgbPadded);
    int idx = 0;
    int64_t out = dims[0];
    for (int i = 0; i < nm; i++) {
      int64_t in = dims[i];
      out = dims[i + 1];
      for (int j = 0; j < cfg.num_res_blocks; j++, idx++) {
        Block b;
        b.res = L.res(cat("encoder.downsamples.", idx), in, out);
        I.downs.push_back(std::move(b));
        in = out;
      }
      if (i != nm - 1) {
        Block b;
        b.is_res = false;
        bool t = cfg.temporal_downsample[i];
        b.rs.mode = t ? Mode::Down3d : Mode::Down2d;
        std::string p = cat("encoder.downsamples.", idx++);
        Conv3dParams dp;
        dp.stride_h = dp.stride_w = 2;
        dp.pad_bottom = dp.pad_right = 1;  // ZeroPad2d((0, 1, 0, 1))
        b.rs.conv = L.conv(p + ".resample.1", out, out, 0, 3, 3, dp);
        if (t) {
          Conv3dParams tp;
          tp.stride_t = 2;
          b.rs.time_conv = L.conv(p + ".time_conv", out, out, 3, 1, 1, tp);
        }
        I.downs.push_back(std::move(b));
      }
    }
    I.enc_mid0 = L.res("encoder.middle.0", out, out);
    I.enc_attn = L.attn("encoder.middle.1", out);
    I.enc_mid2 = L.res("encoder.middle.2", out, out);
    I.enc_head_g = L.vec("encoder.head.0.gamma", out);
    I.enc_head = L.conv("encoder.head.2", 2 * Z, out, 3, 3, 3, Loader::pad1());
    // Only mu (the first z_dim outputs of the top conv1) is used: the mean of the posterior.
    Conv full = L.conv("conv1", 2 * Z, 2 * Z, 1, 1, 1);
    I.conv1_mu.w = full.w.slice(0, 0, Z).contiguous();
    I.conv1_mu.b = full.b.slice(0, 0, Z).contiguous();
  }
}
}  // namespace

std::unique_ptr<WanVae> WanVae::load(const std::string& path, Device dev) {
  TensorMap m = load_checkpoint(path);
  return std::unique_ptr<WanVae>(new WanVae(m, dev));
}

namespace {

// host f32 [C, T, H, W] frames [t0, t0+n) -> device channels-last [n, H, W, C] (optionally z*std+mean per channel).
Tensor to_device_cl(const Tensor& src, int64_t t0, int64_t n, int64_t h0, int64_t hn, int64_t w0, int64_t wn,
                    Device dev, DType dt, bool denorm) {
  const int64_t C = src.size(0), T = src.size(1), H = src.size(2), W = src.size(3);
  (void)T;
  Tensor cl = Tensor::empty({n, hn, wn, C}, DType::F32);
  const float* s = src.ptr<float>();
  float* d = cl.ptr<float>();
  parallel_for(n * hn, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
      const int64_t t = r / hn, h = r % hn;
      for (int64_t w = 0; w < wn; w++)
        for (int64_t c = 0; c < C; c++) {
          float v = s[((c * T + t0 + t) * H + h0 + h) * W + w0 + w];
          d[(r * wn + w) * C + c] = denorm ? v * kWanVaeStd[c] + kWanVaeMean[c] : v;
        }
    }
  }, 4);
  if (dev == Device::CPU) return cl;
  return cl.to(dt).to(dev);
}

// Device [n, H, W, C] -> host f32 channels-last.
Tensor to_host_cl(const Tensor& x) { return x.to(Device::CPU).to(DType::F32); }

void check_input(const Tensor& t, const char* what) {
  TD_CHECK(t.defined() && t.device() == Device::CPU && t.dtype() == DType::F32, what,
           "expected a host f32 tensor, got ", t.defined() ? t.describe() : "none");
  TD_CHECK(t.dim() == 4, what, "expected 4 dims [C, T, H, W], got ", shape_str(t.shape()));
}

}  // namespace

Tensor WanVae::decode(const Tensor& z_in, const VaeDecodeOptions& opts) const {
  TD_CHECK(impl_->has_dec, "--weights", "the checkpoint has no VAE decoder weights");
  check_input(z_in, "latent z");
  const Tensor z = z_in.contiguous();
  const int64_t Z = cfg_.z_dim, T = z.size(1), h = z.size(2), w = z.size(3);
  TD_CHECK(z.size(0) == Z, "latent z", "expected ", Z, " channels [", Z, ", T, h, w], got ", shape_str(z.shape()));
  TD_CHECK(T >= 1 && h >= 1 && w >= 1, "latent z", "empty latent ", shape_str(z.shape()));
  const int64_t F = 1 + 4 * (T - 1), H = 8 * h, W = 8 * w;
  const int chunk = opts.chunk <= 0 ? int(T) : opts.chunk;
  const Impl& I = *impl_;

  const bool tiled = opts.tile > 0 && (opts.tile < h || opts.tile < w);
  std::vector<int64_t> ty, tx;
  int ov = 0;
  if (tiled) {
    TD_CHECK(opts.tile >= 4, "--tile", "tile size must be at least 4 latent pixels, got ", opts.tile);
    ov = opts.tile_overlap >= 0 ? opts.tile_overlap : opts.tile / 4;
    TD_CHECK(ov < opts.tile, "--tile", "overlap ", ov, " must be smaller than the tile ", opts.tile);
    auto starts = [&](int64_t len) {
      std::vector<int64_t> s;
      const int64_t step = opts.tile - ov;
      for (int64_t p = 0;; p += step) {
        if (p + opts.tile >= len) {
          s.push_back(std::max<int64_t>(0, len - opts.tile));
          break;
        }
        s.push_back(p);
      }
      return s;
    };
    ty = starts(h);
    tx = starts(w);
  } else {
    ty = {0};
    tx = {0};
  }
  Tensor out = tiled ? Tensor::zeros({3, F, H, W}, DType::F32) : Tensor::empty({3, F, H, W}, DType::F32);
  Tensor wsum;
  if (tiled) wsum = Tensor::zeros({H, W}, DType::F32);
#ifdef TD_WITH_CUDA
  std::unique_ptr<cuda::PlanarDownloader> down;
  if (!tiled && I.dev == Device::CUDA) {
    std::function<void(int64_t, int64_t)> done;
    if (opts.on_frames) done = [&](int64_t f0, int64_t n) { opts.on_frames(out, f0, f0 + n); };
    down.reset(new cuda::PlanarDownloader(out.ptr<float>(), 3, F, H * W, std::min<int64_t>(F, 4 * int64_t(chunk)),
                                          done));
  }
#endif

  for (int64_t y0 : ty) {
    for (int64_t x0 : tx) {
      const int64_t th = tiled ? std::min<int64_t>(opts.tile, h) : h, tw = tiled ? std::min<int64_t>(opts.tile, w) : w;
      // Blend weights: linear ramps across the overlap on edges that have a neighbouring tile.
      std::vector<float> wy(size_t(8 * th), 1.f), wx(size_t(8 * tw), 1.f);
      if (tiled) {
        const float ramp = 8.f * ov;
        for (int64_t i = 0; i < 8 * th; i++) {
          if (y0 > 0) wy[i] = std::min(wy[i], (i + 0.5f) / ramp);
          if (y0 + th < h) wy[i] = std::min(wy[i], (8 * th - i - 0.5f) / ramp);
        }
        for (int64_t i = 0; i < 8 * tw; i++) {
          if (x0 > 0) wx[i] = std::min(wx[i], (i + 0.5f) / ramp);
          if (x0 + tw < w) wx[i] = std::min(wx[i], (8 * tw - i - 0.5f) / ramp);
        }
      }
      Run run;
      int64_t f_out = 0;
      // The whole (small) latent goes up once: no host round trip inside the frame loop, so the host can queue
      // chunk after chunk while the GPU works.
      Tensor x_all = I.pointwise(I.conv2, to_device_cl(z, 0, T, y0, th, x0, tw, I.dev, I.act, true));
      for (int64_t t0 = 0; t0 < T;) {
        const int64_t n = t0 == 0 ? 1 : std::min<int64_t>(chunk, T - t0);
        Tensor yd = I.decoder(x_all.slice(0, t0, t0 + n), run, opts.tail_frames);
#ifdef TD_WITH_CUDA
        if (down) {
          // Clamp and go planar on the device; the download overlaps the next chunk (see PlanarDownloader).
          const int64_t nf = yd.size(0);
          TD_ASSERT(yd.size(1) == H && yd.size(2) == W && f_out + nf <= F, "decoder output ", shape_str(yd.shape()));
          {
            vae::ProfileScope ps("download (planar + d2h queue)");
            down->push(yd, f_out);
          }
          f_out += nf;
          t0 += n;
          if (opts.on_frame) opts.on_frame(int(t0), int(T));
          continue;
        }
#endif
        Tensor y = to_host_cl(yd);
        yd = Tensor();
        const int64_t nf = y.size(0), ph = y.size(1), pw = y.size(2), cs = y.size(3);  // cs >= 3 (padded on CUDA)
        TD_ASSERT(ph == 8 * th && pw == 8 * tw && f_out + nf <= F, "decoder output ", shape_str(y.shape()));
        const float* yp = y.ptr<float>();
        float* op = out.ptr<float>();
        float* ws = tiled ? wsum.ptr<float>() : nullptr;
        const bool first_frames = t0 == 0;
        parallel_for(nf * ph, [&](int64_t lo, int64_t hi) {
          for (int64_t r = lo; r < hi; r++) {
            const int64_t f = r / ph, i = r % ph;
            const int64_t gy = 8 * y0 + i;
            for (int64_t j = 0; j < pw; j++) {
              const int64_t gx = 8 * x0 + j;
              const float* px = yp + (r * pw + j) * cs;
              const float wgt = tiled ? wy[i] * wx[j] : 1.f;
              for (int c = 0; c < 3; c++) {
                float& o = op[((c * F + f_out + f) * H + gy) * W + gx];
                if (tiled) o += wgt * px[c];
                else o = std::min(1.f, std::max(-1.f, px[c]));
              }
              if (tiled && first_frames && f == 0) ws[gy * W + gx] += wgt;
            }
          }
        }, 4);
        if (!tiled && opts.on_frames) opts.on_frames(out, f_out, f_out + nf);
        f_out += nf;
        t0 += n;
        if (opts.on_frame) opts.on_frame(int(t0), int(T));
      }
      TD_ASSERT(f_out == F, "decoded ", f_out, " frames, expected ", F);
    }
  }
#ifdef TD_WITH_CUDA
  if (down) {
    vae::ProfileScope ps("download finish");
    down->finish();
  }
#endif
  if (!tiled) return out;
  float* op = out.ptr<float>();
  const float* ws = wsum.ptr<float>();
  parallel_for(3 * F, [&](int64_t lo, int64_t hi) {
    for (int64_t cf = lo; cf < hi; cf++)
      for (int64_t p = 0; p < H * W; p++) {
        float v = op[cf * H * W + p];
        v /= ws[p];
        op[cf * H * W + p] = std::min(1.f, std::max(-1.f, v));
      }
  }, 1);
  if (opts.on_frames) opts.on_frames(out, 0, F);
  return out;
}

Tensor WanVae::encode(const Tensor& v_in) const {
  TD_CHECK(impl_->has_enc, "--weights", "the checkpoint has no VAE encoder weights");
  check_input(v_in, "video");
  const Tensor v = v_in.contiguous();
  const int64_t F = v.size(1), H = v.size(2), W = v.size(3), Z = cfg_.z_dim;
  TD_CHECK(v.size(0) == 3, "video", "expected 3 channels [3, T, H, W], got ", shape_str(v.shape()));
  TD_CHECK(F >= 1 && (F - 1) % 4 == 0, "video", "frame count must be 1 + 4n, got ", F);
  TD_CHECK(H >= 8 && W >= 8 && H % 8 == 0 && W % 8 == 0, "video", "height and width must be multiples of 8, got ",
           H, "x", W);
  const Impl& I = *impl_;
  const int64_t T = 1 + (F - 1) / 4, h = H / 8, w = W / 8;
  Tensor out = Tensor::empty({Z, T, h, w}, DType::F32);
  Run run;
  int64_t t_out = 0;
  for (int64_t f0 = 0; f0 < F;) {
    const int64_t n = f0 == 0 ? 1 : 4;
    Tensor x;
#ifdef TD_WITH_CUDA
    if (I.dev == Device::CUDA) {
      // One host-to-device copy per channel of the planar chunk; the transpose to channels-last runs on the device.
      Tensor planar = Tensor::empty({3, n, H, W}, DType::F32, Device::CUDA);
      for (int c = 0; c < 3; c++)
        device_memcpy(planar.ptr<float>() + c * n * H * W, v.ptr<float>() + (c * F + f0) * H * W,
                      size_t(n * H * W) * sizeof(float), 0);
      x = Tensor::empty({n, H, W, I.enc_conv1.w.size(4)}, DType::BF16, Device::CUDA);
      cuda::vae_from_planar(planar, x);  // zero-fills the padded channels
    }
#endif
    if (!x.defined()) x = to_device_cl(v, f0, n, 0, H, 0, W, I.dev, I.act, false);
    Tensor e = I.encoder(x, run);
    Tensor mu = to_host_cl(I.pointwise(I.conv1_mu, e));
    TD_ASSERT(mu.size(1) == h && mu.size(2) == w && mu.size(3) == Z, "encoder output ", shape_str(mu.shape()));
    for (int64_t t = 0; t < mu.size(0); t++, t_out++) {
      TD_ASSERT(t_out < T);
      const float* mp = mu.ptr<float>() + t * h * w * Z;
      for (int64_t c = 0; c < Z; c++)
        for (int64_t p = 0; p < h * w; p++)
          out.ptr<float>()[(c * T + t_out) * h * w + p] = (mp[p * Z + c] - kWanVaeMean[c]) / kWanVaeStd[c];
    }
    f0 += n;
  }
  TD_ASSERT(t_out == T, "encoded ", t_out, " latent frames, expected ", T);
  return out;
}

}  // namespace td
