// Shared test helpers.
#pragma once
#include <filesystem>
#include <string>

#include "patchbay/registry.hpp"

namespace patchbay::test {

// A fresh empty folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Registers the in-tree plugins linked into the test binary (no dlopen).
void register_linked_plugins(Registry& registry);
// One process-wide registry holding the linked plugins.
const Registry& linked_registry();

// Runs a shell command; returns exit code, stdout and stderr.
struct Outcome {
  int code = -1;
  std::string out;
  std::string err;
};
Outcome run(const std::string& command);

}  // namespace patchbay::test
