// End-to-end checks of `patchbay weights`: export a trained run's best and last epochs under
// the original names, list a file, start another run from it (train.init_weights), and the
// refusals that name what is wrong.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include <torch/serialize.h>

#include "helpers.hpp"
#include "patchbay/config.hpp"
#include "patchbay/error.hpp"
#include "patchbay/model.hpp"
#include "patchbay/results.hpp"
#include "patchbay/weights.hpp"
#include "test_paths.hpp"

namespace fs = std::filesystem;
using namespace patchbay;

namespace {

std::string cli() { return std::string("'") + test::kCli + "'"; }
std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

// A 3-word keyword set (6 clips per word).
const fs::path& tiny_keywords() {
  static test::TempDir dir;
  static const fs::path root = [] {
    const fs::path out = dir.path() / "keywords";
    const auto r = test::run(cli() + " data keywords --out " + quoted(out) +
                             " --per-class 6 --words yes,no,up --seed 5");
    REQUIRE_MESSAGE(r.code == 0, r.err);
    return out;
  }();
  return root;
}

fs::path write_experiment(const fs::path& file, const std::string& backbone, const std::string& train) {
  std::ofstream(file) << "[dataset]\nplugin = \"speech_commands\"\nroot = \"" << tiny_keywords().string()
                      << "\"\n\n[frontend]\nnum_mel_bins = 32\ntarget_frames = 100\n\n"
                      << "[patcher]\nplugin = \"fftp\"\npatch_frames = 16\nstride = 8\n\n"
                      << "[backbone]\n" << backbone << "\n\n"
                      << "[train]\nbatch_size = 6\nthreads = 1\n" << train;
  return file;
}

const char* kAst = "plugin = \"ast\"\ndepth = 1\nembed_dim = 32\nheads = 2";

// The single run of a results file: its folder and its configuration.
std::pair<fs::path, ResolvedConfig> only_run(const fs::path& results) {
  const ResultsStore store(results);
  const auto exp = store.read_experiment();
  REQUIRE(exp.has_value());
  REQUIRE(exp->run_ids.size() == 1);
  const auto rec = store.read_run(exp->run_ids[0]);
  REQUIRE(rec.has_value());
  std::string text, line;
  std::istringstream in(rec->config_toml);
  while (std::getline(in, line)) {
    if (line.rfind("plugin_version", 0) != 0) text += line + "\n";
  }
  auto config = load_experiment_text(text, "run.toml", {}, test::linked_registry()).runs.front().config;
  return {store.run_dir(exp->run_ids[0]), config};
}

std::vector<std::pair<std::string, at::Tensor>> imported(const ResolvedConfig& c, const fs::path& file) {
  Model m = build_model(c, test::linked_registry(), 3);
  import_weights(m, file);
  return m.named_state();
}

}  // namespace

TEST_SUITE("cli") {
TEST_CASE("cli: weights export writes a run's best or last epoch; a run starts from it") {
  test::TempDir dir;
  const fs::path results = dir.path() / "a.h5";
  auto r = test::run(cli() + " run " + quoted(write_experiment(dir.path() / "a.toml", kAst, "epochs = 2\n")) +
                     " --results " + quoted(results));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  const auto [run_dir, config] = only_run(results);

  // Best (default), from the folder; last, from the checkpoint.
  const fs::path best = dir.path() / "best.h5", last = dir.path() / "last.h5";
  r = test::run(cli() + " weights export " + quoted(run_dir) + " --out " + quoted(best));
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK(r.out.find("patcher 'fftp' + backbone 'ast'") != std::string::npos);
  CHECK(r.out.find("(best epoch ") != std::string::npos);
  r = test::run(cli() + " weights export " + quoted(run_dir / "checkpoint.pt") + " --last --out " + quoted(last));
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK(r.out.find("(last epoch 2)") != std::string::npos);
  // The results file itself is not weights: said so, with where the run's weights are.
  r = test::run(cli() + " weights list " + quoted(results));
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("error [weights.results_file]: '" + results.string() +
                           "' is a patchbay results file, not weights; a run's weights are in its run folder '") !=
                    std::string::npos,
                r.err);

  // The files hold the checkpoint's tensors, under the original names.
  torch::serialize::InputArchive archive;
  archive.load_from((run_dir / "checkpoint.pt").string());
  const auto from_best = imported(config, best), from_last = imported(config, last);
  for (size_t i = 0; i < from_best.size(); ++i) {
    at::Tensor b, l;
    archive.read("best/" + from_best[i].first, b, true);
    archive.read("model/" + from_last[i].first, l, true);
    CHECK(from_best[i].second.equal(b));
    CHECK(from_last[i].second.equal(l));
  }
  const auto index = read_weights_index(best);
  CHECK(index.attrs.at("source").find("of run " + run_dir.filename().string()) != std::string::npos);
  CHECK(index.attrs.at("config").find("[backbone]\nplugin = \"ast\"") != std::string::npos);

  r = test::run(cli() + " weights list " + quoted(best));
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK(r.out.find("# architecture: ast") != std::string::npos);
  CHECK(r.out.find("v.pos_embed") != std::string::npos);
  CHECK(r.out.find("[1, 13, 32]") != std::string::npos);  // 11 tokens + 2
  CHECK(r.out.find("backbone.blocks.0.attn.qkv.weight") != std::string::npos);
  CHECK(r.out.find("v.patch_embed.proj.weight") != std::string::npos);
  CHECK(r.out.find("[32, 1, 32, 16]") != std::string::npos);

  // A run with init_weights (relative to its experiment file) and a zero learning rate ends
  // where it started: with the file's weights.
  fs::copy_file(best, dir.path() / "sub_init.h5");
  fs::create_directories(dir.path() / "sub");
  const fs::path init_results = dir.path() / "b.h5";
  r = test::run(cli() + " run " +
                quoted(write_experiment(dir.path() / "sub" / "b.toml", kAst,
                                        "epochs = 1\nlr = 0.0\ninit_weights = \"../sub_init.h5\"\n")) +
                " --results " + quoted(init_results));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  const auto [init_dir, init_config] = only_run(init_results);
  const fs::path after = dir.path() / "after.h5";
  r = test::run(cli() + " weights export " + quoted(init_dir) + " --last --out " + quoted(after));
  REQUIRE_MESSAGE(r.code == 0, r.err);
  const auto start = imported(config, best), end = imported(config, after);
  for (size_t i = 0; i < start.size(); ++i) CHECK(start[i].second.equal(end[i].second));

  // A file that does not fit fails the run, naming the tensor.
  const fs::path bad_results = dir.path() / "c.h5";
  r = test::run(cli() + " run " +
                quoted(write_experiment(dir.path() / "c.toml", std::string(kAst) + "\nmlp_ratio = 2.0",
                                        "epochs = 1\ninit_weights = \"best.h5\"\n")) +
                " --results " + quoted(bad_results));
  CHECK(r.code != 0);
  const ResultsStore bad(bad_results);
  const auto bad_rec = bad.read_run(bad.read_experiment()->run_ids[0]);
  REQUIRE(bad_rec.has_value());
  CHECK(bad_rec->status == RunStatus::failed);
  CHECK(bad_rec->reason.find("tensor 'v.blocks.0.mlp.fc1.weight' is [128, 32] in '") != std::string::npos);

  // A truncated checkpoint is named, with no LibTorch stack trace (issue "faults" 6).
  const fs::path cut = dir.path() / "cut.h5.runs" / run_dir.filename();  // a run folder of R = cut.h5
  fs::create_directories(cut);
  fs::copy_file(run_dir / "run.h5", cut / "run.h5");
  fs::copy_file(run_dir / "checkpoint.pt", cut / "checkpoint.pt");
  fs::resize_file(cut / "checkpoint.pt", fs::file_size(cut / "checkpoint.pt") / 2);
  r = test::run(cli() + " weights export " + quoted(cut) + " --out " + quoted(dir.path() / "cut.h5"));
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("error [weights.checkpoint]: cannot read checkpoint") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find("Exception raised from") == std::string::npos, r.err);  // no stack trace
  CHECK_FALSE(fs::exists(dir.path() / "cut.h5"));

  // A damaged results file (issue "faults" 3): report says how to rebuild it, and run does.
  {
    std::fstream f(results, std::ios::in | std::ios::out | std::ios::binary);
    f.write(std::string(512, 'x').data(), 512);
  }
  r = test::run(cli() + " report " + quoted(results) + " --no-plots");
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("rebuilds the file from the runs' own files") != std::string::npos, r.err);
  r = test::run(cli() + " run " + quoted(dir.path() / "a.toml") + " --results " + quoted(results));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK_MESSAGE(r.err.find("could not be read; moved it to") != std::string::npos, r.err);
  CHECK_MESSAGE(r.out.find("1 completed before") != std::string::npos, r.out);  // nothing retrained
  r = test::run(cli() + " report " + quoted(results) + " --no-plots --out " + quoted(dir.path() / "rep"));
  CHECK_MESSAGE(r.code == 0, r.err);
  // A report folder that cannot be made is an error with what to do, not an internal error.
  r = test::run(cli() + " report " + quoted(results) + " --no-plots --out " + quoted(dir.path() / "a.toml" / "sub"));
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("error [report.write]: cannot create the report folder") != std::string::npos, r.err);
}

TEST_CASE("cli: weights export and list refuse what they cannot use") {
  test::TempDir dir;
  auto r = test::run(cli() + " weights export " + quoted(dir.path() / "nothing") + " --out " +
                     quoted(dir.path() / "w.h5"));
  CHECK(r.code == 1);
  CHECK(r.err.find("error [weights.no_run]") != std::string::npos);
  r = test::run(cli() + " weights export " + quoted(dir.path()) + " --out " + quoted(dir.path() / "w.h5"));
  CHECK(r.code == 1);
  CHECK(r.err.find("is not a run folder (R.h5.runs/<run id>/ with run.h5)") != std::string::npos);
  r = test::run(cli() + " weights export " + quoted(dir.path()));
  CHECK(r.code == 2);
  CHECK(r.err.find("--out W.h5 is required") != std::string::npos);
  r = test::run(cli() + " weights list " + quoted(dir.path() / "none.h5"));
  CHECK(r.code == 1);
  CHECK(r.err.find("error [weights.not_found]") != std::string::npos);
  r = test::run(cli() + " weights frobnicate");
  CHECK(r.code == 2);
  r = test::run(cli() + " weights --help");
  CHECK(r.code == 0);
  CHECK(r.out.find("patchbay weights export RUN_DIR|CHECKPOINT.pt") != std::string::npos);
}
}

TEST_SUITE("cli") {
TEST_CASE("cli: weights import brings a torch.save checkpoint in, adapts it to FFTP, and a run starts from it") {
  // A square-patch AST trained here stands for a published checkpoint: exported, then saved by
  // Python's torch.save as AST publishes its own (DataParallel's prefix, nested).
  test::TempDir dir;
  const std::string square = "[patcher]\nplugin = \"square\"\npatch_size = 16\nstride = 8\n";
  std::string toml;
  {
    std::ifstream in(write_experiment(dir.path() / "sq.toml", kAst, "epochs = 1\n"));
    toml.assign(std::istreambuf_iterator<char>(in), {});
  }
  const size_t at = toml.find("[patcher]");
  toml.replace(at, toml.find("[backbone]") - at, square + "\n");
  std::ofstream(dir.path() / "sq.toml") << toml;
  auto r = test::run(cli() + " run " + quoted(dir.path() / "sq.toml") + " --results " + quoted(dir.path() / "sq.h5"));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  const auto [sq_dir, sq_config] = only_run(dir.path() / "sq.h5");
  r = test::run(cli() + " weights export " + quoted(sq_dir) + " --out " + quoted(dir.path() / "sq_w.h5"));
  REQUIRE_MESSAGE(r.code == 0, r.err);
  r = test::run("cd " + quoted(dir.path()) + " && /usr/bin/python3 -c \"import h5py, torch, collections; "
                "f = h5py.File('sq_w.h5', 'r'); torch.save({'model': collections.OrderedDict(('module.' + k, "
                "torch.from_numpy(v[()])) for k, v in f.items()), 'epoch': 1}, 'published.pth')\"");
  REQUIRE_MESSAGE(r.code == 0, r.err);

  // A plain conversion records the grid (32 bins x 100 frames, 16 x 16 at stride 8: 3 x 11).
  r = test::run(cli() + " weights import " + quoted(dir.path() / "published.pth") + " --grid 3x11 --out " +
                quoted(dir.path() / "plain.h5"));
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK_MESSAGE(r.out.find("torch.save checkpoint (state dict under 'model', prefix 'module.' removed), grid 3x11") !=
                std::string::npos, r.out);
  const auto index = read_weights_index(dir.path() / "plain.h5");
  CHECK(index.attrs.at("grid_rows") == "3");
  CHECK(index.attrs.at("grid_cols") == "11");
  const auto plain = imported(sq_config, dir.path() / "plain.h5");  // every tensor, strictly
  CHECK(plain.size() == 23);

  // Adapted to the FFTP experiment (fftp 16 frames stride 8: 1 x 11), with its report.
  const fs::path fftp_toml = write_experiment(dir.path() / "ff.toml", kAst,
                                              "epochs = 1\ninit_weights = \"published.pth\"\n");
  r = test::run(cli() + " weights import " + quoted(dir.path() / "published.pth") + " --grid 3x11 --for " +
                quoted(fftp_toml) + " --classes 3 --out " + quoted(dir.path() / "ff_init.h5"));
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK_MESSAGE(r.out.find("adapted  v.pos_embed: positional grid 3x11 -> 1x11: mean over the frequency rows") !=
                std::string::npos, r.out);
  CHECK(r.out.find("adapted  v.patch_embed.proj.weight: patch kernel 16x16 -> 32x16: frequency tiled 2 times") !=
        std::string::npos);
  CHECK(r.out.find("# 21 loaded, 2 adapted, 0 fresh, 0 ignored") != std::string::npos);
  r = test::run(cli() + " weights import " + quoted(dir.path() / "published.pth") + " --grid 3x11 --for " +
                quoted(fftp_toml) + " --classes 3 --strict --out " + quoted(dir.path() / "strict.h5"));
  CHECK(r.code == 1);
  CHECK(r.err.find("error [weights.mismatch]: tensor 'v.patch_embed.proj.weight' is [32, 1, 16, 16]") != std::string::npos);
  r = test::run(cli() + " weights import " + quoted(dir.path() / "published.pth") + " --out x.h5 --classes 3");
  CHECK(r.code == 2);
  r = test::run(cli() + " weights import " + quoted(dir.path() / "published.pth") + " --grid 3by11 --out x.h5");
  CHECK(r.code == 2);
  CHECK(r.err.find("give ROWSxCOLS") != std::string::npos);

  // A run straight from the .pth fails, saying how to give the grid; from the conversion it
  // trains, and records what happened to the tensors.
  r = test::run(cli() + " run " + quoted(fftp_toml) + " --results " + quoted(dir.path() / "ff.h5"));
  CHECK(r.code != 0);
  {
    const ResultsStore store(dir.path() / "ff.h5");
    const auto rec = store.read_run(store.read_experiment()->run_ids[0]);
    CHECK(rec->status == RunStatus::failed);
    CHECK_MESSAGE(rec->reason.find("weights import") != std::string::npos, rec->reason);
  }
  const fs::path converted = write_experiment(dir.path() / "ff2.toml", kAst, "epochs = 1\ninit_weights = \"plain.h5\"\n");
  r = test::run(cli() + " run " + quoted(converted) + " --results " + quoted(dir.path() / "ff2.h5"));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  const ResultsStore store(dir.path() / "ff2.h5");
  const auto rec = store.read_run(store.read_experiment()->run_ids[0]);
  CHECK(rec->final.at("init_loaded") == 21);
  CHECK(rec->final.at("init_adapted") == 2);
  CHECK(rec->final.at("init_fresh") == 0);
  // init_strict refuses the same file.
  r = test::run(cli() + " run " + quoted(converted) + " train.init_strict=true --results " + quoted(dir.path() / "ff3.h5"));
  CHECK(r.code != 0);
}
}
