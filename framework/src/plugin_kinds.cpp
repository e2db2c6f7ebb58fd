#include "patchbay/plugin_kinds.hpp"

#include <ATen/ATen.h>

namespace patchbay {

// Out of line: one vtable per interface, in the core library (see error.cpp).
Dataset::~Dataset() = default;
Patcher::~Patcher() = default;
Masker::~Masker() = default;
Backbone::~Backbone() = default;

const char* to_string(Split split) {
  switch (split) {
    case Split::train: return "train";
    case Split::valid: return "valid";
    case Split::test: return "test";
  }
  return "?";
}

at::Tensor full_frequency_cells(const at::Tensor& mask) {
  return mask.all(1).sum(1) * mask.size(1);
}

}  // namespace patchbay
