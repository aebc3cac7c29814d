#include "model/vae/vae_ops.h"

#include "core/error.h"
#include "cpu/vae_attention.h"
#include "cpu/vae_resample.h"
#include "cpu/vae_rms_norm.h"
#ifdef TD_WITH_CUDA
#include "cuda/conv3d.h"
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

void conv3d(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, const Conv3dParams& p, bool accumulate) {
  TD_VAE_DISPATCH(y, conv3d, x, w, bias, y, p, accumulate);
}
void rms_norm(const Tensor& x, const Tensor& gamma, const Tensor* pre_bias, bool silu, Tensor& y) {
  TD_VAE_DISPATCH(y, vae_rms_norm, x, gamma, pre_bias, silu, y);
}
void attention(const Tensor& qkv, Tensor& o) { TD_VAE_DISPATCH(o, vae_attention, qkv, o); }
void upsample_nearest2x(const Tensor& x, Tensor& y) { TD_VAE_DISPATCH(y, vae_upsample_nearest2x, x, y); }
void time_interleave(const Tensor& x, Tensor& y) { TD_VAE_DISPATCH(y, vae_time_interleave, x, y); }
void phase_shuffle(const Tensor& x, Tensor& y) { TD_VAE_DISPATCH(y, vae_phase_shuffle, x, y); }
void zero(Tensor& x) { TD_VAE_DISPATCH(x, vae_zero, x); }

}  // namespace vae
}  // namespace td
