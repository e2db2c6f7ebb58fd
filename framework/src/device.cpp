#include "patchbay/device.hpp"

#include <cctype>

#include <fmt/format.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include "patchbay/error.hpp"

namespace patchbay {

c10::Device device_of(const std::string& name) {
  if (name == "cpu") return c10::Device(c10::DeviceType::CPU);
  if (name == "cuda") return c10::Device(c10::DeviceType::CUDA);
  const std::string prefix = "cuda:";
  if (name.rfind(prefix, 0) == 0 && name.size() > prefix.size() && name.size() <= prefix.size() + 3) {
    bool digits = true;
    for (size_t i = prefix.size(); i < name.size(); ++i) digits = digits && std::isdigit(static_cast<unsigned char>(name[i]));
    if (digits) return c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(std::stoi(name.substr(prefix.size()))));
  }
  throw ConfigError("config.bad_device",
                    fmt::format("train.device = \"{}\": expected \"cpu\", \"cuda\" or \"cuda:N\" (N a device "
                                "number, e.g. \"cuda:1\")", name));
}

void require_device(const c10::Device& device) {
  if (device.is_cpu()) return;
  if (!device.is_cuda()) {
    throw ConfigError("config.device_unavailable", fmt::format("train.device = \"{}\" is not a device patchbay "
                                                               "trains on; use \"cpu\" or \"cuda\"", device.str()));
  }
  const size_t visible = torch::cuda::is_available() ? torch::cuda::device_count() : 0;
  if (visible == 0) {
    throw ConfigError("config.device_unavailable",
                      fmt::format("train.device = \"{}\" but this LibTorch ({}) sees no CUDA device: it was built "
                                  "without CUDA (Debian's libtorch-dev is), or the machine has no GPU or driver; "
                                  "build patchbay against a CUDA LibTorch (README, \"GPUs\") or set "
                                  "train.device = \"cpu\"", device.str(), TORCH_VERSION));
  }
  if (device.has_index() && static_cast<size_t>(device.index()) >= visible) {
    throw ConfigError("config.device_unavailable",
                      fmt::format("train.device = \"{}\" but only {} CUDA device{} visible (cuda:0{}); pick one "
                                  "of those, or check CUDA_VISIBLE_DEVICES", device.str(), visible,
                                  visible == 1 ? " is" : "s are",
                                  visible > 1 ? fmt::format(" .. cuda:{}", visible - 1) : std::string()));
  }
}

void seed_device(const c10::Device& device, uint64_t seed) {
  if (device.is_cuda()) torch::cuda::manual_seed_all(seed);
}

void synchronize(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.has_index() ? device.index() : -1);
}

}  // namespace patchbay
