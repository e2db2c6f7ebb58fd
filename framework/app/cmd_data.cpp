// patchbay data: generate a built-in dataset into a folder.
//   patchbay data keywords --out DIR [--per-class N] [--seed S] [--words a,b,c] [--force]
//   patchbay data instruments --out DIR [--per-class N] [--seed S] [--classes a,b,c]
//                             [--min-instruments N] [--max-instruments N] [--soundfont F] [--force]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <sstream>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "cli_common.hpp"
#include "commands.hpp"
#include "instruments.hpp"
#include "keywords.hpp"
#include "patchbay/error.hpp"

namespace po = boost::program_options;

namespace patchbay::cli {

namespace {

constexpr const char* kUsage =
    "Usage: patchbay data keywords --out DIR [--per-class N] [--seed S] [--words a,b,c] "
    "[--force]\n"
    "       patchbay data instruments --out DIR [--per-class N] [--seed S] [--classes a,b,c]\n"
    "                             [--min-instruments N] [--max-instruments N] [--soundfont F] "
    "[--force]\n\n"
    "keywords: the 35 Speech Commands V2 words (or --words) spoken by libespeak-ng's English\n"
    "accents x voice variants; each clip is 1 s of 16 kHz 16-bit mono with the word at a random\n"
    "offset and level, usually over background noise. Layout and splits are those of Speech\n"
    "Commands V2 (validation_list.txt, testing_list.txt; no voice in two splits), so the\n"
    "speech_commands dataset reads it:\n"
    "  [dataset] plugin = \"speech_commands\"  root = \"DIR\"\n"
    "--per-class defaults to 30 clips per word.\n\n"
    "instruments: 28 General MIDI instruments (or --classes: piano, violin, drums, ...) rendered\n"
    "with libfluidsynth from fluid-soundfont-gm (or --soundfont); each clip is 2-5 s of 16 kHz\n"
    "16-bit mono music in one key and tempo with 1-3 instruments, labelled with the set of\n"
    "instruments. Layout: AudioSet as AST keeps it (audio/, train.json, valid.json, test.json,\n"
    "class_labels_indices.csv), so the audioset dataset reads it:\n"
    "  [dataset] plugin = \"audioset\"  train_json = \"DIR/train.json\"  valid_json = \"DIR/valid.json\"\n"
    "            test_json = \"DIR/test.json\"  labels_csv = \"DIR/class_labels_indices.csv\"\n"
    "--per-class (clips each instrument plays in) defaults to 150: about 2,100 clips.\n\n"
    "The same seed gives the same bytes. DIR must be empty, unless --force replaces an earlier\n"
    "dataset of the same kind in it.";

std::vector<std::string> split_list(const std::string& csv) {
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

// A progress line on stderr, at most twice a second.
std::function<void(int64_t, int64_t)> progress_printer(const std::string& dataset) {
  const auto start = std::chrono::steady_clock::now();
  auto last = std::make_shared<std::chrono::steady_clock::time_point>(start - std::chrono::seconds(1));
  return [=](int64_t done, int64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - *last < std::chrono::milliseconds(500)) return;
    *last = now;
    const double elapsed = std::chrono::duration<double>(now - start).count();
    const double eta = elapsed / static_cast<double>(done) * static_cast<double>(total - done);
    fmt::print(stderr, "\r{}: {}/{} clips ({:.0f} %), {} elapsed, ETA {}   ", dataset, done, total,
               100.0 * static_cast<double>(done) / static_cast<double>(total), duration(elapsed),
               duration(eta));
    if (done == total) fmt::print(stderr, "\n");
  };
}

int generate_keywords_cli(const Parsed& p, const std::string& out) {
  KeywordsOptions o;
  if (p.vm.count("per-class")) o.per_class = p.vm["per-class"].as<int>();
  o.seed = p.vm["seed"].as<uint64_t>();
  if (p.vm.count("words")) o.words = split_list(p.vm["words"].as<std::string>());
  o.overwrite = p.vm.count("force") > 0;
  o.progress = progress_printer("keywords");
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

int generate_instruments_cli(const Parsed& p, const std::string& out) {
  InstrumentsOptions o;
  if (p.vm.count("per-class")) o.per_class = p.vm["per-class"].as<int>();
  o.seed = p.vm["seed"].as<uint64_t>();
  if (p.vm.count("classes")) o.classes = split_list(p.vm["classes"].as<std::string>());
  if (p.vm.count("min-instruments")) o.min_instruments = p.vm["min-instruments"].as<int>();
  if (p.vm.count("max-instruments")) o.max_instruments = p.vm["max-instruments"].as<int>();
  if (p.vm.count("soundfont")) o.soundfont = p.vm["soundfont"].as<std::string>();
  o.overwrite = p.vm.count("force") > 0;
  o.progress = progress_printer("instruments");
  const InstrumentsSummary s = generate_instruments(o, out);
  const int64_t clips = s.train + s.valid + s.test;
  fmt::print("instruments: {} classes x {} clips each -> {} clips ({:.0f} s of audio) in {} (seed {})\n"
             "  train {}, validation {}, test {}\n"
             "  {:.1f} s ({:.1f} s loading the soundfont, {:.0f} clips/s, {:.0f}x real time)\n"
             "  soundfont {}, libfluidsynth {}\n",
             s.classes, o.per_class, clips, s.audio_seconds, out, o.seed, s.train, s.valid, s.test,
             s.seconds, s.load_seconds, static_cast<double>(clips) / std::max(1e-9, s.seconds - s.load_seconds),
             s.audio_seconds / std::max(1e-9, s.seconds - s.load_seconds), s.soundfont, s.fluidsynth_version);
  return kExitOk;
}

}  // namespace

int run_data(const std::vector<std::string>& args) {
  po::options_description desc("patchbay data options");
  desc.add_options()("help,h", "show this help")(
      "out,o", po::value<std::string>(), "the folder to write the dataset into")(
      "per-class", po::value<int>(), "clips per class (keywords: 30; instruments: 150)")(
      "seed", po::value<uint64_t>()->default_value(0), "random seed (same seed, same bytes)")(
      "words", po::value<std::string>(), "keywords: comma-separated words (default: the 35 of "
                                         "Speech Commands V2)")(
      "classes", po::value<std::string>(), "instruments: comma-separated instrument keys "
                                           "(default: all 28)")(
      "min-instruments", po::value<int>(), "instruments: fewest instruments per clip (1)")(
      "max-instruments", po::value<int>(), "instruments: most instruments per clip (3)")(
      "soundfont", po::value<std::string>(), "instruments: General MIDI .sf2 to render with "
                                             "(default: fluid-soundfont-gm's FluidR3_GM.sf2)")(
      "force", "replace an earlier dataset of the same kind in --out");
  const auto p = parse(args, desc);
  if (wants_help(p, kUsage, desc)) return kExitOk;
  if (p.positional.empty()) throw po::error("expects a dataset name: keywords or instruments");
  const std::string dataset = p.positional[0];
  if (dataset != "keywords" && dataset != "instruments") {
    throw ConfigError("cli.unknown_dataset",
                      fmt::format("'data' cannot generate '{}'; available: keywords, instruments",
                                  dataset));
  }
  if (p.positional.size() > 1) {
    throw po::error(fmt::format("unexpected argument '{}'", p.positional[1]));
  }
  const auto only_for = [&](const char* option, const char* owner) {
    if (p.vm.count(option) && dataset != owner) {
      throw po::error(fmt::format("--{} is an option of 'data {}', not of 'data {}'", option, owner, dataset));
    }
  };
  only_for("words", "keywords");
  for (const char* option : {"classes", "min-instruments", "max-instruments", "soundfont"}) {
    only_for(option, "instruments");
  }
  if (!p.vm.count("out")) throw po::error("--out DIR is required");
  const std::string out = p.vm["out"].as<std::string>();
  return dataset == "keywords" ? generate_keywords_cli(p, out) : generate_instruments_cli(p, out);
}

}  // namespace patchbay::cli
