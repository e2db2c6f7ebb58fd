#include "helpers.hpp"

#include <array>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <sys/wait.h>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "patchbay/hash.hpp"
#include "test_paths.hpp"

void register_fftp(patchbay::Registrar&);
void register_square(patchbay::Registrar&);
void register_none_masker(patchbay::Registrar&);
void register_none_token_dropper(patchbay::Registrar&);
void register_patchout(patchbay::Registrar&);
void register_linear_probe(patchbay::Registrar&);
void register_folder_dataset(patchbay::Registrar&);
void register_specaugment(patchbay::Registrar&);
void register_specmask(patchbay::Registrar&);
void register_ast(patchbay::Registrar&);
void register_speech_commands(patchbay::Registrar&);
void register_keywords_dataset(patchbay::Registrar&);
void register_audioset(patchbay::Registrar&);
void register_aum(patchbay::Registrar&);
void register_instruments_dataset(patchbay::Registrar&);

namespace fs = std::filesystem;

namespace patchbay::test {

TempDir::TempDir() {
  std::random_device rd;
  path_ = fs::temp_directory_path() / ("patchbay-test-" + std::to_string(rd()) + std::to_string(rd()));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void register_linked_plugins(Registry& registry) {
  const auto linked = [&](const char* name, void (*fn)(Registrar&)) {
    PluginOrigin origin;
    origin.library = name;
    origin.version = "0.1.0";
    origin.file = "(linked in)";
    registry.register_library(origin, fn);
  };
  linked("fftp", register_fftp);
  linked("square", register_square);
  linked("none_masker", register_none_masker);
  linked("none_token_dropper", register_none_token_dropper);
  linked("patchout", register_patchout);
  linked("linear_probe", register_linear_probe);
  linked("folder", register_folder_dataset);
  linked("specaugment", register_specaugment);
  linked("specmask", register_specmask);
  linked("ast", register_ast);
  linked("speech_commands", register_speech_commands);
  linked("keywords", register_keywords_dataset);
  linked("audioset", register_audioset);
  linked("aum", register_aum);
  linked("instruments", register_instruments_dataset);
}

const Registry& linked_registry() {
  static Registry r;
  static bool once = (register_linked_plugins(r), true);
  (void)once;
  return r;
}

std::string id_hash_without_later_options(const ResolvedConfig& config) {
  const std::string text = config.to_toml();
  std::istringstream lines(text.substr(text.find("[dataset]")));
  std::string line, before;
  bool in_token_dropper = false;  // the table, added later, with its blank line after
  while (std::getline(lines, line)) {
    if (line == "[token_dropper]") in_token_dropper = true;
    if (in_token_dropper) {
      in_token_dropper = !line.empty();
      continue;
    }
    bool dropped = false;
    for (const char* key : {"threads = ", "loader_threads = ", "checkpoint_every_s = ", "cache_dir = ",
                            "init_weights = ", "match_paper_macs = ", "match_by = ",
                            "precision = ", "early_stop_patience = ", "sampler = ",
                            "epoch_size = ", "ema_decay = ", "average_epochs = ", "init_strict = ",
                            "init_exclude = "}) {
      dropped = dropped || line.rfind(key, 0) == 0;
    }
    if (!dropped) before += line + "\n";
  }
  return fmt::format("{:016x}", stable_hash(before)).substr(0, 8);
}

Outcome run(const std::string& command) {
  TempDir dir;
  const auto out = dir.path() / "out", err = dir.path() / "err";
  const std::string full = command + " >" + out.string() + " 2>" + err.string();
  const int status = std::system(full.c_str());
  Outcome o;
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  const auto slurp = [](const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  o.out = slurp(out);
  o.err = slurp(err);
  return o;
}

const fs::path& tiny_keywords() {
  static TempDir dir;
  static const fs::path root = [] {
    const fs::path out = dir.path() / "keywords";
    const auto r = run(std::string("'") + kCli + "' data keywords --out '" + out.string() +
                       "' --per-class 8 --words yes,no,up --seed 3");
    REQUIRE_MESSAGE(r.code == 0, r.err);
    return out;
  }();
  return root;
}

std::map<std::string, std::string> snapshot(const std::filesystem::path& root) {
  std::map<std::string, std::string> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    files[std::filesystem::relative(e.path(), root).generic_string()] =
        std::string(std::istreambuf_iterator<char>(in), {});
  }
  return files;
}

std::string differences(const std::map<std::string, std::string>& a,
                        const std::map<std::string, std::string>& b) {
  std::string out;
  for (const auto& [path, bytes] : a) {
    const auto other = b.find(path);
    if (other == b.end() || other->second != bytes) out += " " + path;
  }
  for (const auto& [path, bytes] : b) {
    if (!a.count(path)) out += " " + path;
  }
  return out;
}

}  // namespace patchbay::test
