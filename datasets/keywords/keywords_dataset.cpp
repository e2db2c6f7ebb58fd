// `keywords`: the built-in spoken-keyword dataset (Speech Commands V2 layout, espeak-ng voices),
// generated on first use and read like Speech Commands.
//
// Where: dataset.root when given (relative to the experiment file), otherwise a folder per
// (generator version, per_class, seed, words) under $PATCHBAY_DATA_DIR, or
// $XDG_CACHE_HOME/patchbay/datasets (~/.cache/patchbay/datasets). A folder is used when its
// marker file (.patchbay-keywords) records the same generator version and options; a folder
// with other contents is refused with what to do. Generation happens once, locked and atomic
// (patchbay_datasets/generated_cache.hpp).
#include <fmt/format.h>

#include "keywords.hpp"
#include "patchbay/hash.hpp"
#include "patchbay/log.hpp"
#include "patchbay/plugin.hpp"
#include "patchbay_datasets/generated_cache.hpp"
#include "patchbay_datasets/speech_commands_layout.hpp"

namespace {

namespace fs = std::filesystem;
using namespace patchbay;
using namespace patchbay::datasets;

std::vector<std::string> words_of(const Options& o) {
  const auto& words = o.get_string_list("words");
  return words.empty() ? speech_commands_v2_words() : words;
}

// The recording-realism options (keywords.hpp), all off by default.
void add_realism_options(OptionSchema& s) {
  s.add_int("split_seed", 0, "which voice families (timbres) are held out for validation and test: 0 the "
            "fixed ranking, another value another draw (vary it to put the test voices in a CI)",
            Range::at_least(0));
  s.add_real("channel_probability", 0.0, "share of clips through a band-limited channel (high-pass "
             "80-400 Hz, low-pass 2.8-7.5 kHz)", Range::between(0.0, 1.0));
  s.add_real("reverb_probability", 0.0, "share of clips in a synthetic room (RT60 0.15-0.8 s)",
             Range::between(0.0, 1.0));
  s.add_real("babble_share", 0.0, "of the clips with background noise, the share with babble over it "
             "(other voices of the same split, 15 dB above the noise)", Range::between(0.0, 1.0));
}

KeywordsOptions settings_of(const Options& o);

// Empty with realism off, so the sets made before it existed keep their folders and markers.
std::string realism_key(const Options& o) {
  if (!settings_of(o).realism_on()) return "";
  return fmt::format("split_seed = {}\nchannel_probability = {}\nreverb_probability = {}\nbabble_share = {}\n",
                     o.get_int("split_seed"), o.get_real("channel_probability"), o.get_real("reverb_probability"),
                     o.get_real("babble_share"));
}

std::string marker_text(const Options& o) {
  return fmt::format("generator = \"{}\"\nper_class = {}\nseed = {}\nwords = [\"{}\"]\n{}",
                     kKeywordsGeneratorVersion, o.get_int("per_class"), o.get_int("seed"),
                     fmt::join(words_of(o), "\", \""), realism_key(o));
}

fs::path default_root(const Options& o) {
  return generated_root("keywords", kKeywordsGeneratorVersion, o.get_int("per_class"), o.get_int("seed"),
                        fmt::format("{}{}", fmt::join(words_of(o), ","), realism_key(o)));
}

// The generator's settings from the options the dataset and `patchbay data` share.
KeywordsOptions settings_of(const Options& o) {
  KeywordsOptions k;
  k.per_class = static_cast<int>(o.get_int("per_class"));
  k.seed = static_cast<uint64_t>(o.get_int("seed"));
  k.words = words_of(o);
  k.split_seed = static_cast<uint64_t>(o.get_int("split_seed"));
  k.channel_probability = o.get_real("channel_probability");
  k.reverb_probability = o.get_real("reverb_probability");
  k.babble_share = o.get_real("babble_share");
  return k;
}

void generate(const fs::path& temp, const Options& o, const fs::path& root) {
  KeywordsOptions k = settings_of(o);
  const int64_t total = static_cast<int64_t>(k.words.size()) * k.per_class;
  log::info("keywords: generating {} clips ({} words x {}) into {} (once; later runs reuse it)",
            total, k.words.size(), k.per_class, root.string());
  k.progress = progress_log("keywords");
  const KeywordsSummary s = generate_keywords(k, temp);
  log::info("keywords: {} clips in {:.1f} s", s.train.clips + s.valid.clips + s.test.clips, s.seconds);
}

class Keywords final : public SpeechCommandsLayout {
 public:
  Keywords(const Options& o, const fs::path& root) : SpeechCommandsLayout("keywords", root, {}, o) {}
};

fs::path prepare(const Options& o, const DatasetContext& ctx) {
  fs::path root = o.get_string("root").empty() ? default_root(o) : fs::path(o.get_string("root"));
  if (root.is_relative()) root = ctx.base_dir / root;
  GeneratedCache("keywords", marker_text(o)).ensure(root, [&](const fs::path& temp) {
    generate(temp, o, root);
  });
  return root;
}

// `patchbay data keywords`.
constexpr const char* kGeneratorUsage =
    "The 35 Speech Commands V2 words (or --words) spoken by libespeak-ng's English accents x\n"
    "voice variants; each clip is 1 s of 16 kHz 16-bit mono with the word at a random offset and\n"
    "level, usually over background noise. Layout and splits are those of Speech Commands V2\n"
    "(validation_list.txt, testing_list.txt; no voice in two splits), so the speech_commands\n"
    "dataset reads it:\n"
    "  [dataset] plugin = \"speech_commands\"  root = \"DIR\"\n"
    "(the keywords dataset of an experiment generates the same set itself on first use).\n"
    "The same seed gives the same bytes. DIR must be empty, unless --force replaces an earlier\n"
    "keywords dataset in it.";

std::string generate_into(const Options& o, const GenerateRequest& request) {
  KeywordsOptions k = settings_of(o);
  k.overwrite = request.overwrite;
  k.progress = request.progress;
  const KeywordsSummary s = generate_keywords(k, request.out);
  const auto line = [](const char* name, const KeywordsSplitSummary& x) {
    return fmt::format("  {:<10} {:>6} clips  {:>4} voices  {:>3} timbres\n", name, x.clips,
                       x.voices, x.groups);
  };
  return fmt::format("keywords: {} words x {} clips -> {} ({} voices available, seed {}) in {:.1f} s\n{}{}{}"
                     "read it with: [dataset] plugin = \"speech_commands\"  root = \"{}\"\n",
                     k.words.size(), k.per_class, request.out.string(), s.voices_available, k.seed,
                     s.seconds, line("train", s.train), line("validation", s.valid),
                     line("test", s.test), request.out.string());
}

DatasetGenerator generator() {
  OptionSchema s;
  s.add_int("per_class", 30, "clips per word (about 80 % train, 10 % validation, 10 % test)",
            Range::between(1, 100000));
  s.add_int("seed", 0, "random seed (same seed, same bytes)", Range::at_least(0));
  s.add({"words", OptionType::string_list, OptionValue{std::vector<std::string>{}},
         "words (classes), in label order (empty: the 35 of Speech Commands V2)", {}, {}});
  add_realism_options(s);
  return {kGeneratorUsage, s, &generate_into};
}

}  // namespace

void register_keywords_dataset(patchbay::Registrar& registrar) {
  OptionSchema s;
  s.add_int("per_class", 100, "clips per word (about 80 % train, 10 % validation, 10 % test)",
            Range::between(1, 100000));
  s.add_int("seed", 0, "generator seed: the same seed gives byte-identical clips", Range::at_least(0));
  s.add({"words", OptionType::string_list, OptionValue{std::vector<std::string>{}},
         "words (classes) to generate, in label order (empty: the 35 Speech Commands V2 words)", {}, {}});
  add_realism_options(s);
  s.add_string("root", "", "folder of the generated dataset (empty: a cache folder under "
               "$PATCHBAY_DATA_DIR or ~/.cache/patchbay/datasets)");
  add_on_bad_clip_option(s);
  registrar.add_dataset(
      {"keywords", "built-in spoken keywords (Speech Commands V2 layout, espeak-ng voices), "
                   "generated on first use", s},
      [](const Options& o, const DatasetContext& c) { return std::make_shared<Keywords>(o, prepare(o, c)); },
      [](const fs::path& dir) {
        return std::map<std::string, OptionValue>{
            {"root", (dir / "keywords").string()},
            {"per_class", OptionValue{int64_t{3}}},
            {"words", OptionValue{std::vector<std::string>{"yes", "no"}}}};
      },
      generator());
}
