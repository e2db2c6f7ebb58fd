// The one place where patchbay meets LibTorch API that differs between the versions it
// builds against: Debian 12's 1.13 (CI) and 2.x (pytorch.org's archives, a CUDA machine's
// PyTorch, Debian 13's 2.6). Everything else in the code base compiles on both as it is;
// docs/design.md, "Any LibTorch", says how this was checked.
#pragma once
#include <ATen/autocast_mode.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>
#include <torch/version.h>

#include <type_traits>
#include <utility>

#define PATCHBAY_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace patchbay::compat {

// Autocast's per-device switches: 2.4 replaced the per-device functions (is_cpu_enabled,
// set_autocast_gpu_dtype, ...) with ones that take the device type.
inline bool autocast_enabled(c10::DeviceType device) {
#if PATCHBAY_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
#endif
}

inline void set_autocast_enabled(c10::DeviceType device, bool on) {
#if PATCHBAY_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(device, on);
#else
  if (device == c10::DeviceType::CPU) {
    at::autocast::set_cpu_enabled(on);
  } else {
    at::autocast::set_enabled(on);
  }
#endif
}

inline at::ScalarType autocast_dtype(c10::DeviceType device) {
#if PATCHBAY_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(device);
#else
  return device == c10::DeviceType::CPU ? at::autocast::get_autocast_cpu_dtype()
                                        : at::autocast::get_autocast_gpu_dtype();
#endif
}

inline void set_autocast_dtype(c10::DeviceType device, at::ScalarType dtype) {
#if PATCHBAY_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == c10::DeviceType::CPU) {
    at::autocast::set_autocast_cpu_dtype(dtype);
  } else {
    at::autocast::set_autocast_gpu_dtype(dtype);
  }
#endif
}

// c10d::TCPStoreOptions: 2.4 made the libuv server the default, and a LibTorch built without
// libuv (Debian 13's 2.6) then refuses every rendezvous ("use_libuv was requested but
// PyTorch was build without libuv support"). The classic server is in every build, and is
// the one 1.13 has, so patchbay asks for it wherever the option exists.
template <class StoreOptions, class = void>
struct has_use_libuv : std::false_type {};
template <class StoreOptions>
struct has_use_libuv<StoreOptions, std::void_t<decltype(std::declval<StoreOptions&>().useLibUV)>> : std::true_type {};

template <class StoreOptions>
void use_classic_tcp_store(StoreOptions& options) {
  if constexpr (has_use_libuv<StoreOptions>::value) options.useLibUV = false;
}

}  // namespace patchbay::compat
