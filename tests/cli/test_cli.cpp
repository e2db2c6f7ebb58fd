// End-to-end checks of build/patchbay: exit codes, stdout/stderr discipline, JSON validity.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "test_paths.hpp"

namespace fs = std::filesystem;

using nlohmann::json;

namespace {
std::string cli() { return std::string("'") + patchbay::test::kCli + "'"; }
std::string quickstart() {
  return std::string("'") + patchbay::test::kSourceDir + "/experiments/examples/minimal.toml'";
}
std::string sweep_example_path() { return std::string(patchbay::test::kSourceDir) + "/experiments/examples/sweep.toml"; }
std::string sweep_example() { return "'" + sweep_example_path() + "'"; }
}  // namespace

TEST_SUITE("cli") {
TEST_CASE("cli: --help and --version") {
  auto r = patchbay::test::run(cli() + " --help");
  CHECK(r.code == 0);
  CHECK(r.out.find("Usage:") != std::string::npos);
  CHECK(r.out.find("plan FILE") != std::string::npos);
  r = patchbay::test::run(cli() + " --version");
  CHECK(r.code == 0);
  CHECK(r.out.find("libtorch") != std::string::npos);
  // The BLAS line: library, core, threads, and why that core (the launcher decided, or the
  // user did: a value the user set is kept as it is).
  CHECK_MESSAGE(r.out.find("\nBLAS: OpenBLAS") != std::string::npos, r.out);
  CHECK_MESSAGE(r.out.find("; core ") != std::string::npos, r.out);
  r = patchbay::test::run("env -u PATCHBAY_BLAS_CHOICE OPENBLAS_CORETYPE=Prescott " + cli() + " --version");
  CHECK_MESSAGE(r.out.find("core Prescott") != std::string::npos, r.out);
  CHECK_MESSAGE(r.out.find("(OPENBLAS_CORETYPE=Prescott set by the user)") != std::string::npos, r.out);
  // The debug log names the BLAS too.
  r = patchbay::test::run("PATCHBAY_LOG=debug " + cli() + " plan " + quickstart());
  CHECK_MESSAGE(r.err.find("BLAS: OpenBLAS") != std::string::npos, r.err);
  r = patchbay::test::run(cli());
  CHECK(r.code == 2);  // no command: usage on stderr
  CHECK(r.err.find("Usage:") != std::string::npos);
  r = patchbay::test::run(cli() + " frobnicate");
  CHECK(r.code == 2);
  CHECK(r.err == "patchbay: unknown command 'frobnicate'; run 'patchbay --help' for the commands\n");
  r = patchbay::test::run(cli() + " plan --help");
  CHECK(r.code == 0);
  CHECK(r.out.find("Usage: patchbay plan FILE") != std::string::npos);
}

TEST_CASE("cli: --help lists every command of the command table, internal ones hidden") {
  const auto r = patchbay::test::run(cli() + " --help");
  REQUIRE(r.code == 0);
  for (const char* synopsis : {"  plugins ", "  plan FILE", "  run FILE", "  run-dist FILE", "  merge OUT.h5",
                               "  slurm FILE", "  report RESULTS.h5", "  compare RESULTS.h5 A B",
                               "  cost FILE", "  fbank IN", "  mask FILE", "  data NAME --out DIR",
                               "  weights export"}) {
    CHECK_MESSAGE(r.out.find(synopsis) != std::string::npos, synopsis, "\n", r.out);
  }
  CHECK(r.out.find("run-worker") == std::string::npos);
  // Every command the help names dispatches (a row without a function would not link, a
  // name without a row is "unknown command").
  for (const char* command : {"plugins", "plan", "run", "run-dist", "merge", "slurm", "report", "compare",
                              "cost", "fbank", "mask", "data", "weights"}) {
    const auto h = patchbay::test::run(cli() + " " + command + " --help");
    CHECK_MESSAGE(h.code == 0, command, ": ", h.err);
    CHECK_MESSAGE(h.err.find("unknown command") == std::string::npos, command);
  }
}

TEST_CASE("cli: data generates through the dataset plugins; the CLI links no generator") {
  auto r = patchbay::test::run(cli() + " data --help");
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK_MESSAGE(r.out.find("  keywords ") != std::string::npos, r.out);
  CHECK_MESSAGE(r.out.find("  instruments ") != std::string::npos, r.out);
  CHECK(r.out.find("  folder ") == std::string::npos);  // reads data, cannot make it
  r = patchbay::test::run(cli() + " data keywords --help");
  REQUIRE(r.code == 0);
  CHECK_MESSAGE(r.out.find("--per-class VALUE") != std::string::npos, r.out);
  CHECK_MESSAGE(r.out.find("(default 30)") != std::string::npos, r.out);
  CHECK_MESSAGE(r.out.find("--words a,b,c") != std::string::npos, r.out);
  CHECK(r.out.find("--soundfont") == std::string::npos);  // an option of instruments only

  patchbay::test::TempDir dir;
  const std::string out = " --out '" + (dir.path() / "k").string() + "'";
  r = patchbay::test::run(cli() + " data nosuch" + out);
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("[cli.unknown_dataset]: 'data' cannot generate 'nosuch'; available: instruments, "
                           "keywords") != std::string::npos, r.err);
  r = patchbay::test::run(cli() + " data folder" + out);
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("dataset 'folder' reads data it cannot make") != std::string::npos, r.err);
  r = patchbay::test::run(cli() + " data keywords --classes piano" + out);
  CHECK(r.code == 2);
  CHECK_MESSAGE(r.err.find("--classes is an option of 'data instruments', not of 'data keywords'") !=
                    std::string::npos, r.err);
  r = patchbay::test::run(cli() + " data keywords --per-class many" + out);
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("[cli.bad_value]: --per-class many: expects an integer") != std::string::npos, r.err);
  r = patchbay::test::run(cli() + " data keywords --per-class 0" + out);
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("[cli.bad_value]: --per-class 0:") != std::string::npos, r.err);
  r = patchbay::test::run(cli() + " data keywords --per-class 2");
  CHECK(r.code == 2);
  CHECK(r.err.find("--out DIR is required") != std::string::npos);
  CHECK_FALSE(fs::exists(dir.path() / "k"));  // nothing was written by any refusal

  // The generators live in their plugins: the CLI itself needs neither library.
  r = patchbay::test::run(std::string("ldd '") + patchbay::test::kCli + "-main'");
  REQUIRE(r.code == 0);
  CHECK_MESSAGE(r.out.find("libespeak") == std::string::npos, r.out);
  CHECK_MESSAGE(r.out.find("libfluidsynth") == std::string::npos, r.out);
}

TEST_CASE("cli: the launcher sets OpenMP's passive wait policy so patchbay-main starts once") {
  const std::string wav = std::string("'") + patchbay::test::kSourceDir + "/tests/golden/fbank/tones.wav'";
  patchbay::test::TempDir dir;
  const std::string out = " --out '" + (dir.path() / "f.npy").string() + "'";
  const std::string main_cli = std::string("'") + patchbay::test::kCli + "-main'";
  // Through build/patchbay: the policy is in place before LibTorch loads; no second start.
  auto r = patchbay::test::run("env -u OMP_WAIT_POLICY PATCHBAY_LOG=debug " + cli() + " fbank " + wav + out);
  CHECK(r.code == 0);
  CHECK(r.err.find("re-executing") == std::string::npos);
  // build/patchbay-main started directly has to re-execute itself to get it.
  r = patchbay::test::run("env -u OMP_WAIT_POLICY PATCHBAY_LOG=debug " + main_cli + " fbank " + wav + out);
  CHECK(r.code == 0);
  CHECK(r.err.find("re-executing fbank with OMP_WAIT_POLICY=PASSIVE") != std::string::npos);
  // A policy the user chose is kept: no re-execution either way.
  r = patchbay::test::run("env OMP_WAIT_POLICY=ACTIVE PATCHBAY_LOG=debug " + main_cli + " fbank " + wav + out);
  CHECK(r.code == 0);
  CHECK(r.err.find("re-executing") == std::string::npos);
  // Exit codes and output pass through the launcher unchanged.
  r = patchbay::test::run(cli() + " plan --no-such-option");
  CHECK(r.code == 2);
  CHECK(r.out.empty());
}

TEST_CASE("cli: plugins --json lists every built plugin as valid JSON on stdout") {
  const auto r = patchbay::test::run(cli() + " plugins --json");
  REQUIRE(r.code == 0);
  const auto j = json::parse(r.out);
  std::set<std::string> found;
  for (const auto& p : j["plugins"]) {
    found.insert(p["kind"].get<std::string>() + "/" + p["name"].get<std::string>());
    CHECK(p.contains("file"));
    CHECK(p.contains("version"));
    CHECK(p["options"].is_array());
  }
  for (const char* want : {"patcher/fftp", "patcher/square", "masker/none", "backbone/linear_probe",
                           "dataset/folder"}) {
    CHECK(found.count(want) == 1);
  }
  for (const auto& p : j["plugins"]) {
    if (p["name"] == "fftp") {
      CHECK(p["options"][1]["name"] == "stride");
      CHECK(p["options"][1]["default"] == 4);
      CHECK(p["options"][1]["min"] == 1.0);
    }
  }
  // The framework's own tables follow, so train.precision and train.device are found as
  // plugin options are.
  std::map<std::string, json> train;
  for (const auto& t : j["tables"]) {
    if (t["name"] != "train") continue;
    for (const auto& o : t["options"]) train[o["name"].get<std::string>()] = o;
  }
  REQUIRE(train.count("precision") == 1);
  CHECK(train["precision"]["default"] == "fp32");
  CHECK(train["precision"]["choices"] == json::array({"fp32", "bf16", "fp16"}));
  CHECK(train.count("device") == 1);
  const auto text = patchbay::test::run(cli() + " plugins");
  CHECK(text.out.find("framework tables (3)\n  [experiment]") != std::string::npos);
  CHECK(text.out.find("      precision ") != std::string::npos);
}

TEST_CASE("cli: plan prints the one run of a file without [sweep]") {
  auto r = patchbay::test::run(cli() + " plan " + quickstart());
  REQUIRE(r.code == 0);
  CHECK(r.out.find("1 run") != std::string::npos);
  CHECK(r.out.find("-base") != std::string::npos);
  r = patchbay::test::run(cli() + " plan " + quickstart() + " patcher.stride=2 --json");
  REQUIRE(r.code == 0);
  const auto j = json::parse(r.out);
  REQUIRE(j["runs"].size() == 1);
  CHECK(j["runs"][0]["config"]["patcher"]["stride"] == 2);
  CHECK(j["runs"][0]["config"]["patcher"]["plugin_version"] == "0.1.0");
  CHECK(j["experiment"] == "minimal");
}

TEST_CASE("cli: plan expands a [sweep]: one row per run, one column per swept key") {
  auto r = patchbay::test::run(cli() + " plan " + sweep_example());
  REQUIRE(r.code == 0);
  CHECK(r.err.empty());
  CHECK(r.out.find("experiment 'sweep_example' (") == 0);
  CHECK(r.out.find("): 8 runs (3 axes: masker.budget, patcher, train.seed)\n\n") != std::string::npos);
  // Header row, then the runs: seeds outermost, budget, then the rows fastest.
  const auto header = r.out.find("run id");
  REQUIRE(header != std::string::npos);
  std::vector<std::string> lines;
  for (size_t at = header; at < r.out.size();) {
    const auto end = r.out.find('\n', at);
    lines.push_back(r.out.substr(at, end - at));
    at = end + 1;
  }
  REQUIRE(lines.size() == 9);
  CHECK(lines[0].find("masker.budget") != std::string::npos);
  CHECK(lines[0].find("train.seed") != std::string::npos);
  CHECK(lines[0].find("tokens") != std::string::npos);
  CHECK(lines[1].find("-budget0_square-patch-size16x16-stride10x10_s0 ") != std::string::npos);
  CHECK(lines[1].find("square-patch_size16x16-stride10x10") != std::string::npos);
  CHECK(lines[1].substr(lines[1].size() - 3) == "144");  // 12 x 12 square patches
  CHECK(lines[2].find("-budget0_fftp-patch-frames16-stride4_s0 ") != std::string::npos);
  CHECK(lines[2].substr(lines[2].size() - 2) == "29");
  CHECK(lines[3].find("-budget1024_square") != std::string::npos);
  CHECK(lines[5].find("-budget0_square-patch-size16x16-stride10x10_s1 ") != std::string::npos);

  r = patchbay::test::run(cli() + " plan " + sweep_example() + " train.epochs=1 --json");
  REQUIRE(r.code == 0);
  const auto j = json::parse(r.out);
  REQUIRE(j["axes"].size() == 3);
  CHECK(j["axes"][0]["key"] == "masker.budget");
  CHECK(j["axes"][0]["values"] == json::array({0, 1024}));
  CHECK(j["axes"][2]["key"] == "train.seed");
  REQUIRE(j["runs"].size() == 8);
  std::set<std::string> ids;
  for (const auto& run : j["runs"]) {
    ids.insert(run["id"].get<std::string>());
    CHECK(run["config"]["train"]["epochs"] == 1);  // the override reaches every run
    CHECK(run["config_toml"].get<std::string>().find("[patcher]\nplugin = ") != std::string::npos);
  }
  CHECK(ids.size() == 8);
  const auto& fftp = j["runs"][1];
  CHECK(fftp["slug"] == "budget0_fftp-patch-frames16-stride4_s0");
  CHECK(fftp["axes"]["masker.budget"] == 0);
  CHECK(fftp["axes"]["patcher"] == "fftp-patch_frames16-stride4");
  CHECK(fftp["axes"]["train.seed"] == 0);
  CHECK(fftp["config"]["patcher"].contains("patch_size") == false);  // no leak from square
  CHECK(j["runs"][4]["config"]["train"]["seed"] == 1);
}

TEST_CASE("cli: a sweep point with bad geometry names its run") {
  const auto r = patchbay::test::run(cli() + " plan " + sweep_example() + " frontend.target_frames=12");
  CHECK(r.code == 1);
  CHECK(r.out.empty());
  // At the sweep key that sets each patcher, naming its runs and where the input's size comes from.
  CHECK_MESSAGE(r.err.rfind("patchbay plan: error [shape.patch_geometry]: " + sweep_example_path() +
                                ":44:45: runs 'budget0_square-patch-size16x16-stride10x10_s0', ",
                            0) == 0,
                r.err);
  CHECK_MESSAGE(r.err.find("patcher 'square' (patch_size = [16, 16], stride = [10, 10]): a patch of 16 frames is "
                           "longer than the input (input 128 mel bins x 12 frames, kernel 16 x 16, stride 10 x 10); "
                           "choose a smaller patch or a longer input; the input's length is frontend.target_frames = 12, "
                           "set at command line 'frontend.target_frames=12'\n") !=
                    std::string::npos,
                r.err);
  CHECK_MESSAGE(r.err.find(sweep_example_path() + ":47:45: runs 'budget0_fftp-patch-frames16-stride4_s0'") !=
                    std::string::npos,
                r.err);
}

TEST_CASE("cli: bad input is an error on stderr with a non-zero exit and nothing on stdout") {
  auto r = patchbay::test::run(cli() + " plan " + quickstart() + " patcher.stride=0 --json");
  CHECK(r.code == 1);
  CHECK(r.out.empty());
  CHECK(r.err == "patchbay plan: error [config.out_of_range]: command line 'patcher.stride=0': "
                 "patcher 'fftp' option 'stride' must be >= 1, got 0\n");
  // A missing argument is a wrong command line: exit 2, as README promises.
  for (const char* command : {"plan", "run", "cost", "run-dist", "report"}) {
    CAPTURE(command);
    r = patchbay::test::run("env -u RANK -u WORLD_SIZE " + cli() + " " + command);
    CHECK(r.code == 2);
    CHECK(r.err.find("which ") != std::string::npos);
  }
  // Counts that cannot be meant are refused, not clamped.
  for (const char* jobs : {"0", "-1", "99999"}) {
    CAPTURE(jobs);
    r = patchbay::test::run(cli() + " run " + quickstart() + " --jobs " + jobs);
    CHECK(r.code == 2);
    CHECK(r.err.find("--jobs must be between 1 and 1024") != std::string::npos);
  }
  r = patchbay::test::run(cli() + " cost " + quickstart() + " --repeats 0");
  CHECK(r.code == 2);
  CHECK(r.err.find("--repeats must be at least 1, got 0") != std::string::npos);
  r = patchbay::test::run(cli() + " plan " + quickstart() + " --bogus");
  CHECK(r.code == 2);
  CHECK(r.err.find("unrecognised option '--bogus'") != std::string::npos);
  // Commands that print no JSON do not offer --json (it was accepted and ignored).
  for (const char* command : {"run", "run-dist"}) {
    r = patchbay::test::run("env -u RANK -u WORLD_SIZE " + cli() + " " + command + " " + quickstart() + " --json");
    CHECK_MESSAGE(r.code == 2, command);
    CHECK_MESSAGE(r.err.find("unrecognised option '--json'") != std::string::npos, r.err);
  }
  CHECK(patchbay::test::run(cli() + " run --help").out.find("--json") == std::string::npos);
  // --results naming a folder: refused before anything is written beside it (no lock file).
  {
    patchbay::test::TempDir dir;
    fs::create_directories(dir.path() / "data");
    r = patchbay::test::run(cli() + " run " + quickstart() + " --results '" + (dir.path() / "data").string() + "'");
    CHECK(r.code == 1);
    CHECK_MESSAGE(r.err.find("error [results.not_a_file]") != std::string::npos, r.err);
    CHECK_FALSE(fs::exists(dir.path() / "data.lock"));
    r = patchbay::test::run("env -u RANK -u WORLD_SIZE " + cli() + " run-dist " + quickstart() +
                            " --dist-rank 0 --dist-world-size 1 --results '" + (dir.path() / "data").string() + "'");
    CHECK(r.code == 1);
    CHECK_MESSAGE(r.err.find("error [results.not_a_file]") != std::string::npos, r.err);
    CHECK_FALSE(fs::exists(dir.path() / "data.lock"));
  }
  // Settings that only fail where a run starts are refused by plan, at their source, before a
  // sweep fails them run by run; a device this machine lacks stops run before the first.
  r = patchbay::test::run(cli() + " plan " + quickstart() + " train.average_epochs=[3,1]");
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("error [config.average_epochs]: command line 'train.average_epochs=[3,1]'") !=
                    std::string::npos, r.err);
  r = patchbay::test::run(cli() + " plan " + quickstart() + " frontend.low_freq=9000");
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("error [frontend.options]: command line 'frontend.low_freq=9000'") != std::string::npos,
                r.err);
  CHECK_MESSAGE(r.err.find("the mel range low_freq = 9000") != std::string::npos, r.err);
  // ... by checking the options, not by building the front end: at these settings its filter
  // bank alone would be 2^29 x 128 floats (256 GB), once per sweep point.
  r = patchbay::test::run(cli() + " plan " + quickstart() +
                          " frontend.sample_rate=1000000000 frontend.frame_length_ms=1000");
  CHECK_MESSAGE(r.code == 0, r.err);
  {
    patchbay::test::TempDir dir;
    // cuda:99: a device no machine has, so that the test means the same with a GPU.
    r = patchbay::test::run(cli() + " run " + quickstart() + " train.device=cuda:99 --results '" +
                            (dir.path() / "r.h5").string() + "'");
    CHECK(r.code == 1);
    CHECK_MESSAGE(r.err.find("error [config.device_unavailable]") != std::string::npos, r.err);
    CHECK_FALSE(fs::exists(dir.path() / "r.h5"));
  }
  // Negative thread counts are refused, not read as "all cores".
  r = patchbay::test::run(cli() + " predict nothing.h5 clip.wav --threads -4");
  CHECK(r.code == 2);
  CHECK_MESSAGE(r.err.find("--threads -4: give 0 (all cores) or more") != std::string::npos, r.err);
  // Values that pass each option's own check and still cannot work (issue "faults" 4).
  r = patchbay::test::run(cli() + " plan " + quickstart() + " --plugin-dir /no/such/folder");
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("[cli.plugin_dir]: --plugin-dir '/no/such/folder' is not a folder (it does not exist)") !=
                    std::string::npos, r.err);
  r = patchbay::test::run(cli() + " plan '" + patchbay::test::kSourceDir + "/experiments/quickstart'");
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("[config.is_directory]") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find("quickstart.toml") != std::string::npos, r.err);
  r = patchbay::test::run(cli() + " plan " + quickstart() + " masker.plugin=specmask masker.budget=100000");
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("[specmask.budget]: command line 'masker.budget=100000': masker 'specmask'") !=
                    std::string::npos, r.err);
  r = patchbay::test::run(cli() + " plan " + quickstart() + " experiment.name=../../escape");
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("[config.bad_name]") != std::string::npos, r.err);
}

TEST_CASE("cli: plan warns of patches that leave most of the input unseen, and plans them") {
  auto r = patchbay::test::run(cli() + " plan " + quickstart() + " patcher.stride=100");
  CHECK(r.code == 0);
  CHECK_MESSAGE(r.err.find("warning: run ") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find("leave 96 of 128 frames unseen (1 x 2 = 2 tokens of 128 x 16 cells, stride 128 x 100") !=
                    std::string::npos, r.err);
  r = patchbay::test::run(cli() + " plan " + quickstart());
  CHECK(r.code == 0);
  CHECK_MESSAGE(r.err.find("unseen") == std::string::npos, r.err);
}

TEST_CASE("cli: plan refuses patch geometry that does not fit the input, before anything runs") {
  const auto r = patchbay::test::run(cli() + " plan " + quickstart() + " patcher.patch_frames=200");
  CHECK(r.code == 1);
  CHECK(r.err == "patchbay plan: error [shape.patch_geometry]: command line 'patcher.patch_frames=200': "
                 "patcher 'fftp' (patch_frames = 200, "
                 "stride = 4): a patch of 200 frames is longer than the input (input 128 mel bins x "
                 "128 frames, kernel 128 x 200, stride 128 x 4); choose a smaller patch or a longer "
                 "input; the input's length is frontend.target_frames = 128, set at " +
                 std::string(patchbay::test::kSourceDir) + "/experiments/examples/minimal.toml:17:17\n");
}

TEST_CASE("cli: cost builds the model and measures it") {
  const auto r = patchbay::test::run(cli() + " cost " + quickstart() + " --json --repeats 3");
  REQUIRE(r.code == 0);
  const auto j = json::parse(r.out);
  REQUIRE(j["runs"].size() == 1);
  const auto& run = j["runs"][0];
  CHECK(run["tokens"] == 29);
  // FFTP patch embedding (29 x 192 x 128 x 16) + linear probe head (192 x 35).
  CHECK(run["paper_macs"] == 29LL * 192 * 128 * 16 + 192 * 35);
  CHECK(run["latency_ms_median"].get<double>() > 0);
  CHECK(run["throughput_batch"] == 32);
  CHECK(run["throughput_per_s"].get<double>() > 0);
  // A class count or batch that cannot be is a usage error, not a LibTorch stack trace.
  for (const auto& [bad, why] : {std::pair{" --classes 0", "--classes must be at least 1, got 0"},
                                 std::pair{" --classes -3", "--classes must be at least 1, got -3"},
                                 std::pair{" --batch -2", "--batch must be 0 (skip the throughput) or more"}}) {
    const auto e = patchbay::test::run(cli() + " cost " + quickstart() + bad);
    CHECK_MESSAGE(e.code == 2, bad);
    CHECK_MESSAGE(e.err.find(why) != std::string::npos, e.err);
    CHECK_MESSAGE(e.err.find("frame #") == std::string::npos, e.err);
  }
}

TEST_CASE("cli: PATCHBAY_PLUGIN_PATH adds plugins; a broken one there stops with its file named") {
  patchbay::test::TempDir dir;
  const auto r = patchbay::test::run("PATCHBAY_PLUGIN_PATH='" + std::string(patchbay::test::kFaultDir) +
                                     "' " + cli() + " plugins");
  CHECK(r.code == 1);
  CHECK(r.err.find("patchbay plugins: error [plugin.") != std::string::npos);
  CHECK(r.err.find(patchbay::test::kFaultDir) != std::string::npos);
}
}
