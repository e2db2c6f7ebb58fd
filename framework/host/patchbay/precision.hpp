// train.precision: the number format of a run's forward passes.
//
//   fp32  everything in float32 (the default, and what every earlier run used);
//   bf16  autocast on the model's device: matrix products and convolutions in bfloat16
//         (oneDNN on the CPU, cuBLAS on CUDA), reductions, norms and losses in float32 as
//         autocast's policy has them; parameters, gradients and the optimiser's state stay
//         float32;
//   fp16  CUDA's autocast in float16, with a dynamic loss scale (train/grad_scaler.hpp);
//         refused on the CPU (ConfigError "config.unsupported_precision", config.cpp), where
//         LibTorch 1.13 has no fp16 autocast.
// Model::forward applies it (training, evaluation and latency alike) and returns float32
// logits; backward runs outside the scope, as autocast requires.
#pragma once
#include <string>

#include <c10/core/DeviceType.h>

#include "patchbay/export.hpp"

namespace patchbay {

enum class Precision { fp32, bf16, fp16 };

// "fp32" | "bf16" | "fp16"; throws ConfigError "config.bad_choice" otherwise.
PATCHBAY_API Precision precision_of(const std::string& name);
PATCHBAY_API const char* to_string(Precision precision);

// While it lives, this thread's forward passes on `device` (CPU or CUDA) run in `precision`
// (no-op for fp32). Nests like Python's torch.autocast: the cast-weight cache is cleared
// when the outermost scope ends. fp16 on the CPU is refused before a run starts (config.cpp);
// here it throws ConfigError "config.unsupported_precision".
class PATCHBAY_API AutocastScope {
 public:
  explicit AutocastScope(Precision precision, c10::DeviceType device = c10::DeviceType::CPU);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType device_ = c10::DeviceType::CPU;
  bool was_enabled_ = false;
  int previous_dtype_ = 0;  // at::ScalarType, kept as int so this header needs no ATen
};

}  // namespace patchbay
