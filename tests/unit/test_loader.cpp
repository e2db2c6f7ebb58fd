#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>

#include "helpers.hpp"
#include "patchbay/error.hpp"
#include "patchbay/loader.hpp"
#include "patchbay/plugin_abi.hpp"
#include "test_paths.hpp"

namespace fs = std::filesystem;
using namespace patchbay;

namespace {
fs::path fault(const std::string& name) { return fs::path(test::kFaultDir) / ("lib" + name + ".so"); }

// Loads `file` and returns the refusal.
PluginError refusal(const fs::path& file) {
  Registry r;
  PluginLoader loader(r);
  try {
    loader.load_file(file);
  } catch (const PluginError& e) {
    CHECK(r.size() == 0);
    return e;
  }
  FAIL("the loader accepted " << file);
  return PluginError("none", "");
}

std::string canonical_of(const fs::path& p) { return fs::weakly_canonical(p).string(); }
}  // namespace

TEST_SUITE("loader") {
TEST_CASE("loader: the build's plugins load and register every kind") {
  Registry r;
  PluginLoader loader(r);
  loader.load_directories({test::kPluginDir});
  CHECK(r.find(PluginKind::patcher, "fftp") != nullptr);
  CHECK(r.find(PluginKind::patcher, "square") != nullptr);
  CHECK(r.find(PluginKind::masker, "none") != nullptr);
  CHECK(r.find(PluginKind::backbone, "linear_probe") != nullptr);
  CHECK(r.find(PluginKind::dataset, "folder") != nullptr);
  CHECK(r.find(PluginKind::patcher, "fftp")->origin.file ==
        canonical_of(fs::path(test::kPluginDir) / "libfftp.so"));
  const size_t n = r.size();
  loader.load_directories({test::kPluginDir});  // loading again is a no-op
  CHECK(r.size() == n);
  size_t files = 0;
  for (const auto& f : fs::directory_iterator(test::kPluginDir)) files += f.path().extension() == ".so";
  CHECK(loader.libraries().size() == files);
}

TEST_CASE("loader: a missing file") {
  const auto e = refusal("/nonexistent/libnothing.so");
  CHECK(e.id() == "plugin.not_found");
  CHECK(std::string(e.what()) == "plugin file '/nonexistent/libnothing.so' does not exist; check "
                                 "the path or PATCHBAY_PLUGIN_PATH");
}

TEST_CASE("loader: a file that is not a shared library") {
  test::TempDir dir;
  const auto file = dir.path() / "libjunk.so";
  { std::ofstream(file) << "not an ELF file"; }
  const auto e = refusal(file);
  CHECK(e.id() == "plugin.load_failed");
  CHECK(std::string(e.what()).find(canonical_of(file)) != std::string::npos);
}

TEST_CASE("loader: a library without the entry point") {
  const auto e = refusal(fault("no_entry"));
  CHECK(e.id() == "plugin.no_entry_point");
  CHECK(std::string(e.what()) ==
        "'" + canonical_of(fault("no_entry")) + "' has no 'patchbay_plugin_entry' entry point, so it is "
        "not a patchbay plugin; build it with patchbay_add_plugin() or remove it from the plugin path");
}

TEST_CASE("loader: a library built for another ABI version") {
  const auto e = refusal(fault("bad_abi"));
  CHECK(e.id() == "plugin.abi_mismatch");
  CHECK(std::string(e.what()) == "plugin '" + canonical_of(fault("bad_abi")) +
                                     "' was built for patchbay ABI 999, this host speaks ABI " + std::to_string(PATCHBAY_PLUGIN_ABI_VERSION) + "; "
                                     "rebuild it against this patchbay");
}

TEST_CASE("loader: a library built by another compiler / LibTorch") {
  const auto e = refusal(fault("bad_build"));
  CHECK(e.id() == "plugin.build_mismatch");
  CHECK(std::string(e.what()) ==
        "plugin '" + canonical_of(fault("bad_build")) +
            "' was built with [gcc 4.8.5; cxx11abi 0; libtorch 1.4.0; patchbay abi 1], this host with [" +
            PluginLoader::host_build_id() + "]; rebuild it with the same compiler and LibTorch");
}

TEST_CASE("loader: a register function that throws registers nothing") {
  const auto e = refusal(fault("register_throws"));
  CHECK(e.id() == "plugin.register_failed");
  CHECK(std::string(e.what()) ==
        "plugin '" + canonical_of(fault("register_throws")) +
            "' failed to register: [test.register] this plugin always fails to register; fix the "
            "plugin or remove it from the plugin path");
}

TEST_CASE("loader: a duplicate name across two libraries names both files") {
  Registry r;
  PluginLoader loader(r);
  loader.load_file(fs::path(test::kPluginDir) / "libfftp.so");
  try {
    loader.load_file(fault("duplicate_fftp"));
    FAIL("expected plugin.duplicate");
  } catch (const PluginError& e) {
    CHECK(e.id() == "plugin.duplicate");
    CHECK(std::string(e.what()) ==
          "patcher 'fftp' is registered twice: by " + canonical_of(fs::path(test::kPluginDir) / "libfftp.so") +
              " and by " + canonical_of(fault("duplicate_fftp")) +
              "; remove one of the two libraries from the plugin path or rename one plugin");
  }
}

TEST_CASE("loader: PATCHBAY_PLUGIN_PATH is searched after the build's folder") {
  ::setenv("PATCHBAY_PLUGIN_PATH", "/first:/second::", 1);
  const auto dirs = PluginLoader::default_search_path();
  ::unsetenv("PATCHBAY_PLUGIN_PATH");
  REQUIRE(dirs.size() == 4);
  CHECK(dirs[0].filename() == "plugins");
  CHECK(dirs[2] == fs::path("/first"));
  CHECK(dirs[3] == fs::path("/second"));
}

TEST_CASE("loader: objects made by a plugin work across the boundary") {
  Registry r;
  PluginLoader loader(r);
  loader.load_directories({test::kPluginDir});
  PatcherContext ctx;
  auto patcher = r.make_patcher("fftp", Options::defaults(r.get(PluginKind::patcher, "fftp").description.options), ctx);
  CHECK(patcher->grid().tokens() == 29);
  // A plugin's ShapeError is caught as the core's type.
  auto opts = Options::defaults(r.get(PluginKind::patcher, "fftp").description.options);
  opts.set("patch_frames", int64_t{500});
  CHECK_THROWS_AS(r.make_patcher("fftp", opts, ctx), ShapeError);
}
}
