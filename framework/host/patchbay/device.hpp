// train.device: where a run's model computes.
//
//   "cpu"     the default; every earlier run;
//   "cuda"    the current CUDA device (cuda:0 unless CUDA_VISIBLE_DEVICES says otherwise);
//   "cuda:N"  CUDA device N.
//
// What moves: the model (parameters, buffers, optimiser state) and each batch on its way
// into Model::forward. What stays on the CPU: the features, every random draw of the
// training loop (shuffle, mixup, masks, kept tokens: one CPU generator, so a seed draws
// the same masks on every device) and the metrics (logits come back to the CPU).
// Dropout inside a backbone draws on the model's device, from that device's generator,
// seeded with train.seed.
#pragma once
#include <cstdint>
#include <string>

#include <c10/core/Device.h>

#include "patchbay/export.hpp"

namespace patchbay {

// "cpu" | "cuda" | "cuda:N" -> the device. Throws ConfigError "config.bad_device" for any
// other text (the message says what is accepted). Does not ask whether the device exists.
PATCHBAY_API c10::Device device_of(const std::string& name);

// Throws ConfigError "config.device_unavailable" when `device` cannot be used here: a CUDA
// device with a LibTorch built without CUDA, no CUDA device visible, or index N >= the
// devices visible. The message names the LibTorch and what to do.
PATCHBAY_API void require_device(const c10::Device& device);

// Seeds the generators of `device` (a no-op for the CPU, whose generator torch::manual_seed
// seeds).
PATCHBAY_API void seed_device(const c10::Device& device, uint64_t seed);

// Waits until the work queued on `device` has finished (timing on CUDA, whose kernels run
// asynchronously); a no-op on the CPU.
PATCHBAY_API void synchronize(const c10::Device& device);

}  // namespace patchbay
