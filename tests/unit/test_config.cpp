#include <doctest/doctest.h>

#include <fstream>

#include <fmt/format.h>

#include "helpers.hpp"
#include "patchbay/config.hpp"
#include "patchbay/error.hpp"

using namespace patchbay;

namespace {

const Registry& registry() { return test::linked_registry(); }

// Line numbers below refer to this text.
const std::string kBase = R"([experiment]
name = "t"

[dataset]
plugin = "folder"
root = "data"

[patcher]
plugin = "fftp"
stride = 4

[backbone]
plugin = "linear_probe"
)";

Experiment load(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return load_experiment_text(text, "exp.toml", overrides, registry());
}

// "id: message" of the ConfigError that loading raises.
std::string error_of(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    load(text, overrides);
  } catch (const ConfigError& e) {
    return e.id() + ": " + e.what();
  }
  return "(no error)";
}

std::string with(const std::string& from, const std::string& to) {
  std::string s = kBase;
  const auto at = s.find(from);
  REQUIRE(at != std::string::npos);
  return s.replace(at, from.size(), to);
}

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("config: a valid file resolves to one run with every default filled in") {
  const auto exp = load(kBase);
  CHECK(exp.name == "t");
  REQUIRE(exp.runs.size() == 1);
  const auto& run = exp.runs[0];
  CHECK(run.slug == "base");
  CHECK(run.id == run.config.hash() + "-base");
  CHECK(run.config.hash().size() == 8);
  CHECK(run.config.patcher.plugin == "fftp");
  CHECK(run.config.patcher.plugin_version == "0.1.0");
  CHECK(run.config.patcher.options.get_int("stride") == 4);
  CHECK(run.config.patcher.options.get_int("patch_frames") == 16);  // default
  CHECK(run.config.masker.plugin == "none");                        // [masker] may be left out
  CHECK(run.config.frontend.get_int("num_mel_bins") == 128);
  CHECK(run.config.train.get_string("optimizer") == "adamw");
  CHECK(run.config.to_toml().find("[patcher]\nplugin = \"fftp\"\nplugin_version = \"0.1.0\"\n"
                                  "patch_frames = 16\nstride = 4\n") != std::string::npos);
}

TEST_CASE("config: the run id depends on what runs, not on names") {
  const auto a = load(kBase).runs[0].id;
  CHECK(load(kBase).runs[0].id == a);  // deterministic
  CHECK(load(with("name = \"t\"", "name = \"renamed\"")).runs[0].id == a);
  CHECK(load(kBase, {"patcher.stride=2"}).runs[0].id != a);
  // Writing a default explicitly changes nothing.
  CHECK(load(with("stride = 4", "stride = 4\npatch_frames = 16")).runs[0].id == a);
}

TEST_CASE("config: the experiment name defaults to the file's stem") {
  CHECK(load_experiment_text(with("name = \"t\"\n", ""), "dir/my_study.toml", {}, registry()).name ==
        "my_study");
}

TEST_CASE("config: an experiment name that is a path is refused (it would write outside results/)") {
  for (const char* bad : {"../../escape", "a/b", ".hidden", "..", "back\\slash"}) {
    const std::string name = std::string("name = '") + bad + "'";  // a TOML literal string
    CHECK_THROWS_WITH_AS(load(with("name = \"t\"", name)), doctest::Contains("is not a plain file name"),
                         ConfigError);
  }
  CHECK(load(with("name = \"t\"", "name = \"fftp-st4_v2.1 final\"")).name == "fftp-st4_v2.1 final");
}

TEST_CASE("config: absurdly deep TOML is refused before the parser recurses into it") {
  // issue "faults" 7: a header of 50,000 dotted parts crashed inside TOML++.
  std::string header = "[a";
  for (int i = 0; i < 50000; ++i) header += ".b";
  CHECK_THROWS_WITH_AS(load(kBase + "\n" + header + "]\nx = 1\n"),
                       doctest::Contains("a key of 65 dotted parts (more than 64)"), ConfigError);
  CHECK_THROWS_WITH_AS(load(kBase + "\n[extra]\nv = " + std::string(100, '[') + std::string(100, ']') + "\n"),
                       doctest::Contains("arrays or tables nested 65 deep"), ConfigError);
  // Dots in values and comments are not key parts; brackets in strings and comments do not nest.
  std::string values = "[sweep]\n\"train.lr\" = [";
  for (int i = 1; i <= 80; ++i) values += fmt::format("{}0.{:04d}", i > 1 ? ", " : "", i);
  values += "]  # " + std::string(70, '.') + std::string(70, '[') + "\n";
  const Experiment e = load(kBase + values, {"dataset.root=" + std::string(70, '{')});
  CHECK(e.runs.size() == 80);
}

TEST_CASE("config: a folder given as the experiment file is named as such, with its .toml files") {
  test::TempDir dir;
  std::ofstream(dir.path() / "b.toml") << kBase;
  std::ofstream(dir.path() / "a.toml") << kBase;
  try {
    (void)load_experiment(dir.path(), {}, registry());
    FAIL("accepted a folder");
  } catch (const ConfigError& e) {
    CHECK(e.id() == "config.is_directory");
    CHECK_MESSAGE(std::string(e.what()).find("is a folder, not an experiment file; name a .toml file in it: "
                                             "a.toml, b.toml") != std::string::npos, e.what());
  }
}

TEST_CASE("config: overrides apply before validation and parse as TOML, else as strings") {
  const auto exp = load(kBase, {"patcher.stride=8", "dataset.root=/data/sc v2", "train.lr=1e-3",
                                "frontend.target_frames=1024", "masker.plugin=none"});
  const auto& c = exp.runs[0].config;
  CHECK(c.patcher.options.get_int("stride") == 8);
  CHECK(c.dataset.options.get_string("root") == "/data/sc v2");
  CHECK(c.train.get_real("lr") == doctest::Approx(1e-3));
  CHECK(c.frontend.get_int("target_frames") == 1024);
  // An override can switch the plugin; the file's options must then fit the new one.
  const auto square = load(kBase, {"patcher.plugin=square"}).runs[0].config.patcher;
  CHECK(square.options.get_int_pair("stride") == std::array<int64_t, 2>{4, 4});
  CHECK(error_of(with("stride = 4", "patch_frames = 8"), {"patcher.plugin=square"}) ==
        "config.unknown_key: exp.toml:10:1: patcher 'square' has no option 'patch_frames' (options: "
        "patch_size, stride)");
}

TEST_CASE("config: syntax errors give file, line and column") {
  const auto e = error_of(with("stride = 4", "stride = = 4"));
  CHECK(e.rfind("config.syntax: exp.toml:10:", 0) == 0);
  CHECK(e.find("fix the TOML syntax") != std::string::npos);
}

TEST_CASE("config: validation messages (verbatim)") {
  CHECK(error_of(with("stride = 4", "strid = 4")) ==
        "config.unknown_key: exp.toml:10:1: patcher 'fftp' has no option 'strid'; did you mean "
        "'stride'? (options: patch_frames, stride)");
  CHECK(error_of(with("stride = 4", "budget = 4")) ==
        "config.unknown_key: exp.toml:10:1: patcher 'fftp' has no option 'budget' (options: "
        "patch_frames, stride)");
  CHECK(error_of(with("stride = 4", "stride = \"four\"")) ==
        "config.wrong_type: exp.toml:10:10: patcher 'fftp' option 'stride' expects an integer, got a "
        "string (\"four\")");
  CHECK(error_of(with("stride = 4", "stride = 0")) ==
        "config.out_of_range: exp.toml:10:10: patcher 'fftp' option 'stride' must be >= 1, got 0");
  CHECK(error_of(kBase + "\n[train]\noptimizer = \"sgd\"\n") ==
        "config.bad_choice: exp.toml:16:13: [train] option 'optimizer' must be one of \"adamw\", "
        "\"adam\", got \"sgd\"");
  CHECK(error_of(with("plugin = \"fftp\"", "plugin = \"fftq\"")) ==
        "config.unknown_plugin: exp.toml:9:10: no patcher plugin named 'fftq'; did you mean 'fftp'? "
        "(available patchers: fftp, square)");
  CHECK(error_of(with("plugin = \"fftp\"", "plugin = 3")) ==
        "config.wrong_type: exp.toml:9:10: [patcher] plugin expects a string naming a patcher, got 3 "
        "(available patchers: fftp, square)");
  CHECK(error_of(with("[backbone]\nplugin = \"linear_probe\"\n", "")) ==
        "config.missing_plugin: exp.toml: [backbone] is missing; add a [backbone] table with plugin = "
        "\"<name>\" (available backbones: ast, aum, linear_probe)");
  CHECK(error_of(with("plugin = \"linear_probe\"\n", "embed_dim = 64\n")) ==
        "config.missing_plugin: exp.toml:12:1: [backbone] has no 'plugin' key; add plugin = "
        "\"<name>\" (available backbones: ast, aum, linear_probe)");
  CHECK(error_of(with("plugin = \"folder\"\nroot = \"data\"\n", "plugin = \"speech_commands\"\n")) ==
        "config.missing_value: exp.toml:4:1: dataset 'speech_commands' option 'root' (Speech "
        "Commands V2 folder (holds validation_list.txt)) has no default; set it in [dataset] or on "
        "the command line as dataset.root=...");
  CHECK(error_of(kBase + "\n[trian]\nepochs = 1\n") ==
        "config.unknown_section: exp.toml:15:1: unknown table [trian]; did you mean [train]? "
        "(tables: experiment, dataset, frontend, patcher, masker, token_dropper, backbone, train, sweep)");
  // A sweep key is validated in every point it makes (more in test_sweep.cpp).
  CHECK(error_of(kBase + "\n[sweep]\n\"patcher.strid\" = [1, 2]\n") ==
        "config.unknown_key: exp.toml:16:1: patcher 'fftp' has no option 'strid'; did you mean "
        "'stride'? (options: patch_frames, stride)");
}

TEST_CASE("config: train.device is checked as text where it is written; the device itself when a run starts") {
  CHECK(error_of(kBase, {"train.device=gpu"}) ==
        "config.bad_device: command line 'train.device=gpu': train.device = \"gpu\": expected \"cpu\", "
        "\"cuda\" or \"cuda:N\" (N a device number, e.g. \"cuda:1\")");
  CHECK(error_of(kBase + "\n[train]\ndevice = \"cuda:one\"\n").rfind("config.bad_device: exp.toml:16:10: ", 0) == 0);
  // A sweep may be planned where its GPUs are not (a login node): the plan accepts CUDA.
  for (const char* device : {"cpu", "cuda", "cuda:0", "cuda:3"}) {
    CAPTURE(device);
    CHECK(load(kBase, {std::string("train.device=") + device}).runs.size() == 1);
  }
  // Each device is its own computation, so its own run.
  CHECK(load(kBase, {"train.device=cuda"}).runs.front().id != load(kBase).runs.front().id);
}

TEST_CASE("config: NaN and Inf are refused for every number") {
  CHECK(error_of(kBase, {"train.lr=nan"}) ==
        "config.out_of_range: command line 'train.lr=nan': [train] option 'lr' must be a finite "
        "number, got nan");
  CHECK(error_of(kBase, {"train.mixup=inf"}).rfind("config.out_of_range: command line 'train.mixup=inf': "
                                                   "[train] option 'mixup' must be a finite number", 0) == 0);
  CHECK(error_of(kBase + "\n[train]\nbetas = [0.9, nan]\n").find("has an element that must be a finite number") !=
        std::string::npos);
}

TEST_CASE("config: override errors name the command-line argument") {
  CHECK(error_of(kBase, {"patcher.stride=four"}) ==
        "config.wrong_type: command line 'patcher.stride=four': patcher 'fftp' option 'stride' "
        "expects an integer, got a string (\"four\")");
  CHECK(error_of(kBase, {"stride=4"}) ==
        "config.bad_override: command line 'stride=4': 'stride' must name a table and a key, "
        "<table>.<key>=<value>, e.g. patcher.stride=4");
  CHECK(error_of(kBase, {"patcher.stride"}) ==
        "config.bad_override: command line 'patcher.stride': an override must be "
        "<table>.<key>=<value>, e.g. patcher.stride=4");
  CHECK(error_of(kBase, {"pacher.stride=4"}) ==
        "config.bad_override: command line 'pacher.stride=4': there is no table [pacher] to "
        "override; did you mean 'patcher'? (tables: experiment, dataset, frontend, patcher, masker, "
        "token_dropper, backbone, train)");
  // [sweep] is a table, but not one an override sets (it said "no table [sweep]; did you mean
  // 'sweep'?").
  CHECK(error_of(kBase, {"sweep.seeds=[0, 1]"}) ==
        "config.bad_override: command line 'sweep.seeds=[0, 1]': 'sweep.seeds': the [sweep] cannot be "
        "overridden from the command line; edit it in the experiment file");
}

TEST_CASE("config: every problem is reported at once") {
  const auto e = error_of(with("stride = 4", "stride = 0\nstrid = 1"), {"train.epochs=0"});
  CHECK(e ==
        "config.out_of_range: command line 'train.epochs=0': [train] option 'epochs' must be >= 1, "
        "got 0\n"
        "exp.toml:11:1: patcher 'fftp' has no option 'strid'; did you mean 'stride'? (options: "
        "patch_frames, stride) [config.unknown_key]\n"
        "exp.toml:10:10: patcher 'fftp' option 'stride' must be >= 1, got 0 [config.out_of_range]");
}

TEST_CASE("config: a missing file says where examples are") {
  try {
    load_experiment("/nonexistent/exp.toml", {}, registry());
    FAIL("expected an error");
  } catch (const ConfigError& e) {
    CHECK(e.id() == "config.not_found");
    CHECK(std::string(e.what()) == "cannot read experiment file '/nonexistent/exp.toml'; check the "
                                   "path (examples are in experiments/)");
  }
}
}
