#include <doctest/doctest.h>

#include <ATen/ATen.h>

#include "helpers.hpp"
#include "patchbay/error.hpp"
#include "patchbay/registry.hpp"

using namespace patchbay;

namespace {
class PassThrough final : public Masker {
 public:
  MaskResult apply(const at::Tensor& s, const MaskContext&, at::Generator&) const override { return {s, s, {}}; }
};
PluginOrigin origin(const std::string& file) {
  PluginOrigin o;
  o.library = "test";
  o.version = "1.2.3";
  o.file = file;
  return o;
}
void add_masker(Registrar& r, const std::string& name) {
  r.add_masker({name, "help", {}}, [](const Options&) { return std::make_shared<PassThrough>(); });
}
}  // namespace

TEST_SUITE("unit") {
TEST_CASE("registry: entries are keyed by kind and name, listed sorted, with their origin") {
  Registry r;
  r.register_library(origin("/a/libx.so"), [](Registrar& reg) {
    add_masker(reg, "zeta");
    add_masker(reg, "alpha");
  });
  CHECK(r.names(PluginKind::masker) == std::vector<std::string>{"alpha", "zeta"});
  CHECK(r.names(PluginKind::patcher).empty());
  REQUIRE(r.find(PluginKind::masker, "alpha") != nullptr);
  CHECK(r.find(PluginKind::masker, "alpha")->origin.file == "/a/libx.so");
  CHECK(r.find(PluginKind::masker, "alpha")->origin.version == "1.2.3");
  CHECK(r.find(PluginKind::patcher, "alpha") == nullptr);
  CHECK(r.make_masker("alpha", {}) != nullptr);
}

TEST_CASE("registry: a duplicate name is an error naming both files") {
  Registry r;
  r.register_library(origin("/a/liba.so"), [](Registrar& reg) { add_masker(reg, "specmask"); });
  try {
    r.register_library(origin("/b/libb.so"), [](Registrar& reg) { add_masker(reg, "specmask"); });
    FAIL("expected plugin.duplicate");
  } catch (const PluginError& e) {
    CHECK(e.id() == "plugin.duplicate");
    CHECK(std::string(e.what()) ==
          "masker 'specmask' is registered twice: by /a/liba.so and by /b/libb.so; remove one of "
          "the two libraries from the plugin path or rename one plugin");
  }
  CHECK(r.size() == 1);
}

TEST_CASE("registry: a failing register function leaves nothing behind") {
  Registry r;
  CHECK_THROWS_AS(r.register_library(origin("/c/libc.so"),
                                     [](Registrar& reg) {
                                       add_masker(reg, "first");
                                       throw std::runtime_error("boom");
                                     }),
                  std::runtime_error);
  CHECK(r.size() == 0);
}

TEST_CASE("registry: an unknown name lists what exists and suggests the nearest") {
  Registry r;
  r.register_library(origin("x"), [](Registrar& reg) {
    add_masker(reg, "specmask");
    add_masker(reg, "none");
  });
  try {
    r.get(PluginKind::masker, "specmsk");
    FAIL("expected config.unknown_plugin");
  } catch (const ConfigError& e) {
    CHECK(e.id() == "config.unknown_plugin");
    CHECK(std::string(e.what()) ==
          "no masker plugin named 'specmsk'; did you mean 'specmask'? (available maskers: none, specmask)");
  }
}

TEST_CASE("registry: factory failures are wrapped with the plugin's name and file") {
  Registry r;
  r.register_library(origin("/d/libd.so"), [](Registrar& reg) {
    reg.add_masker({"broken", "", {}}, [](const Options&) -> std::shared_ptr<Masker> {
      throw std::runtime_error("out of cheese");
    });
    reg.add_masker({"empty", "", {}}, [](const Options&) { return std::shared_ptr<Masker>(); });
  });
  try {
    r.make_masker("broken", {});
    FAIL("expected plugin.failed");
  } catch (const PluginError& e) {
    CHECK(e.id() == "plugin.failed");
    CHECK(std::string(e.what()) == "masker 'broken' (/d/libd.so) failed: out of cheese");
  }
  CHECK_THROWS_AS(r.make_masker("empty", {}), PluginError);
  // LibTorch's own errors carry a C++ stack trace: the message keeps the what, not the frames.
  r.register_library(origin("/e/libe.so"), [](Registrar& reg) {
    reg.add_masker({"torchy", "", {}}, [](const Options&) -> std::shared_ptr<Masker> {
      (void)at::empty({-3});
      return nullptr;
    });
  });
  try {
    r.make_masker("torchy", {});
    FAIL("expected plugin.failed");
  } catch (const PluginError& e) {
    const std::string what = e.what();
    CHECK_MESSAGE(what.find("masker 'torchy' (/e/libe.so) failed: ") == 0, what);
    CHECK_MESSAGE(what.find("negative dimension -3") != std::string::npos, what);
    CHECK_MESSAGE(what.find('\n') == std::string::npos, what);
  }
}

TEST_CASE("registry: registering outside register_library is refused") {
  Registry r;
  CHECK_THROWS_AS(add_masker(r, "stray"), PluginError);
}
}
