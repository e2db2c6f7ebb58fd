// train.device (device.hpp) and fp16's loss scale (train/grad_scaler.hpp). What a CUDA device
// itself does is tested in test_trainer.cpp's CUDA cases, which run where LibTorch sees one
// (tools/gpu-check.sh); here, everything that can be checked without a GPU.
#include <doctest/doctest.h>

#include <limits>

#include <torch/cuda.h>
#include <torch/nn.h>

#include "patchbay/device.hpp"
#include "patchbay/error.hpp"
#include "train/grad_scaler.hpp"

using namespace patchbay;

TEST_SUITE("unit") {
TEST_CASE("device: cpu, cuda and cuda:N are devices; anything else is refused with what is accepted") {
  CHECK(device_of("cpu") == c10::Device(c10::DeviceType::CPU));
  CHECK(device_of("cuda") == c10::Device(c10::DeviceType::CUDA));
  CHECK_FALSE(device_of("cuda").has_index());
  CHECK(device_of("cuda:0") == c10::Device(c10::DeviceType::CUDA, 0));
  CHECK(device_of("cuda:12") == c10::Device(c10::DeviceType::CUDA, 12));
  for (const char* bad : {"", "gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "cuda:1:2", "cuda:99999", "mps", " cpu"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(device_of(bad), doctest::Contains("expected \"cpu\", \"cuda\" or \"cuda:N\""), ConfigError);
  }
}

TEST_CASE("device: a CUDA device this LibTorch cannot see is refused with what to do") {
  CHECK_NOTHROW(require_device(device_of("cpu")));
  CHECK_NOTHROW(seed_device(device_of("cpu"), 7));
  CHECK_NOTHROW(synchronize(device_of("cpu")));
  if (torch::cuda::is_available()) {
    const auto visible = static_cast<int>(torch::cuda::device_count());
    CHECK_NOTHROW(require_device(device_of("cuda")));
    CHECK_THROWS_WITH_AS(require_device(c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(visible))),
                         doctest::Contains("CUDA_VISIBLE_DEVICES"), ConfigError);
    return;
  }
  for (const char* name : {"cuda", "cuda:0", "cuda:1"}) {
    CAPTURE(name);
    try {
      require_device(device_of(name));
      FAIL("a CUDA device was accepted by a LibTorch that sees none");
    } catch (const ConfigError& e) {
      CHECK(e.id() == "config.device_unavailable");
      CHECK(std::string(e.what()).find("sees no CUDA device") != std::string::npos);
      CHECK(std::string(e.what()).find("train.device = \"cpu\"") != std::string::npos);
    }
  }
}

TEST_CASE("grad scaler: off, it changes nothing and takes every step") {
  GradScaler off(false);
  const auto loss = torch::tensor(2.5);
  CHECK(off.scale(loss).item<double>() == 2.5);
  auto p = torch::ones({3}, torch::requires_grad());
  p.mutable_grad() = torch::full({3}, std::numeric_limits<float>::infinity());
  CHECK(off.unscale({p}));  // not even inspected
  off.update(false);
  CHECK(off.state().scale == 65536.0);
}

TEST_CASE("grad scaler: scales the loss, unscales the gradients exactly, and adapts as PyTorch's") {
  GradScaler scaler(true);
  CHECK(scaler.state().scale == 65536.0);  // torch.amp.GradScaler's init_scale
  // The gradient of scale(loss) is scale x the true gradient; unscale gives it back exactly.
  auto w = torch::tensor({0.5f, -1.25f, 3.0f}, torch::requires_grad());
  const auto x = torch::tensor({1.0f, 2.0f, -0.75f});
  const auto loss = (w * x).sum();
  scaler.scale(loss).backward();
  CHECK(w.grad().eq(x * 65536.0f).all().item<bool>());
  auto unused = torch::zeros({2}, torch::requires_grad());  // no gradient: skipped
  CHECK(scaler.unscale({w, unused}));
  CHECK(w.grad().eq(x).all().item<bool>());
  // An overflowed gradient: the step must be skipped and the scale halved.
  w.mutable_grad() = torch::tensor({1.0f, std::numeric_limits<float>::infinity(), 0.0f});
  CHECK_FALSE(scaler.unscale({unused, w}));
  w.mutable_grad() = torch::tensor({std::numeric_limits<float>::quiet_NaN(), 0.0f, 0.0f});
  CHECK_FALSE(scaler.unscale({w}));
  scaler.update(false);
  CHECK(scaler.state().scale == 32768.0);
  CHECK(scaler.state().growth_tracker == 0);
  // 2,000 finite steps in a row double it; one overflow on the way starts the count again.
  for (int i = 0; i < 1999; ++i) scaler.update(true);
  CHECK(scaler.state().scale == 32768.0);
  scaler.update(true);
  CHECK(scaler.state().scale == 65536.0);
  for (int i = 0; i < 1500; ++i) scaler.update(true);
  scaler.update(false);
  for (int i = 0; i < 1999; ++i) scaler.update(true);
  CHECK(scaler.state().scale == 32768.0);
  // Its state round-trips (checkpoints).
  GradScaler resumed(true);
  resumed.set_state(scaler.state());
  scaler.update(true);
  resumed.update(true);
  CHECK(resumed.state().scale == scaler.state().scale);
  CHECK(resumed.state().growth_tracker == scaler.state().growth_tracker);
}
}
