#include "patchbay/log.hpp"

#include <atomic>
#include <cstdlib>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "patchbay/error.hpp"

namespace patchbay::log {
namespace {

spdlog::logger& logger() {
  // Leaked on purpose: plugins may log from destructors that run during exit.
  static auto* instance = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto* l = new spdlog::logger("patchbay", sink);
    l->set_pattern("[%H:%M:%S] %^%l%$ %v");
    l->set_level(spdlog::level::trace);  // filtering happens in level() below
    return l;
  }();
  return *instance;
}

Level initial_level() {
  const char* env = std::getenv("PATCHBAY_LOG");
  if (env == nullptr || *env == '\0') return Level::info;
  try {
    return parse_level(env);
  } catch (const Error&) {
    return Level::info;
  }
}

std::atomic<Level>& current() {
  static std::atomic<Level> level{initial_level()};
  return level;
}

}  // namespace

void set_level(Level level) { current().store(level); }
Level level() { return current().load(std::memory_order_relaxed); }

Level parse_level(std::string_view name) {
  if (name == "trace") return Level::trace;
  if (name == "debug") return Level::debug;
  if (name == "info") return Level::info;
  if (name == "warn") return Level::warn;
  if (name == "error") return Level::error;
  if (name == "off") return Level::off;
  throw ConfigError("log.bad_level", fmt::format("unknown log level '{}'; use one of trace, debug, "
                                                 "info, warn, error, off", name));
}

void write(Level level, std::string_view message) {
  static constexpr spdlog::level::level_enum map[] = {
      spdlog::level::trace, spdlog::level::debug, spdlog::level::info,
      spdlog::level::warn,  spdlog::level::err,   spdlog::level::off};
  logger().log(map[static_cast<int>(level)], message);
}

}  // namespace patchbay::log
