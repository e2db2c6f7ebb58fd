// train.precision: bf16 autocast on the CPU (precision.hpp), through the model and a whole run.
#include <doctest/doctest.h>

#include <torch/nn.h>

#include <fmt/format.h>

#include "helpers.hpp"
#include "patchbay/config.hpp"
#include "patchbay/error.hpp"
#include "patchbay/model.hpp"
#include "patchbay/precision.hpp"
#include "torch_compat.hpp"

using namespace patchbay;

namespace {

bool has_dtype(const at::Tensor& t, at::ScalarType type) { return t.scalar_type() == type; }

ResolvedConfig config_of(const std::string& backbone, const std::string& precision) {
  const std::string text = fmt::format(
      "[dataset]\nplugin = \"folder\"\nroot = \"data\"\n[frontend]\ntarget_frames = 64\n"
      "[patcher]\nplugin = \"fftp\"\nstride = 8\n[backbone]\n{}\n[train]\nprecision = \"{}\"\n",
      backbone, precision);
  return load_experiment_text(text, "exp.toml", {}, test::linked_registry()).runs.front().config;
}

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("precision: the bf16 scope makes matrix products bfloat16, and ends cleanly") {
  const auto a = torch::randn({4, 8}), b = torch::randn({8, 3});
  CHECK(has_dtype(at::matmul(a, b), at::kFloat));
  {
    const AutocastScope outer(Precision::bf16);
    CHECK(has_dtype(at::matmul(a, b), at::kBFloat16));
    {
      const AutocastScope inner(Precision::bf16);  // nests, as torch.autocast does
      CHECK(has_dtype(at::matmul(a, b), at::kBFloat16));
    }
    CHECK(compat::autocast_enabled(c10::DeviceType::CPU));  // the inner scope left the outer one on
    CHECK(has_dtype(at::matmul(a, b), at::kBFloat16));
  }
  CHECK_FALSE(compat::autocast_enabled(c10::DeviceType::CPU));
  CHECK(has_dtype(at::matmul(a, b), at::kFloat));
  {
    const AutocastScope none(Precision::fp32);  // a no-op
    CHECK(has_dtype(at::matmul(a, b), at::kFloat));
  }
  {
    // A bfloat16 activation into a float32 LayerNorm, the state after every autocast linear
    // layer: LibTorch 1.13's CPU kernel refuses mixed types unless our float32 policy is in.
    const AutocastScope scope(Precision::bf16);
    torch::nn::LayerNorm norm(torch::nn::LayerNormOptions({8}));
    const auto x = torch::randn({4, 8});
    const auto y = norm(x.to(at::kBFloat16));
    const auto exact = norm(x.to(at::kBFloat16).to(at::kFloat));
#if PATCHBAY_TORCH_AT_LEAST(2, 0)
    // PyTorch 2.x's kernel takes the mixed case itself: float32 arithmetic, the input's
    // bfloat16 out (as torch.autocast("cpu") gives in Python), so one bfloat16 rounding.
    CHECK(has_dtype(y, at::kBFloat16));
    CHECK((y.to(at::kFloat) - exact).abs().max().item<double>() <= 8e-3 * exact.abs().max().item<double>());
#else
    CHECK(has_dtype(y, at::kFloat));
    CHECK((y - exact).abs().max().item<double>() == 0.0);
#endif
  }
  CHECK(precision_of("bf16") == Precision::bf16);
  CHECK_THROWS_AS(precision_of("fp8"), ConfigError);
}

TEST_CASE("precision: a bf16 model gives float32 logits near fp32's, and float32 gradients") {
  for (const char* backbone : {"plugin = \"ast\"\npreset = \"tiny\"\ndepth = 2",
                               "plugin = \"aum\"\npreset = \"tiny\"\ndepth = 2"}) {
    CAPTURE(backbone);
    torch::manual_seed(0);
    Model fp32 = build_model(config_of(backbone, "fp32"), test::linked_registry(), 5);
    torch::manual_seed(0);
    Model bf16 = build_model(config_of(backbone, "bf16"), test::linked_registry(), 5);
    REQUIRE(bf16.precision == Precision::bf16);
    const auto spec = torch::randn({3, 1, 128, 64});
    const auto exact = fp32.forward(spec);
    const auto approx = bf16.forward(spec);
    CHECK(has_dtype(approx, at::kFloat));
    const double gap = (approx - exact).abs().max().item<double>();
    const double scale = exact.abs().max().item<double>();
    CHECK_MESSAGE(gap > 0.0, "bf16 changed nothing: autocast was not applied");  // the option is real
    CHECK_MESSAGE(gap < 0.1 * scale + 0.05, gap, " vs ", scale);                 // and only rounding
    approx.sum().backward();
    for (const auto& p : bf16.parameters()) {
      if (p.grad().defined()) CHECK(has_dtype(p.grad(), at::kFloat));
      CHECK(has_dtype(p, at::kFloat));  // parameters stay float32
    }
  }
}

TEST_CASE("precision: fp16 on the CPU is refused where the option is written") {
  const std::string text =
      "[dataset]\nplugin = \"folder\"\nroot = \"data\"\n[patcher]\nplugin = \"fftp\"\n"
      "[backbone]\nplugin = \"linear_probe\"\n[train]\nprecision = \"fp16\"\n";
  CHECK_THROWS_WITH_AS(load_experiment_text(text, "exp.toml", {}, test::linked_registry()),
                       doctest::Contains("exp.toml:9:13: train.precision = \"fp16\" needs a CUDA device"),
                       ConfigError);
  // With a CUDA device it plans (the device itself is asked when the run starts).
  CHECK(load_experiment_text(text, "exp.toml", {"train.device=cuda"}, test::linked_registry()).runs.size() == 1);
  // And the autocast scope refuses it on the CPU too, whoever asks.
  CHECK_THROWS_AS(AutocastScope(Precision::fp16, c10::DeviceType::CPU), ConfigError);
  // fp32, the default, leaves the run id as it was before the option existed; bf16 is another run.
  const auto base = config_of("plugin = \"linear_probe\"", "fp32");
  CHECK(base.hash() == test::id_hash_without_later_options(base));
  CHECK(config_of("plugin = \"linear_probe\"", "bf16").hash() != base.hash());
}
}
