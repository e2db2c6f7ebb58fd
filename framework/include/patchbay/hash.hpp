// stable_hash: 64-bit FNV-1a of a string. The same on every platform and standard library
// (std::hash is not), so run ids, hashed dataset splits and generated speaker ids never
// change between builds.
#pragma once
#include <cstdint>
#include <string_view>

namespace patchbay {

inline uint64_t stable_hash(std::string_view text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace patchbay
