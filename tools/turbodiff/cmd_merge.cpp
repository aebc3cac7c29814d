// `turbodiff merge --base B --diff-base D0 --diff-target D1 [--w 1.0] OUT`: OUT = B + w * (D1 - D0) in fp32, cast back
// to B's dtypes; keys only in D1 (SLA's proj_l) are copied. How TurboDiffusion joins its rCM and SLA fine-tunes.
#include <cmath>
#include <cstdio>

#include "command.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "io/tensor_map.h"
#include "model/merge.h"

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

td::cli::Runner setup(CLI::App& app) {
  struct Args {
    std::string base, d0, d1, out;
    float w = 1.f;
  };
  auto a = std::make_shared<Args>();
  app.add_option("--base", a->base, "base checkpoint B (e.g. the rCM-distilled model)")->required();
  app.add_option("--diff-base", a->d0, "D0, the model both fine-tunes started from (e.g. the original Wan)")
      ->required();
  app.add_option("--diff-target", a->d1, "D1, the other fine-tune (e.g. the SLA-tuned model)")->required();
  app.add_option("--w", a->w, "weight of the task vector D1 - D0 (default 1.0)");
  app.add_option("output", a->out, "output .safetensors")->required();
  return [a]() {
    TD_CHECK(std::isfinite(a->w), "--w", "must be a finite number");
    TD_CHECK(ends_with(a->out, ".safetensors"), a->out, "output must be a .safetensors file");
    TD_CHECK(a->out != a->base && a->out != a->d0 && a->out != a->d1, a->out, "output would overwrite an input");
    td::TensorMap b = td::load_checkpoint(a->base), d0 = td::load_checkpoint(a->d0), d1 = td::load_checkpoint(a->d1);
    td::MergeStats st;
    auto tensors = td::merge_checkpoints(b, d0, d1, a->w, &st);
    std::map<std::string, std::string> meta{{"format", "pt"},
                                            {"turbodiff.merge", td::cat("base=", a->base, " diff_base=", a->d0,
                                                                        " diff_target=", a->d1, " w=", a->w)}};
    td::save_safetensors(a->out, tensors, meta);
    std::printf("merged %d tensors, copied %d only in --diff-target, dropped %d only in --diff-base; wrote %s\n",
                st.merged, st.copied, st.ignored, a->out.c_str());
    return 0;
  };
}

td::cli::Command reg("merge", "Merge fine-tunes as task vectors: OUT = B + w * (D1 - D0)", setup);

}  // namespace
