// Exceptions thrown by patchbay and by plugins.
//
// Every error carries a stable id ("config.unknown_key", "plugin.abi_mismatch", ...) that
// tests assert and users can search for, and a message that says what was wrong, where, and
// what to do. Plugins throw only these types (or std::exception, which the host wraps).
//
//   try { ... } catch (const patchbay::Error& e) { fmt::print("error [{}]: {}", e.id(), e.what()); }
#pragma once
#include <stdexcept>
#include <string>

#include "patchbay/export.hpp"

namespace patchbay {

class PATCHBAY_API Error : public std::runtime_error {
 public:
  Error(std::string id, const std::string& message);
  ~Error() override;
  // Stable machine-readable id, "<area>.<what>".
  const std::string& id() const noexcept { return id_; }

 private:
  std::string id_;
};

// Experiment files, command-line overrides, option values.
class PATCHBAY_API ConfigError : public Error {
 public:
  using Error::Error;
  ~ConfigError() override;
};

// Loading and registering plugins.
class PATCHBAY_API PluginError : public Error {
 public:
  using Error::Error;
  ~PluginError() override;
};

// Tensor shapes or geometry that a plugin cannot accept (e.g. a patch larger than the input).
class PATCHBAY_API ShapeError : public Error {
 public:
  using Error::Error;
  ~ShapeError() override;
};

// Dataset files: missing, unreadable, malformed.
class PATCHBAY_API DataError : public Error {
 public:
  using Error::Error;
  ~DataError() override;
};

}  // namespace patchbay
