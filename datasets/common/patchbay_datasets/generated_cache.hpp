// The cache of the built-in datasets (keywords, instruments): a dataset generated on first
// use into a folder that later runs reuse.
//
// Where: dataset.root when given, otherwise a folder under $PATCHBAY_DATA_DIR, or
// $XDG_CACHE_HOME/patchbay/datasets (~/.cache/patchbay/datasets). A folder is used when its
// marker file (e.g. .patchbay-keywords) holds exactly the expected text (generator version and
// options); a folder with other contents is refused with what to do. Generation happens once:
// under a lock file (two runs starting together wait for one generation), into a temporary
// sibling folder that is renamed into place when complete, so a kill mid-way never leaves a
// half dataset behind.
//
// Errors (DataError), with <name> the dataset: "data.<name>_mismatch" (generated with other
// options), "data.<name>_not_ours" (not empty, no marker), "data.<name>_write" (the parent
// folder is not writable).
#pragma once
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>

#include <fmt/format.h>

#include "patchbay/error.hpp"
#include "patchbay/hash.hpp"
#include "patchbay/log.hpp"

namespace patchbay::datasets {

// The folder that holds the generated datasets when dataset.root is empty.
inline std::filesystem::path generated_data_dir() {
  namespace fs = std::filesystem;
  if (const char* dir = std::getenv("PATCHBAY_DATA_DIR"); dir && *dir) return dir;
  if (const char* cache = std::getenv("XDG_CACHE_HOME"); cache && *cache) {
    return fs::path(cache) / "patchbay" / "datasets";
  }
  if (const char* home = std::getenv("HOME"); home && *home) {
    return fs::path(home) / ".cache" / "patchbay" / "datasets";
  }
  return fs::temp_directory_path() / "patchbay" / "datasets";
}

// The default folder of one generated dataset: one per (generator version, per_class, seed,
// everything else the bytes depend on, hashed), e.g. keywords-k3-n100-s0-1a2b3c4d.
inline std::filesystem::path generated_root(const std::string& name, const std::string& version,
                                            int64_t per_class, int64_t seed, const std::string& other) {
  return generated_data_dir() / fmt::format("{}-{}-n{}-s{}-{:08x}", name, version, per_class, seed,
                                            stable_hash(other) & 0xffffffffu);
}

// A progress callback for a generation inside a run: logs "<name>: done/total clips" at
// every tenth.
inline std::function<void(int64_t, int64_t)> progress_log(const std::string& name) {
  auto last_decile = std::make_shared<int64_t>(0);
  return [name, last_decile](int64_t done, int64_t all) {
    const int64_t decile = all > 0 ? done * 10 / all : 10;
    if (decile > *last_decile) {
      *last_decile = decile;
      log::info("{}: {}/{} clips", name, done, all);
    }
  };
}

class GeneratedCache {
 public:
  // `name`: the dataset ("keywords"); the marker file is ".patchbay-<name>" and holds `marker`.
  GeneratedCache(std::string name, std::string marker)
      : name_(std::move(name)), marker_file_(".patchbay-" + name_), marker_(std::move(marker)) {}

  const std::string& marker_file() const { return marker_file_; }

  // True when `root` holds a complete dataset with this marker; false when it is missing or
  // an empty folder; throws when it holds something else.
  bool ready(const std::filesystem::path& root) const {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::exists(root, ec)) return false;
    if (fs::exists(root / marker_file_, ec)) {
      const std::string found = slurp(root / marker_file_);
      if (found == marker_) return true;
      throw DataError("data." + name_ + "_mismatch",
                      fmt::format("dataset '{0}': '{1}' holds a {0} dataset generated with other "
                                  "options:\n{2}\nwanted:\n{3}delete that folder to regenerate it, "
                                  "or point dataset.root elsewhere (or leave it empty for the cache)",
                                  name_, root.string(), found, marker_));
    }
    if (fs::is_directory(root, ec) && fs::is_empty(root, ec)) return false;
    throw DataError("data." + name_ + "_not_ours",
                    fmt::format("dataset '{0}': '{1}' exists but was not made by the {0} generator "
                                "(no {2} file); choose an empty or new folder for dataset.root, or "
                                "leave it empty to use the cache", name_, root.string(), marker_file_));
  }

  // Makes `root` hold the dataset: returns at once when it does, otherwise takes the lock and
  // (unless another process finished meanwhile) calls generate(temp) on a fresh temporary
  // sibling folder, writes the marker into it and renames it to `root`.
  void ensure(const std::filesystem::path& root,
              const std::function<void(const std::filesystem::path&)>& generate) const {
    namespace fs = std::filesystem;
    if (ready(root)) return;
    std::error_code ec;
    fs::create_directories(root.parent_path(), ec);
    const fs::path lock_file = root.string() + ".lock";
    const int fd = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      throw DataError("data." + name_ + "_write",
                      fmt::format("dataset '{}': cannot write in '{}'; set dataset.root or "
                                  "PATCHBAY_DATA_DIR to a writable folder", name_,
                                  root.parent_path().string()));
    }
    ::flock(fd, LOCK_EX);  // another process may be generating the same dataset: wait for it
    const fs::path temp = root.string() + fmt::format(".tmp-{}", ::getpid());
    try {
      if (!ready(root)) {
        fs::remove_all(temp, ec);
        generate(temp);
        std::ofstream(temp / marker_file_) << marker_;
        fs::remove_all(root, ec);  // only an empty folder can be here (ready() checked)
        fs::rename(temp, root);
      }
    } catch (...) {
      fs::remove_all(temp, ec);  // no half dataset left behind
      ::close(fd);
      throw;
    }
    ::close(fd);
  }

 private:
  static std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::string name_, marker_file_, marker_;
};

}  // namespace patchbay::datasets
