// The [sweep] table of experiment files: grid, zip groups, rows, seeds, slugs, ids, errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include <ATen/ATen.h>

#include "helpers.hpp"
#include "patchbay/config.hpp"
#include "patchbay/error.hpp"

using namespace patchbay;

namespace {

// A masker that masks nothing, for a test plugin: loading a file builds each run's masker.
class Unmasked final : public Masker {
 public:
  MaskResult apply(const at::Tensor& s, const MaskContext&, at::Generator&) const override { return {s, s, {}}; }
};

// Line numbers below refer to this text; [sweep] tables appended to it start on line 15.
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

Experiment load(const std::string& sweep, const std::vector<std::string>& overrides = {},
                const Registry& registry = test::linked_registry()) {
  return load_experiment_text(kBase + "\n" + sweep, "exp.toml", overrides, registry);
}

std::string error_of(const std::string& sweep, const std::vector<std::string>& overrides = {}) {
  try {
    load(sweep, overrides);
  } catch (const ConfigError& e) {
    return e.id() + ": " + e.what();
  }
  return "(no error)";
}

std::vector<std::string> slugs(const Experiment& exp) {
  std::vector<std::string> out;
  for (const auto& r : exp.runs) out.push_back(r.slug);
  return out;
}

// A run's axis values as "key=value" (TOML spelling), in order.
std::vector<std::string> axes_of(const PlannedRun& run) {
  std::vector<std::string> out;
  for (const auto& [k, v] : run.axes) out.push_back(k + "=" + to_toml(v));
  return out;
}

// An experiment's axis's values in TOML spelling.
std::vector<std::string> values_of(const SweepAxis& axis) {
  std::vector<std::string> out;
  for (const auto& v : axis.values) out.push_back(to_toml(v));
  return out;
}

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("sweep: axes form a grid in file order, the last axis fastest") {
  // "train.lr" sorts after "patcher.stride" but comes first in the file: it is the outer axis.
  const auto exp = load("[sweep]\n\"train.lr\" = [1e-3, 0.01]\n\"patcher.stride\" = [1, 2, 8]\n");
  REQUIRE(exp.runs.size() == 6);
  CHECK(slugs(exp) == std::vector<std::string>{"lr0.001_stride1", "lr0.001_stride2", "lr0.001_stride8",
                                               "lr0.01_stride1", "lr0.01_stride2", "lr0.01_stride8"});
  CHECK(exp.runs[2].config.patcher.options.get_int("stride") == 8);
  CHECK(exp.runs[2].config.train.get_real("lr") == doctest::Approx(1e-3));
  CHECK(exp.runs[3].config.train.get_real("lr") == doctest::Approx(0.01));
  // run.axes: the point's values in axis order; Experiment::axes: distinct values per key.
  CHECK(axes_of(exp.runs[4]) == std::vector<std::string>{"train.lr=0.01", "patcher.stride=2"});
  REQUIRE(exp.axes.size() == 2);
  CHECK(exp.axes[0].key == "train.lr");
  CHECK(values_of(exp.axes[0]) == std::vector<std::string>{"0.001", "0.01"});
  CHECK(exp.axes[1].key == "patcher.stride");
  CHECK(values_of(exp.axes[1]) == std::vector<std::string>{"1", "2", "8"});
  // TOML dotted keys and [sweep.<table>] sub-tables are the same as "<table>.<key>".
  CHECK(slugs(load("[sweep]\ntrain.lr = [1e-3, 0.01]\n\n[sweep.patcher]\nstride = [1, 2, 8]\n")) ==
        slugs(exp));
}

TEST_CASE("sweep: a file without [sweep] keeps its one 'base' run; the ids are stable") {
  const auto plain = load_experiment_text(kBase, "exp.toml", {}, test::linked_registry());
  REQUIRE(plain.runs.size() == 1);
  CHECK(plain.runs[0].slug == "base");
  CHECK(plain.runs[0].axes.empty());
  CHECK(plain.axes.empty());
  CHECK(load("[sweep]\n").runs[0].slug == "base");  // an empty [sweep] changes nothing

  const auto a = load("[sweep]\nseeds = [0, 1]\n\"patcher.stride\" = [2, 4]\n");
  const auto b = load("[sweep]\nseeds = [0, 1]\n\"patcher.stride\" = [2, 4]\n");
  std::set<std::string> ids;
  for (size_t i = 0; i < a.runs.size(); ++i) {
    CHECK(a.runs[i].id == b.runs[i].id);
    CHECK(a.runs[i].id == a.runs[i].config.hash() + "-" + a.runs[i].slug);
    ids.insert(a.runs[i].id);
  }
  CHECK(ids.size() == 4);
  // A point equal to the base file runs the same configuration: same hash as the base run.
  CHECK(a.runs[1].config.hash() == plain.runs[0].config.hash());  // stride 4, seed 0
  CHECK(a.runs[1].id == plain.runs[0].config.hash() + "-stride4_s0");
}

TEST_CASE("sweep: seeds repeat every point as the outermost loop and set train.seed") {
  const auto exp = load("[sweep]\n\"patcher.stride\" = [1, 2]\nseeds = [0, 3]\n");
  CHECK(slugs(exp) == std::vector<std::string>{"stride1_s0", "stride2_s0", "stride1_s3", "stride2_s3"});
  CHECK(exp.runs[2].config.train.get_int("seed") == 3);
  CHECK(exp.runs[1].config.train.get_int("seed") == 0);
  CHECK(axes_of(exp.runs[2]) == std::vector<std::string>{"patcher.stride=1", "train.seed=3"});
  REQUIRE(exp.axes.size() == 2);
  CHECK(exp.axes[1].key == "train.seed");
  CHECK(values_of(exp.axes[1]) == std::vector<std::string>{"0", "3"});

  const auto only_seeds = load("[sweep]\nseeds = [0, 1]\n");
  CHECK(slugs(only_seeds) == std::vector<std::string>{"s0", "s1"});
  CHECK(only_seeds.runs[0].id != only_seeds.runs[1].id);
}

TEST_CASE("sweep: a zip group pairs its lists element-wise and is one axis of the grid") {
  const auto exp = load(
      "[sweep]\n\"masker.plugin\" = [\"none\", \"specaugment\"]\n\n"
      "[sweep.zip.geometry]\n\"patcher.plugin\" = [\"square\", \"fftp\"]\n"
      "\"patcher.stride\" = [[10, 10], 2]\n");
  REQUIRE(exp.runs.size() == 4);
  CHECK(slugs(exp) == std::vector<std::string>{"none_square_stride10x10", "none_fftp_stride2",
                                               "specaugment_square_stride10x10",
                                               "specaugment_fftp_stride2"});
  const auto& square = exp.runs[0].config.patcher;
  CHECK(square.plugin == "square");
  CHECK(square.options.get_int_pair("stride") == std::array<int64_t, 2>{10, 10});
  CHECK(square.options.get_int_pair("patch_size") == std::array<int64_t, 2>{16, 16});
  CHECK(exp.runs[1].config.patcher.options.get_int("stride") == 2);
  CHECK(exp.runs[2].config.masker.plugin == "specaugment");
  CHECK(axes_of(exp.runs[0]) == std::vector<std::string>{"masker.plugin=\"none\"",
                                                         "patcher.plugin=\"square\"",
                                                         "patcher.stride=[10, 10]"});
}

TEST_CASE("sweep: zip lists of unequal length are refused, naming both keys and lengths") {
  CHECK(error_of("[sweep.zip.geometry]\n\"patcher.plugin\" = [\"square\", \"fftp\"]\n"
                 "\"patcher.stride\" = [[10, 10], 4, 2]\n") ==
        "config.sweep_zip_length: exp.toml:17:1: zip group 'geometry' pairs lists of unequal length: "
        "'patcher.plugin' has 2 values, 'patcher.stride' has 3; give every list in a zip group the "
        "same number of values");
}

TEST_CASE("sweep: range, linspace and logspace shorthands expand to the lists they stand for") {
  // Each shorthand plans exactly the runs of its list written out (same ids, same order).
  const std::pair<const char*, const char*> same[] = {
      {"\"patcher.stride\" = { range = [2, 8, 2] }", "\"patcher.stride\" = [2, 4, 6]"},
      {"\"patcher.stride\" = { range = [8, 1, -3] }", "\"patcher.stride\" = [8, 5, 2]"},
      {"\"train.mixup\" = { range = [0.1, 0.4, 0.1] }", "\"train.mixup\" = [0.1, 0.2, 0.3]"},
      {"\"train.mixup\" = { range = [0.0, 0.3, 0.1] }", "\"train.mixup\" = [0.0, 0.1, 0.2]"},
      {"\"train.mixup\" = { linspace = [0.0, 0.5, 3] }", "\"train.mixup\" = [0.0, 0.25, 0.5]"},
      {"\"train.lr\" = { logspace = [-4, -2, 3] }", "\"train.lr\" = [1e-4, 1e-3, 1e-2]"},
      {"\"train.lr\" = { logspace = [-3, -3, 1] }", "\"train.lr\" = [1e-3]"},
      {"train = { lr = { logspace = [-4, -3, 2] } }", "\"train.lr\" = [1e-4, 1e-3]"},
  };
  for (const auto& [shorthand, list] : same) {
    CAPTURE(shorthand);
    const auto a = load(std::string("[sweep]\n") + shorthand + "\n");
    const auto b = load(std::string("[sweep]\n") + list + "\n");
    REQUIRE(a.runs.size() == b.runs.size());
    for (size_t i = 0; i < a.runs.size(); ++i) CHECK(a.runs[i].id == b.runs[i].id);
  }
  // Integers stay integers (an integer option accepts them); 0.1 steps give 0.3, not
  // 0.30000000000000004, so the slugs read as written.
  CHECK(slugs(load("[sweep]\n\"train.mixup\" = { range = [0.1, 0.35, 0.1] }\n")) ==
        std::vector<std::string>{"mixup0.1", "mixup0.2", "mixup0.3"});
  // In a zip group, beside a written list.
  const auto zipped = load("[sweep.zip.g]\n\"train.lr\" = { logspace = [-4, -3, 2] }\n\"patcher.stride\" = [4, 8]\n");
  REQUIRE(zipped.runs.size() == 2);
  CHECK(axes_of(zipped.runs[1]) == std::vector<std::string>{"train.lr=0.001", "patcher.stride=8"});
}

TEST_CASE("sweep: a malformed shorthand is config.sweep_syntax at its key, saying what it takes") {
  CHECK(error_of("[sweep]\n\"patcher.stride\" = { range = [2, 8, 0] }\n") ==
        "config.sweep_syntax: exp.toml:16:1: sweep axis 'patcher.stride': range has step 0, which never "
        "reaches the stop; \"patcher.stride\" = { range = [start, stop, step] }, e.g. { range = [10, 40, 10] } "
        "for 10, 20, 30");
  CHECK(error_of("[sweep]\n\"patcher.stride\" = { range = [8, 2, 1] }\n") ==
        "config.sweep_syntax: exp.toml:16:1: sweep axis 'patcher.stride': range gives no values: from 8 in "
        "steps of 1 no value is below 2 (the stop is excluded); \"patcher.stride\" = { range = [start, stop, "
        "step] }, e.g. { range = [10, 40, 10] } for 10, 20, 30");
  CHECK(error_of("[sweep]\n\"train.lr\" = { logspace = [-4, -2] }\n").find(
            "sweep axis 'train.lr': logspace takes two finite numbers and an integer count") != std::string::npos);
  CHECK(error_of("[sweep]\n\"train.lr\" = { logspace = [-4, -2, 0] }\n").find("logspace has count 0") !=
        std::string::npos);
  CHECK(error_of("[sweep]\n\"train.lr\" = { logspce = [-4, -2, 3] }\n").find(
            "'logspce' is not a shorthand; did you mean 'logspace'?") != std::string::npos);
  CHECK(error_of("[sweep]\n\"train.lr\" = { range = [1, 2, 1], step = 2 }\n").find(
            "range must be the table's only key") != std::string::npos);
  CHECK(error_of("[sweep]\n\"train.epochs\" = { range = [1, 100000000, 1] }\n").find(
            "more than the 10000 a sweep axis may have") != std::string::npos);
  CHECK(error_of("[sweep.zip.g]\n\"train.lr\" = { linspace = [\"a\", 1, 2] }\n\"patcher.stride\" = [4, 8]\n")
            .find("zip group 'g' key 'train.lr': linspace takes two finite numbers") != std::string::npos);
}

TEST_CASE("sweep: rows are explicit points; a table value replaces the whole slot table") {
  // The base [patcher] has fftp options a square patcher would refuse.
  const std::string text =
      "[sweep]\n\"masker.plugin\" = [\"none\", \"specaugment\"]\n\n"
      "[[sweep.rows]]\n"
      "patcher = { plugin = \"square\", patch_size = [16, 16], stride = [10, 10] }\n"
      "[[sweep.rows]]\n"
      "patcher = { plugin = \"fftp\", patch_frames = 8 }\n"
      "[[sweep.rows]]\n"
      "patcher.stride = 2\n";  // dotted keys in a row set one option, keeping the base table
  const auto base_patch_frames = std::string("[patcher]\nplugin = \"fftp\"\nstride = 4\npatch_frames = 12\n");
  std::string file = kBase;
  file.replace(file.find("[patcher]\nplugin = \"fftp\"\nstride = 4\n"),
               std::string("[patcher]\nplugin = \"fftp\"\nstride = 4\n").size(), base_patch_frames);
  const auto exp = load_experiment_text(file + "\n" + text, "exp.toml", {}, test::linked_registry());
  REQUIRE(exp.runs.size() == 6);
  CHECK(slugs(exp) ==
        std::vector<std::string>{"none_square-patch-size16x16-stride10x10", "none_fftp-patch-frames8",
                                 "none_stride2", "specaugment_square-patch-size16x16-stride10x10",
                                 "specaugment_fftp-patch-frames8", "specaugment_stride2"});
  const auto& square = exp.runs[0].config.patcher;
  CHECK(square.plugin == "square");
  CHECK(square.options.values().count("patch_frames") == 0);  // nothing leaked from the base
  const auto& fftp = exp.runs[1].config.patcher.options;
  CHECK(fftp.get_int("patch_frames") == 8);
  CHECK(fftp.get_int("stride") == 4);  // fftp's default, not the base file's value
  const auto& dotted = exp.runs[2].config.patcher.options;
  CHECK(dotted.get_int("patch_frames") == 12);  // the base table, one option changed
  CHECK(dotted.get_int("stride") == 2);
  CHECK(axes_of(exp.runs[0]) == std::vector<std::string>{
                                   "masker.plugin=\"none\"",
                                   "patcher=\"square-patch_size16x16-stride10x10\""});
  CHECK(axes_of(exp.runs[2]) == std::vector<std::string>{"masker.plugin=\"none\"", "patcher.stride=2"});
  // Rows that set different keys: each run lists the keys its row set.
  REQUIRE(exp.axes.size() == 3);
  CHECK(exp.axes[0].key == "masker.plugin");
  CHECK(exp.axes[1].key == "patcher");
  CHECK(exp.axes[2].key == "patcher.stride");

  // An axis may set a slot table whole too, and a key of it on another axis.
  const auto both = load("[sweep]\n\"patcher\" = [{plugin = \"square\"}, {plugin = \"fftp\"}]\n"
                         "\"patcher.stride\" = [2, 4]\n");
  CHECK(slugs(both) == std::vector<std::string>{"square_stride2", "square_stride4", "fftp_stride2",
                                                "fftp_stride4"});
  CHECK(both.runs[0].config.patcher.options.get_int_pair("stride") == std::array<int64_t, 2>{2, 2});
}

TEST_CASE("sweep: command-line overrides apply to the base before expansion") {
  const auto exp = load("[sweep]\n\"masker.budget\" = [0, 512]\n",
                        {"masker.plugin=specmask", "patcher.patch_frames=8"});
  REQUIRE(exp.runs.size() == 2);
  for (const auto& run : exp.runs) {
    CHECK(run.config.masker.plugin == "specmask");
    CHECK(run.config.patcher.options.get_int("patch_frames") == 8);
  }
  CHECK(exp.runs[1].config.masker.options.get_int("budget") == 512);
  // Without the override the base masker is "none", which has no budget.
  CHECK(error_of("[sweep]\n\"masker.budget\" = [0, 512]\n").rfind(
            "config.unknown_key: exp.toml:16:1: masker 'none' has no option 'budget'", 0) == 0);
  // An override the sweep replaces in every run would do nothing: refused.
  CHECK(error_of("[sweep]\n\"patcher.stride\" = [2, 8]\n", {"patcher.stride=1"}) ==
        "config.sweep_conflict: command line 'patcher.stride=1': 'patcher.stride' is swept at "
        "exp.toml:16:1 (axis 'patcher.stride'), whose values replace the override in every run; drop "
        "the override or that sweep key");
  CHECK(error_of("[[sweep.rows]]\npatcher = { plugin = \"fftp\" }\n", {"patcher.stride=1"})
            .rfind("config.sweep_conflict: command line 'patcher.stride=1': 'patcher' is set whole by "
                   "the sweep at exp.toml:16:1 (rows)", 0) == 0);
  CHECK(error_of("[sweep]\nseeds = [1, 2]\n", {"train.seed=3"}).rfind("config.sweep_conflict", 0) == 0);
}

TEST_CASE("sweep: each point is validated; problems name the run and point at the sweep key") {
  CHECK(error_of("[sweep]\n\"patcher.stride\" = [0, 2]\n") ==
        "config.out_of_range: exp.toml:16:1: run 'stride0': patcher 'fftp' option 'stride' must be "
        ">= 1, got 0");
  CHECK(error_of("[sweep]\nseeds = [0, 1]\n\"patcher.stride\" = [2, 0]\n") ==
        "config.out_of_range: exp.toml:17:1: runs 'stride0_s0', 'stride0_s1': patcher 'fftp' option "
        "'stride' must be >= 1, got 0");
  // Keys of a table value are reported where the table writes them.
  CHECK(error_of("[sweep]\npatcher = [{ plugin = \"square\", patch_frames = 8 }, { plugin = \"fftp\" }]\n") ==
        "config.unknown_key: exp.toml:16:33: run 'square-patch-frames8': patcher 'square' has no "
        "option 'patch_frames' (options: patch_size, stride)");
  // A problem of the base that every run shares is reported once, as for a single file.
  CHECK(error_of("[train]\nepochs = 0\n\n[sweep]\n\"patcher.stride\" = [2, 4]\n") ==
        "config.out_of_range: exp.toml:16:10: [train] option 'epochs' must be >= 1, got 0");
  // "<slot>.plugin" keeps the base table's options, which must fit the new plugin.
  CHECK(error_of("[sweep]\n\"patcher.plugin\" = [\"fftp\", \"square\"]\n\"patcher.patch_frames\" = [8]\n") ==
        "config.unknown_key: exp.toml:17:1: run 'square_patch-frames8': patcher 'square' has no "
        "option 'patch_frames' (options: patch_size, stride)");
}

TEST_CASE("sweep: a patch grid that does not fit is refused when the file loads, at the key that sets it") {
  const std::string fits_not =
      "patcher 'fftp' (patch_frames = 400, stride = 4): a patch of 400 frames is longer than the input (input "
      "128 mel bins x 128 frames, kernel 128 x 400, stride 128 x 4); choose a smaller patch or a longer input";
  // A swept value: at the sweep key, naming the run.
  CHECK(error_of("[sweep]\n\"patcher.patch_frames\" = [16, 400]\n") ==
        "shape.patch_geometry: exp.toml:16:1: run 'patch-frames400': " + fits_not);
  // A table value: at the value inside it.
  CHECK(error_of("[[sweep.rows]]\npatcher = { plugin = \"fftp\" }\n[[sweep.rows]]\npatcher = { plugin = \"fftp\", "
                 "patch_frames = 400 }\n") ==
        "shape.patch_geometry: exp.toml:18:45: run 'fftp-patch-frames400': " + fits_not);
  // A command-line override.
  CHECK(error_of("", {"patcher.patch_frames=400"}) ==
        "shape.patch_geometry: command line 'patcher.patch_frames=400': " + fits_not);
  // The masker's check against the grid: at the masker's value its message names.
  CHECK(error_of("[masker]\nplugin = \"specmask\"\nbudget = 16384\n").rfind(
            "specmask.budget: exp.toml:17:10: masker 'specmask': budget = 16384 cells is the whole 128 x 128 "
            "spectrogram", 0) == 0);
}

TEST_CASE("sweep: loading a file leaves the default CPU generator where it was") {
  // The grid check builds each point's patcher, which draws its weights: a caller that seeds
  // and then loads must build the same model as one that loads and then seeds.
  at::manual_seed(7);
  const at::Tensor before = at::detail::getDefaultCPUGenerator().get_state();
  // Values no other test loads, so the patchers are built here, not found in the cache.
  const auto exp = load("[sweep]\n\"patcher.patch_frames\" = [7, 9]\n\"patcher.stride\" = [3]\n");
  REQUIRE(exp.runs.size() == 2);
  CHECK(at::equal(at::detail::getDefaultCPUGenerator().get_state(), before));
}

TEST_CASE("sweep: malformed sweeps are config.sweep_syntax (verbatim)") {
  CHECK(error_of("[sweep]\n\"patcher.stride\" = 4\n") ==
        "config.sweep_syntax: exp.toml:16:1: sweep axis 'patcher.stride' must be a list of values, "
        "e.g. \"patcher.stride\" = [4, ...], got a number; for a single value set it in the base "
        "table");
  CHECK(error_of("[sweep]\n\"patcher.stride\" = []\n") ==
        "config.sweep_syntax: exp.toml:16:1: sweep axis 'patcher.stride' has no values; give at "
        "least one, or remove it");
  CHECK(error_of("[sweep]\nstride = [1, 2]\n") ==
        "config.sweep_syntax: exp.toml:16:1: sweep key 'stride' names no table; write "
        "\"<table>.<key>\", e.g. \"patcher.stride\" = [1, 2]");
  CHECK(error_of("[sweep]\nseed = [1, 2]\n") ==
        "config.sweep_syntax: exp.toml:16:1: sweep key 'seed' names no table; did you mean 'seeds'?; "
        "write \"<table>.<key>\", e.g. \"patcher.stride\" = [1, 2]");
  CHECK(error_of("[sweep]\n\"pacher.stride\" = [1, 2]\n") ==
        "config.sweep_syntax: exp.toml:16:1: sweep key 'pacher.stride' names no table [pacher]; did "
        "you mean 'patcher'? (tables: dataset, frontend, patcher, masker, token_dropper, backbone, train)");
  CHECK(error_of("[sweep]\n\"sweep.seeds\" = [1, 2]\n") ==
        "config.sweep_syntax: exp.toml:16:1: sweep key 'sweep.seeds' nests a sweep; [sweep] cannot "
        "sweep itself, so write its axes, zip groups and rows directly under [sweep]");
  CHECK(error_of("[[sweep.rows]]\nseeds = [1, 2]\n") ==
        "config.sweep_syntax: exp.toml:16:1: 'seeds' cannot appear inside a row (no nested sweeps); "
        "write seeds, zip groups and rows directly under [sweep]");
  CHECK(error_of("[sweep]\nseeds = [0, -1]\n") ==
        "config.sweep_syntax: exp.toml:16:1: 'seeds' must be a non-empty list of non-negative "
        "integers, e.g. seeds = [0, 1, 2]; each repeats every point with that train.seed");
  CHECK(error_of("[sweep]\nseeds = 3\n").rfind("config.sweep_syntax: exp.toml:16:1: 'seeds' must be", 0) == 0);
  CHECK(error_of("[sweep]\n\"experiment.name\" = [\"a\", \"b\"]\n") ==
        "config.sweep_syntax: exp.toml:16:1: sweep key 'experiment.name': [experiment] (name, "
        "description) does not change what runs, so it cannot be swept; sweep another table");
  CHECK(error_of("[sweep]\n\"patcher\" = [\"square\", \"fftp\"]\n") ==
        "config.sweep_syntax: exp.toml:16:1: 'patcher' set whole takes a table, e.g. {plugin = "
        "\"fftp\", stride = 4}, got a string; to change one option write \"patcher.<key>\"\n"
        "exp.toml:16:1: 'patcher' set whole takes a table, e.g. {plugin = \"fftp\", stride = 4}, got "
        "a string; to change one option write \"patcher.<key>\" [config.sweep_syntax]");
  CHECK(error_of("[sweep]\n\"train\" = [{epochs = 1}]\n") ==
        "config.sweep_syntax: exp.toml:16:1: 'train' cannot be set whole; sweep its keys as "
        "\"train.<key>\" (only the slot tables dataset, patcher, masker, token_dropper and "
        "backbone take a table value)");
  CHECK(error_of("[sweep]\n\"patcher.a.b\" = [1]\n") ==
        "config.sweep_syntax: exp.toml:16:1: sweep key 'patcher.a.b' must be <table>.<key> with one "
        "dot, e.g. \"patcher.stride\"");
  CHECK(error_of("[sweep]\nrows = 3\n").rfind("config.sweep_syntax: exp.toml:16:1: 'rows' must be a list of tables", 0) == 0);
}

TEST_CASE("sweep: points that resolve to the same configuration are refused") {
  // Row 2 writes out fftp's default patch_frames and the base stride: the same run as row 1.
  CHECK(error_of("[[sweep.rows]]\n\"patcher.stride\" = 4\n[[sweep.rows]]\n"
                 "patcher = { plugin = \"fftp\", patch_frames = 16 }\n") ==
        "config.sweep_duplicate: exp.toml:15:1: runs 'stride4' and 'fftp-patch-frames16' resolve to "
        "the same configuration; remove one of the values or rows that make them (a swept value "
        "equal to the base value or to a default changes nothing)");
  CHECK(error_of("[sweep]\n\"patcher.stride\" = [10, 10]\n") ==
        "config.sweep_duplicate: exp.toml:16:1: sweep axis 'patcher.stride' lists 10 twice, which "
        "would make the same run twice; list each value once (a list-valued option is swept as a "
        "list of lists, e.g. [[10, 10], [4, 4]])");
  CHECK(error_of("[sweep]\nseeds = [0, 0]\n") ==
        "config.sweep_duplicate: exp.toml:16:1: 'seeds' lists 0 twice, which would make the same "
        "runs twice; list each seed once");
}

TEST_CASE("sweep: the same key swept in two places is config.sweep_conflict") {
  CHECK(error_of("[sweep]\n\"patcher.stride\" = [2, 4]\n\n[sweep.zip.g]\n"
                 "\"patcher.stride\" = [8, 16]\n\"train.lr\" = [0.1, 0.2]\n") ==
        "config.sweep_conflict: exp.toml:19:1: 'patcher.stride' is swept twice, here (zip group 'g') "
        "and at exp.toml:16:1 (axis 'patcher.stride'); sweep each key in one place (to pair values, "
        "put their lists in one [sweep.zip.<name>] group)");
  CHECK(error_of("[sweep]\n\"patcher.stride\" = [2, 4]\npatcher.stride = [8]\n")
            .rfind("config.sweep_conflict: exp.toml:17:9: 'patcher.stride' is swept twice", 0) == 0);
  CHECK(error_of("[sweep]\nseeds = [0, 1]\n\"train.seed\" = [5]\n") ==
        "config.sweep_conflict: exp.toml:17:1: 'train.seed' is swept twice, here and by 'seeds' at "
        "exp.toml:16:1; use 'seeds' only");
  CHECK(error_of("[[sweep.rows]]\n\"patcher.stride\" = 2\npatcher.stride = 3\n")
            .rfind("config.sweep_conflict: exp.toml:17:9: row 1 sets 'patcher.stride' twice", 0) == 0);
}

TEST_CASE("sweep: slugs spell values readably, sanitized and at most 80 characters") {
  CHECK(slugs(load("[sweep]\n\"train.lr\" = [2.5e-4, 1e-3, 0.5]\n")) ==
        std::vector<std::string>{"lr0.00025", "lr0.001", "lr0.5"});
  CHECK(slugs(load("[sweep]\n\"dataset.root\" = [\"/data/sc v2\", \"b\"]\n")) ==
        std::vector<std::string>{"root-data-sc-v2", "rootb"});
  CHECK(slugs(load("[sweep]\n\"masker\" = [{plugin = \"specmask\", align = false}, {}]\n")) ==
        std::vector<std::string>{"specmask-alignfalse", "default"});
  const auto exp = load("[sweep]\n\"dataset.root\" = [\"" + std::string(120, 'a') + "\", \"" +
                        std::string(120, 'a') + "b\"]\nseeds = [7]\n");
  REQUIRE(exp.runs.size() == 2);
  for (const auto& run : exp.runs) {
    CHECK(run.slug.size() == 80);
    CHECK(run.slug.rfind("rootaaaa", 0) == 0);
    CHECK(run.slug.substr(run.slug.size() - 3) == "_s7");
  }
  CHECK(exp.runs[0].slug != exp.runs[1].slug);  // the hash keeps them apart

  // Two swept keys with the same option name are told apart by their table.
  Registry registry;
  test::register_linked_plugins(registry);
  PluginOrigin origin;
  origin.library = "strided";
  origin.version = "1.0.0";
  origin.file = "(test)";
  registry.register_library(origin, [](Registrar& r) {
    OptionSchema s;
    s.add_int("stride", 1, "a test option", Range::at_least(1));
    r.add_masker({"strided", "a masker with a stride", s},
                 [](const Options&) -> std::shared_ptr<Masker> { return std::make_shared<Unmasked>(); });
  });
  const auto shared = load("[masker]\nplugin = \"strided\"\n\n[sweep]\n\"patcher.stride\" = [2]\n"
                           "\"masker.stride\" = [3, 5]\n", {}, registry);
  CHECK(slugs(shared) == std::vector<std::string>{"patcher-stride2_masker-stride3",
                                                  "patcher-stride2_masker-stride5"});
}
}
