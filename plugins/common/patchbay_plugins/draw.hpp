// Scalar random draws from the run's generator, for maskers that place a handful of masks
// per example. Every draw goes through the generator passed to Masker::apply, so the same
// seed gives the same masks; the generator's mutex is held for the whole draw sequence.
#pragma once
#include <cstdint>
#include <mutex>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>

namespace patchbay::plugins {

class Draw {
 public:
  explicit Draw(at::Generator& generator)
      : lock_(generator.mutex()), gen_(at::check_generator<at::CPUGeneratorImpl>(generator)) {}

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(gen_->random64() >> 11) * (1.0 / 9007199254740992.0); }
  // Uniform integer in [0, n); n >= 1.
  int64_t below(int64_t n) { return n <= 1 ? 0 : static_cast<int64_t>(uniform() * static_cast<double>(n)); }

 private:
  std::lock_guard<std::mutex> lock_;
  at::CPUGeneratorImpl* gen_;
};

}  // namespace patchbay::plugins
