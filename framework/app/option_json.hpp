// Option values as JSON, for the commands that print --json (plugins, plan).
#pragma once
#include <variant>

#include <nlohmann/json.hpp>

#include "patchbay/options.hpp"

namespace patchbay::cli {

inline nlohmann::json to_json(const OptionValue& v) {
  return std::visit([](const auto& x) { return nlohmann::json(x); }, v);
}

}  // namespace patchbay::cli
