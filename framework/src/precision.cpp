#include "patchbay/precision.hpp"

#include <ATen/ATen.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <fmt/format.h>
#include <torch/library.h>
#include <torch/version.h>

#include "patchbay/error.hpp"
#include "torch_compat.hpp"

namespace patchbay {

Precision precision_of(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  if (name == "fp16") return Precision::fp16;
  throw ConfigError("config.bad_choice",
                    fmt::format("train.precision = \"{}\": expected \"fp32\", \"bf16\" or \"fp16\"", name));
}

const char* to_string(Precision precision) {
  switch (precision) {
    case Precision::fp32: return "fp32";
    case Precision::bf16: return "bf16";
    case Precision::fp16: return "fp16";
  }
  return "?";
}

namespace {

#if TORCH_VERSION_MAJOR < 2
// LibTorch 1.13's CPU autocast has no policy for layer_norm, and its CPU kernel refuses a
// bfloat16 input with float32 weights (the state after every autocast linear layer), so AST
// and AuM would fail at their first norm. PyTorch 2.x computes that mixed case in float32
// (aten/src/ATen/native/layer_norm.cpp, "mixed type"); we give 1.13 the same arithmetic as an
// autocast "fp32" policy: the input and the affine parameters are cast to float32, the norm
// runs in float32 and returns float32, as autocast's fp32 list does for the other norms and
// losses (aten/src/ATen/autocast_mode.cpp). The next matrix product casts back to bfloat16.
at::Tensor float32_of(const at::Tensor& t) {
  return t.defined() && t.scalar_type() == at::kBFloat16 ? t.to(at::kFloat) : t;
}

at::Tensor layer_norm_in_float32(const at::Tensor& input, at::IntArrayRef normalized_shape,
                                 const c10::optional<at::Tensor>& weight,
                                 const c10::optional<at::Tensor>& bias, double eps,
                                 bool cudnn_enable) {
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCPU);
  const auto optional_float32 = [](const c10::optional<at::Tensor>& t) {
    return t.has_value() ? c10::optional<at::Tensor>(float32_of(*t)) : t;
  };
  return at::layer_norm(float32_of(input), normalized_shape, optional_float32(weight),
                        optional_float32(bias), eps, cudnn_enable);
}

TORCH_LIBRARY_IMPL(aten, AutocastCPU, m) {
  m.impl("layer_norm", TORCH_FN(layer_norm_in_float32));
}
#endif

}  // namespace

// As torch.autocast(device_type, dtype) enters and exits (torch/amp/autocast_mode.py).
AutocastScope::AutocastScope(Precision precision, c10::DeviceType device) : device_(device) {
  if (precision == Precision::fp32) return;
  if (precision == Precision::fp16 && device == c10::DeviceType::CPU) {
    throw ConfigError("config.unsupported_precision",
                      "train.precision = \"fp16\" needs a CUDA device (LibTorch has no fp16 autocast on the "
                      "CPU); use \"bf16\" on the CPU, or \"fp32\"");
  }
  active_ = true;
  was_enabled_ = compat::autocast_enabled(device);
  previous_dtype_ = static_cast<int>(compat::autocast_dtype(device));
  compat::set_autocast_enabled(device, true);
  compat::set_autocast_dtype(device, precision == Precision::bf16 ? at::kBFloat16 : at::kHalf);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  compat::set_autocast_enabled(device_, was_enabled_);
  compat::set_autocast_dtype(device_, static_cast<at::ScalarType>(previous_dtype_));
}

}  // namespace patchbay
