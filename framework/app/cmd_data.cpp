// patchbay data: generate a built-in dataset into a folder.
//   patchbay data keywords --out DIR [--per-class N] [--seed S] [--words a,b,c] [--force]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "cli_common.hpp"
#include "commands.hpp"
#include "keywords.hpp"
#include "patchbay/error.hpp"

namespace po = boost::program_options;

namespace patchbay::cli {

namespace {

constexpr const char* kUsage =
    "Usage: patchbay data keywords --out DIR [--per-class N] [--seed S] [--words a,b,c] "
    "[--force]\n\n"
    "Generates the built-in keywords dataset: the 35 Speech Commands V2 words (or --words)\n"
    "spoken by libespeak-ng's English accents x voice variants; each clip is 1 s of 16 kHz\n"
    "16-bit mono with the word at a random offset and level, usually over background noise.\n"
    "Layout and splits are those of Speech Commands V2 (validation_list.txt, testing_list.txt;\n"
    "no voice in two splits), so the speech_commands dataset reads it:\n"
    "  [dataset] plugin = \"speech_commands\"  root = \"DIR\"\n"
    "The same seed gives the same bytes. DIR must be empty, unless --force replaces an earlier\n"
    "keywords dataset in it.";

std::vector<std::string> split_words(const std::string& csv) {
  std::vector<std::string> words;
  std::stringstream in(csv);
  for (std::string w; std::getline(in, w, ',');) {
    if (!w.empty()) words.push_back(w);
  }
  return words;
}

std::string duration(double seconds) {
  const auto s = static_cast<long>(seconds + 0.5);
  return s >= 60 ? fmt::format("{}m{:02}s", s / 60, s % 60) : fmt::format("{}s", s);
}

}  // namespace

int run_data(const std::vector<std::string>& args) {
  po::options_description desc("patchbay data options");
  desc.add_options()("help,h", "show this help")(
      "out,o", po::value<std::string>(), "the folder to write the dataset into")(
      "per-class", po::value<int>()->default_value(30), "clips per word")(
      "seed", po::value<uint64_t>()->default_value(0), "random seed (same seed, same bytes)")(
      "words", po::value<std::string>(), "comma-separated words (default: the 35 of Speech "
                                         "Commands V2)")(
      "force", "replace an earlier keywords dataset in --out");
  const auto p = parse(args, desc);
  if (wants_help(p, kUsage, desc)) return kExitOk;
  if (p.positional.empty()) throw po::error("expects a dataset name: keywords");
  if (p.positional[0] != "keywords") {
    throw ConfigError("cli.unknown_dataset",
                      fmt::format("'data' cannot generate '{}'; available: keywords",
                                  p.positional[0]));
  }
  if (p.positional.size() > 1) {
    throw po::error(fmt::format("unexpected argument '{}'", p.positional[1]));
  }
  if (!p.vm.count("out")) throw po::error("--out DIR is required");

  KeywordsOptions o;
  o.per_class = p.vm["per-class"].as<int>();
  o.seed = p.vm["seed"].as<uint64_t>();
  if (p.vm.count("words")) o.words = split_words(p.vm["words"].as<std::string>());
  o.overwrite = p.vm.count("force") > 0;
  const auto start = std::chrono::steady_clock::now();
  auto last = start - std::chrono::seconds(1);
  o.progress = [&](int64_t done, int64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last < std::chrono::milliseconds(500)) return;
    last = now;
    const double elapsed = std::chrono::duration<double>(now - start).count();
    const double eta = elapsed / static_cast<double>(done) * static_cast<double>(total - done);
    fmt::print(stderr, "\rkeywords: {}/{} clips ({:.0f} %), {} elapsed, ETA {}   ", done, total,
               100.0 * static_cast<double>(done) / static_cast<double>(total), duration(elapsed),
               duration(eta));
    if (done == total) fmt::print(stderr, "\n");
  };
  const std::string out = p.vm["out"].as<std::string>();
  const KeywordsSummary s = generate_keywords(o, out);
  const auto line = [](const char* name, const KeywordsSplitSummary& x) {
    return fmt::format("  {:<10} {:>6} clips  {:>4} voices  {:>3} timbres\n", name, x.clips,
                       x.voices, x.groups);
  };
  fmt::print("keywords: {} words x {} clips -> {} ({} voices available, seed {}) in {:.1f} s\n{}{}{}",
             o.words.size(), o.per_class, out, s.voices_available, o.seed, s.seconds,
             line("train", s.train), line("validation", s.valid), line("test", s.test));
  return kExitOk;
}

}  // namespace patchbay::cli
