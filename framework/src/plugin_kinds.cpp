#include "patchbay/plugin_kinds.hpp"

#include <ATen/ATen.h>

#include "patchbay/error.hpp"

namespace patchbay {

// Out of line: one vtable per interface, in the core library (see error.cpp).
Dataset::~Dataset() = default;
Patcher::~Patcher() = default;
Masker::~Masker() = default;
TokenDropper::~TokenDropper() = default;
Backbone::~Backbone() = default;

at::Tensor Backbone::forward_kept(const at::Tensor& /*tokens*/, const at::Tensor& /*keep*/) {
  throw ConfigError("config.token_drop_unsupported",
                    "this backbone cannot drop tokens (it does not implement Backbone::forward_kept); "
                    "set [token_dropper] plugin = \"none\" or pick a backbone that can");
}

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
