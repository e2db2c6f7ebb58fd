// Logging: leveled messages to stderr (spdlog inside the core; fmt-style format strings).
//
//   patchbay::log::info("loaded {} plugins from {}", n, dir);
//
// The level comes from PATCHBAY_LOG (trace, debug, info, warn, error, off; default info)
// or set_level(). Standard output is kept for results and --json output only.
#pragma once
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "patchbay/export.hpp"

namespace patchbay::log {

enum class Level { trace, debug, info, warn, error, off };

PATCHBAY_API void set_level(Level level);
PATCHBAY_API Level level();
// Parses "trace" .. "off"; throws ConfigError for anything else.
PATCHBAY_API Level parse_level(std::string_view name);
PATCHBAY_API void write(Level level, std::string_view message);

template <typename... Args>
void trace(fmt::format_string<Args...> f, Args&&... a) {
  if (level() <= Level::trace) write(Level::trace, fmt::format(f, std::forward<Args>(a)...));
}
template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... a) {
  if (level() <= Level::debug) write(Level::debug, fmt::format(f, std::forward<Args>(a)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... a) {
  if (level() <= Level::info) write(Level::info, fmt::format(f, std::forward<Args>(a)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... a) {
  if (level() <= Level::warn) write(Level::warn, fmt::format(f, std::forward<Args>(a)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... a) {
  if (level() <= Level::error) write(Level::error, fmt::format(f, std::forward<Args>(a)...));
}

}  // namespace patchbay::log
