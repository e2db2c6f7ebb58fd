// Finding and loading plugin libraries (Boost.DLL), then registering them.
//
//   patchbay::Registry registry;
//   patchbay::PluginLoader loader(registry);
//   loader.load_directories(patchbay::PluginLoader::default_search_path());
//
// Libraries are loaded once per process and never unloaded. Before calling anything in a
// library the loader checks its entry point: present, ABI version equal to the host's,
// struct size large enough, build id equal to the host's. Each refusal is a PluginError
// naming the file and what to do:
//   plugin.not_found       the file does not exist
//   plugin.load_failed     dlopen failed (missing dependency, not a shared library)
//   plugin.no_entry_point  no `patchbay_plugin_entry` symbol
//   plugin.abi_mismatch    different ABI version or struct size
//   plugin.build_mismatch  different compiler / LibTorch build
//   plugin.register_failed the plugin's register function threw
//   plugin.duplicate       a (kind, name) already registered by another file
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "patchbay/export.hpp"
#include "patchbay/registry.hpp"

namespace patchbay {

struct LoadedLibrary {
  std::filesystem::path file;
  std::string name;
  std::string version;
  std::string build_id;
};

class PATCHBAY_API PluginLoader {
 public:
  explicit PluginLoader(Registry& registry);

  // The plugin folder next to the running executable (build/plugins in the build tree,
  // lib/patchbay/plugins in an install), then each entry of PATCHBAY_PLUGIN_PATH
  // (colon-separated) in order.
  static std::vector<std::filesystem::path> default_search_path();
  // The build id this host accepts (PATCHBAY_BUILD_ID of the core library).
  static std::string host_build_id();

  // Loads one library and registers its factories. Loading the same file twice is a no-op.
  void load_file(const std::filesystem::path& file);
  // Loads every lib*.so in each folder, folders in order, files sorted by name. A folder that
  // does not exist is skipped (with a warning if it came from PATCHBAY_PLUGIN_PATH).
  // Stops at the first error.
  void load_directories(const std::vector<std::filesystem::path>& dirs);

  const std::vector<LoadedLibrary>& libraries() const { return libraries_; }

 private:
  Registry& registry_;
  std::vector<LoadedLibrary> libraries_;
};

}  // namespace patchbay
