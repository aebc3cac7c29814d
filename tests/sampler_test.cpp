// Samplers against values computed by scripts/fixtures/pipeline_samplers.py (an independent numpy transcription of
// the reference scheduler) and against the published rCM schedule.
#include <cmath>
#include <vector>

#include "core/error.h"
#include "pipeline/samplers.h"
#include "test_util.h"

namespace td {
namespace pipeline {
namespace {

// The toy network of the python script: v = 0.7 x + sin(3 sigma + index) - 0.25 x^2 sigma, evaluated on f32 x.
std::vector<float> toy_v(const std::vector<double>& x, double sigma) {
  std::vector<float> v(x.size());
  for (size_t i = 0; i < x.size(); i++) {
    double xf = double(float(x[i]));
    v[i] = float(0.7 * xf + std::sin(3.0 * sigma + double(i)) - 0.25 * xf * xf * sigma);
  }
  return v;
}

const std::vector<double> kStart = {0.5, -1.25, 2.0, 0.1, -0.6, 1.3};

void expect_near_vec(const std::vector<double>& got, const std::vector<double>& want, double tol, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); i++) EXPECT_NEAR(got[i], want[i], tol) << what << " [" << i << "]";
}

TEST(Sampler, RcmScheduleSigma80) {
  std::vector<double> t = rcm_times(4, 80.0);
  ASSERT_EQ(t.size(), 5u);
  const double want[4] = {987.65, 933.78, 852.90, 608.98};  // issue 7 / turbodiffusion.md §5
  for (int i = 0; i < 4; i++) EXPECT_NEAR(t[i] * 1000.0, want[i], 0.005) << i;
  EXPECT_EQ(t[4], 0.0);
  // Fewer steps keep the prefix of the angle list.
  std::vector<double> t2 = rcm_times(2, 80.0);
  ASSERT_EQ(t2.size(), 3u);
  EXPECT_DOUBLE_EQ(t2[0], t[0]);
  EXPECT_DOUBLE_EQ(t2[1], t[1]);
  EXPECT_EQ(t2[2], 0.0);
  EXPECT_NEAR(rcm_times(1, 200.0)[0] * 1000.0, 995.02, 0.005);
  EXPECT_NEAR(rcm_times(1, 1600.0)[0] * 1000.0, 999.38, 0.005);
  EXPECT_NEAR(rcm_times(4, 80.0)[0], 0.98765432098765427, 1e-15);
}

TEST(Sampler, RcmRejectsBadSteps) {
  EXPECT_THROW(rcm_times(0, 80.0), Error);
  EXPECT_THROW(rcm_times(5, 80.0), Error);
  EXPECT_THROW(rcm_times(4, -1.0), Error);
  try {
    rcm_times(8, 80.0);
  } catch (const Error& e) {
    EXPECT_EQ(e.subject(), "--steps");
  }
}

TEST(Sampler, RcmStochasticAndOdeUpdates) {
  // Hand-computed: x = 2, v = 0.5, t 0.8 -> 0.6, noise 1: x0 = 2 - 0.4 = 1.6, x = 0.4*1.6 + 0.6*1 = 1.24.
  double x[2] = {2.0, -1.0};
  float v[2] = {0.5f, 0.25f}, noise[2] = {1.0f, -2.0f};
  rcm_step(x, v, noise, 2, 0.8, 0.6, false);
  EXPECT_NEAR(x[0], 1.24, 1e-12);
  EXPECT_NEAR(x[1], 0.4 * (-1.0 - 0.2) + 0.6 * -2.0, 1e-12);
  // ODE: x - (t_cur - t_next) v.
  double y[1] = {2.0};
  rcm_step(y, v, nullptr, 1, 0.8, 0.6, true);
  EXPECT_NEAR(y[0], 2.0 - 0.2 * 0.5, 1e-12);
  // Last step (t_next = 0) returns the x0-prediction and needs no noise.
  double z[1] = {2.0};
  rcm_step(z, v, nullptr, 1, 0.6, 0.0, false);
  EXPECT_NEAR(z[0], 2.0 - 0.6 * 0.5, 1e-12);
}

TEST(Sampler, FlowScheduleMatchesWan) {
  FlowSchedule s = flow_schedule(6, 5.0);
  expect_near_vec(s.sigmas,
                  {0.99979984760284424, 0.96131640672683716, 0.90884280204772949, 0.83305537700653076,
                   0.71397942304611206, 0.49969989061355591, 0},
                  0.0, "sigmas");
  expect_near_vec(s.timesteps, {999, 961, 908, 833, 713, 499}, 0.0, "timesteps");
  // wan_spec.md §5.3: 50 steps, shift 5 -> 999, 995, 991, 987, ..., 172, 92; shift 3 ends ..., 111, 57.
  FlowSchedule s50 = flow_schedule(50, 5.0);
  ASSERT_EQ(s50.timesteps.size(), 50u);
  EXPECT_EQ(s50.timesteps[0], 999);
  EXPECT_EQ(s50.timesteps[1], 995);
  EXPECT_EQ(s50.timesteps[3], 987);
  EXPECT_EQ(s50.timesteps[48], 172);
  EXPECT_EQ(s50.timesteps[49], 92);
  FlowSchedule s3 = flow_schedule(50, 3.0);
  EXPECT_EQ(s3.timesteps[48], 111);
  EXPECT_EQ(s3.timesteps[49], 57);
  EXPECT_THROW(flow_schedule(0, 5.0), Error);
  EXPECT_THROW(flow_schedule(10, 0.0), Error);
}

TEST(Sampler, EulerMatchesReference) {
  FlowSchedule s = flow_schedule(6, 5.0);
  std::vector<double> x = kStart;
  const std::vector<std::vector<double>> want = {
      {0.48348187062800818, -1.1721881495665087, 2.0215081748502044, 0.10817740340329998, -0.60563981706312331,
       1.2431588018284601},
      {0.40415451584610196, -0.95743544817207749, 2.0898922949671679, 0.15844097043409491, -0.6022874131815158,
       1.0509348260620783},
      {-0.44537572306294138, -0.70469537356531431, 1.8842990734143452, 0.753051032097796, 0.078401727653348963,
       0.31610783974509649}};
  for (int i = 0; i < 6; i++) {
    std::vector<float> v = toy_v(x, s.sigmas[i]);
    euler_step(x.data(), v.data(), x.size(), s.sigmas[i], s.sigmas[i + 1]);
    if (i == 0) expect_near_vec(x, want[0], 1e-12, "euler step 0");
    if (i == 2) expect_near_vec(x, want[1], 1e-12, "euler step 2");
  }
  expect_near_vec(x, want[2], 1e-12, "euler final");
}

TEST(Sampler, UniPCMatchesReference) {
  FlowSchedule s = flow_schedule(6, 5.0);
  const std::vector<std::vector<double>> want = {
      {0.48348187062800818, -1.1721881495665087, 2.0215081748502044, 0.10817740340329998, -0.60563981706312331,
       1.2431588018284601},
      {0.45292691400873697, -1.0806264377313692, 2.0503492470843061, 0.12702254850896058, -0.60637472394064518,
       1.1640659546989736},
      {0.39480825628226823, -0.97442514689989312, 2.0880140250654997, 0.16717612123398468, -0.5935214659189727,
       1.0505007762678704},
      {0.28162008783339776, -0.85438756310220509, 2.1304702718355091, 0.24941540798259998, -0.54563859387091151,
       0.88359454962362971},
      {0.033363437596746925, -0.78020305076796082, 2.1200920186478509, 0.432908045525422, -0.37268489307856578,
       0.6543383976999303},
      {-0.47665336413663167, -0.76871351808601185, 1.8339574243182053, 0.78155686174444394, 0.11922410430293473,
       0.34512917650990305}};
  std::vector<double> x = kStart;
  UniPC u(s.sigmas, x.size());
  for (int i = 0; i < 6; i++) {
    std::vector<float> v = toy_v(x, s.sigmas[i]);
    u.step(i, x.data(), v.data());
    expect_near_vec(x, want[size_t(i)], 1e-10, "unipc step");
  }
  // A second case: 3 steps, shift 1 (first order, then second order with corrector, then the final x0 step).
  FlowSchedule s1 = flow_schedule(3, 1.0);
  std::vector<double> y = kStart;
  UniPC u1(s1.sigmas, y.size());
  for (int i = 0; i < 3; i++) {
    std::vector<float> v = toy_v(y, s1.sigmas[i]);
    u1.step(i, y.data(), v.data());
  }
  expect_near_vec(y,
                  {-0.34749646628267239, -0.77482028715984175, 1.7236723777317038, 0.65089983827057363,
                   0.097700382549774756, 0.4609954156515349},
                  1e-10, "unipc N=3");
}

TEST(Sampler, UniPCRejectsOutOfOrderSteps) {
  FlowSchedule s = flow_schedule(4, 5.0);
  UniPC u(s.sigmas, 1);
  double x = 1.0;
  float v = 0.5f;
  EXPECT_THROW(u.step(1, &x, &v), Error);
}

TEST(Sampler, CfgCombine) {
  float c[2] = {1.0f, 3.0f};
  const float u[2] = {0.5f, -1.0f};
  cfg_combine(c, u, 2, 5.0);
  EXPECT_FLOAT_EQ(c[0], 0.5f + 5.0f * 0.5f);
  EXPECT_FLOAT_EQ(c[1], -1.0f + 5.0f * 4.0f);
}

TEST(Sampler, ParseSamplerAndNegativePrompt) {
  EXPECT_EQ(parse_sampler("rcm"), SamplerKind::RCM);
  EXPECT_EQ(parse_sampler("unipc"), SamplerKind::UniPC);
  EXPECT_EQ(parse_sampler("euler"), SamplerKind::Euler);
  EXPECT_THROW(parse_sampler("ddim"), Error);
  std::string neg = kWanDefaultNegativePrompt;
  EXPECT_EQ(neg.rfind("色调艳丽，过曝", 0), 0u);
  EXPECT_NE(neg.find("倒着走"), std::string::npos);
}

}  // namespace
}  // namespace pipeline
}  // namespace td
