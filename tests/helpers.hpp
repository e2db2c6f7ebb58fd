// Shared test helpers.
#pragma once
#include <filesystem>
#include <map>
#include <string>

#include "patchbay/config.hpp"
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

// The run id a configuration had before the options added since the first results existed
// (execution-only keys, init_weights, match_paper_macs / match_by): the 8-hex-digit hash of
// its identity text without those lines. Tests that new options left ids as they were.
std::string id_hash_without_later_options(const ResolvedConfig& config);

// Every file under `root` (relative path -> bytes), to compare generated folders.
std::map<std::string, std::string> snapshot(const std::filesystem::path& root);
// The paths whose bytes differ between two snapshots (or exist on one side only), joined by
// spaces: empty when equal, readable when not.
std::string differences(const std::map<std::string, std::string>& a,
                        const std::map<std::string, std::string>& b);

// Runs a shell command; returns exit code, stdout and stderr.
struct Outcome {
  int code = -1;
  std::string out;
  std::string err;
};
Outcome run(const std::string& command);

// A 3-word keyword set (8 clips per word, Speech Commands layout) that build/patchbay
// generates once per test process, for the CLI tests that train.
const std::filesystem::path& tiny_keywords();

}  // namespace patchbay::test
