// Device dispatch for the VAE's ops: CPU (f32) or CUDA (bf16) by the output's device. See cpu/conv3d.h,
// cpu/vae_rms_norm.h, cpu/vae_attention.h, cpu/vae_resample.h for the semantics.
#pragma once

#include <string>

#include "core/tensor.h"
#include "cpu/conv3d.h"

namespace td {
namespace vae {

void conv3d(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, const Conv3dParams& p, bool accumulate);
void rms_norm(const Tensor& x, const Tensor& gamma, const Tensor* pre_bias, bool silu, Tensor& y);
void attention(const Tensor& qkv, Tensor& o);
void upsample_nearest2x(const Tensor& x, Tensor& y);
void time_interleave(const Tensor& x, Tensor& y);
void phase_shuffle(const Tensor& x, Tensor& y);
// The sub-pixel up-sampling conv straight into the phase-shuffled y [n, 2H, 2W, O / 4] where the device has that
// (cuda::conv3d_subpixel_shuffled); false otherwise, having done nothing (callers run conv3d, then phase_shuffle).
bool conv_subpixel_shuffled(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv3dParams& p, Tensor& y);
void zero(Tensor& x);
// y = conv3d([zeros(2 - cf), hist, x]) with hist [cf <= 2, ...] (see cuda/conv3d.h); causal_direct(w) says
// whether the device path avoids the concatenation for weights w [O, 3, kh, kw, C] (else callers should keep their own
// contiguous buffer, which is cheaper than the fallback's copy).
void conv3d_causal(const Tensor& hist, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y,
                   const Conv3dParams& p, bool accumulate);
bool causal_direct(const Tensor& w);

// Frame rings for the causal 3x3x3 convs: ring [1, H, W, 3C] holds the conv's last three input frames, frame t in
// channels [(t % 3) C, (t % 3) C + C) of every pixel (zeros before the first frame). rms_norm_ring writes one
// normalised frame x [1, H, W, C] into its slot, and conv_ring runs the conv for that frame as ONE 2-D conv with 3C
// input channels, whose weights w_rot [O, 1, kh, kw, 3C] are the kernel's time taps permuted for rotation t % 3. The
// three time taps become one GEMM (K = 27C) and y is written once, instead of one conv per tap that re-reads and
// rewrites y; the ring is also the causal cache, so nothing is copied between chunks. ring_ok says whether the
// device runs rings for a conv with C inputs and O outputs: on CUDA by default for C = 96, 192, 384 (TD_VAE_RING=0
// turns them off, TD_VAE_RING_MAX_CH caps C), on the CPU only with TD_VAE_RING=1 (tests compare the two routes).
bool ring_ok(Device dev, int64_t C, int64_t O);
void rms_norm_ring(const Tensor& x, const Tensor& gamma, const Tensor* pre_bias, bool silu, Tensor& ring, int slot);
void conv_ring(const Tensor& ring, const Tensor& w_rot, const Tensor* bias, Tensor& y, const Conv3dParams& p,
               bool accumulate);
// conv_ring, then rms_norm_ring of its result (bias as the pre-bias, SiLU) into slot `slot` of ring_out, as one kernel
// that never stores the conv result, where the device has one (cuda::conv3d_ring_norm); returns false otherwise,
// having done nothing (the caller runs the two steps).
bool conv_ring_norm(const Tensor& ring, const Tensor& w_rot, const Tensor* bias, const Tensor& gamma, Tensor& ring_out,
                    int slot, const Conv3dParams& p);
// conv_ring accumulating into y (a residual block's conv2 and shortcut sum), then rms_norm_ring of y + pre_bias into
// slot `slot` of ring_out (the next block's norm1), as one kernel where the device has one; false otherwise.
bool conv_ring_res_norm(const Tensor& ring, const Tensor& w_rot, const Tensor* bias, Tensor& y, const Tensor& gamma,
                        const Tensor* pre_bias, Tensor& ring_out, int slot, const Conv3dParams& p);

// Per-stage timing for finding where decode time goes: with TD_VAE_PROFILE=1 every op (and each ProfileScope) waits
// for the device before and after itself and adds its wall time to a named bucket (convs by shape). The syncs cost
// some overlap, so the total runs a little above an unprofiled call; the split is what matters. Off: no syncs.
bool profiling();
class ProfileScope {
 public:
  explicit ProfileScope(const char* bucket);  // the name is only read when profiling
  explicit ProfileScope(std::string bucket);
  ~ProfileScope();
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  std::string name_;
  double t0_ = -1;
};
void profile_reset();
std::string profile_report();  // buckets by total time, with call counts; empty when not profiling

}  // namespace vae
}  // namespace td
