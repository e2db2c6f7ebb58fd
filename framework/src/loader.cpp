#include "patchbay/loader.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <fmt/format.h>

#include "patchbay/error.hpp"
#include "patchbay/log.hpp"
#include "patchbay/plugin_abi.hpp"

namespace fs = std::filesystem;

namespace patchbay {
namespace {

// Every library ever loaded, by canonical path. Leaked on purpose: libraries are never
// unloaded (unloading a LibTorch user crashes at exit), and the handles must outlive every
// static destructor that might still touch plugin code.
struct LoadedSet {
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<boost::dll::shared_library>> by_path;
};
LoadedSet& loaded_set() {
  static auto* set = new LoadedSet;
  return *set;
}

std::vector<fs::path> split_path_list(const char* list) {
  std::vector<fs::path> out;
  if (list == nullptr) return out;
  std::string s(list);
  size_t start = 0;
  while (start <= s.size()) {
    const size_t colon = s.find(':', start);
    const std::string part = s.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (!part.empty()) out.emplace_back(part);
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return out;
}

}  // namespace

PluginLoader::PluginLoader(Registry& registry) : registry_(registry) {}

std::string PluginLoader::host_build_id() { return PATCHBAY_BUILD_ID; }

std::vector<fs::path> PluginLoader::default_search_path() {
  std::vector<fs::path> dirs;
  const fs::path exe_dir = boost::dll::program_location().parent_path().string();
  dirs.push_back(exe_dir / "plugins");                             // build tree: build/plugins
  dirs.push_back(exe_dir.parent_path() / "lib" / "patchbay" / "plugins");  // install: lib/patchbay/plugins
  for (auto& d : split_path_list(std::getenv("PATCHBAY_PLUGIN_PATH"))) dirs.push_back(d);
  return dirs;
}

void PluginLoader::load_file(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    throw PluginError("plugin.not_found",
                      fmt::format("plugin file '{}' does not exist; check the path or "
                                  "PATCHBAY_PLUGIN_PATH", file.string()));
  }
  const std::string canonical = fs::weakly_canonical(file, ec).string();
  auto& set = loaded_set();
  std::shared_ptr<boost::dll::shared_library> library;
  {
    std::lock_guard<std::mutex> lock(set.mutex);
    for (const auto& l : libraries_) {
      if (fs::weakly_canonical(l.file, ec).string() == canonical) return;  // already registered here
    }
    auto it = set.by_path.find(canonical);
    if (it != set.by_path.end()) {
      library = it->second;
    } else {
      try {
        // RTLD_LOCAL: plugins cannot see each other's symbols; RTLD_NOW: a missing symbol
        // is reported here, naming the file, not later in the middle of a run.
        library = std::make_shared<boost::dll::shared_library>(
            canonical, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
      } catch (const std::exception& e) {
        throw PluginError("plugin.load_failed",
                          fmt::format("cannot load plugin '{}': {}; is it a patchbay plugin built "
                                      "for this machine, with its libraries installed?",
                                      canonical, e.what()));
      }
      set.by_path.emplace(canonical, library);
    }
  }

  if (!library->has(PATCHBAY_PLUGIN_ENTRY_SYMBOL)) {
    throw PluginError("plugin.no_entry_point",
                      fmt::format("'{}' has no '{}' entry point, so it is not a patchbay plugin; "
                                  "build it with patchbay_add_plugin() or remove it from the "
                                  "plugin path", canonical, PATCHBAY_PLUGIN_ENTRY_SYMBOL));
  }
  auto entry = library->get<const PatchbayPluginInfo*()>(PATCHBAY_PLUGIN_ENTRY_SYMBOL);
  const PatchbayPluginInfo* info = entry();
  if (info == nullptr) {
    throw PluginError("plugin.abi_mismatch",
                      fmt::format("plugin '{}' returned no plugin info; rebuild it", canonical));
  }
  // Only the first two fields are read before the version is known to match.
  if (info->abi_version != PATCHBAY_PLUGIN_ABI_VERSION) {
    throw PluginError("plugin.abi_mismatch",
                      fmt::format("plugin '{}' was built for patchbay ABI {}, this host speaks "
                                  "ABI {}; rebuild it against this patchbay",
                                  canonical, info->abi_version, PATCHBAY_PLUGIN_ABI_VERSION));
  }
  if (info->struct_size < sizeof(PatchbayPluginInfo)) {
    throw PluginError("plugin.abi_mismatch",
                      fmt::format("plugin '{}' reports a plugin info of {} bytes, this host "
                                  "expects {}; rebuild it against this patchbay",
                                  canonical, info->struct_size, sizeof(PatchbayPluginInfo)));
  }
  const std::string build_id = info->build_id ? info->build_id : "";
  if (build_id != host_build_id()) {
    throw PluginError("plugin.build_mismatch",
                      fmt::format("plugin '{}' was built with [{}], this host with [{}]; rebuild "
                                  "it with the same compiler and LibTorch", canonical, build_id,
                                  host_build_id()));
  }
  if (info->register_plugin == nullptr || info->name == nullptr || info->version == nullptr) {
    throw PluginError("plugin.abi_mismatch",
                      fmt::format("plugin '{}' has an incomplete plugin info; rebuild it", canonical));
  }

  PluginOrigin origin;
  origin.library = info->name;
  origin.version = info->version;
  origin.file = canonical;
  origin.keep_alive = library;
  auto fn = info->register_plugin;
  registry_.register_library(origin, [&](Registrar& r) {
    char error[2048] = {0};
    if (fn(&r, error, sizeof error) != 0) {
      throw PluginError("plugin.register_failed",
                        fmt::format("plugin '{}' failed to register: {}; fix the plugin or remove "
                                    "it from the plugin path", canonical, error));
    }
  });
  libraries_.push_back({canonical, info->name, info->version, build_id});
  log::debug("loaded plugin {} {} from {}", info->name, info->version, canonical);
}

void PluginLoader::load_directories(const std::vector<fs::path>& dirs) {
  const auto env_dirs = split_path_list(std::getenv("PATCHBAY_PLUGIN_PATH"));
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      if (std::find(env_dirs.begin(), env_dirs.end(), dir) != env_dirs.end()) {
        log::warn("PATCHBAY_PLUGIN_PATH names '{}', which is not a folder; skipped", dir.string());
      }
      continue;
    }
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const auto name = entry.path().filename().string();
      if (entry.is_regular_file() && name.rfind("lib", 0) == 0 && entry.path().extension() == ".so") {
        files.push_back(entry.path());
      }
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) load_file(f);
  }
}

}  // namespace patchbay
