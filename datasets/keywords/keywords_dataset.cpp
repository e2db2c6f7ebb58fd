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
#include "patchbay/registry.hpp"
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

std::string marker_text(const Options& o) {
  return fmt::format("generator = \"{}\"\nper_class = {}\nseed = {}\nwords = [\"{}\"]\n",
                     kKeywordsGeneratorVersion, o.get_int("per_class"), o.get_int("seed"),
                     fmt::join(words_of(o), "\", \""));
}

fs::path default_root(const Options& o) {
  return generated_data_dir() /
         fmt::format("keywords-{}-n{}-s{}-{:08x}", kKeywordsGeneratorVersion,
                     o.get_int("per_class"), o.get_int("seed"),
                     stable_hash(fmt::format("{}", fmt::join(words_of(o), ","))) & 0xffffffffu);
}

void generate(const fs::path& temp, const Options& o, const fs::path& root) {
  KeywordsOptions k;
  k.per_class = static_cast<int>(o.get_int("per_class"));
  k.seed = static_cast<uint64_t>(o.get_int("seed"));
  k.words = words_of(o);
  const int64_t total = static_cast<int64_t>(k.words.size()) * k.per_class;
  log::info("keywords: generating {} clips ({} words x {}) into {} (once; later runs reuse it)",
            total, k.words.size(), k.per_class, root.string());
  int64_t last_decile = 0;
  k.progress = [&](int64_t done, int64_t all) {
    const int64_t decile = all > 0 ? done * 10 / all : 10;
    if (decile > last_decile) {
      last_decile = decile;
      log::info("keywords: {}/{} clips", done, all);
    }
  };
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

}  // namespace

void register_keywords_dataset(patchbay::Registrar& registrar) {
  OptionSchema s;
  s.add_int("per_class", 100, "clips per word (about 80 % train, 10 % validation, 10 % test)",
            Range::between(1, 100000));
  s.add_int("seed", 0, "generator seed: the same seed gives byte-identical clips", Range::at_least(0));
  s.add({"words", OptionType::string_list, OptionValue{std::vector<std::string>{}},
         "words (classes) to generate, in label order (empty: the 35 Speech Commands V2 words)", {}, {}});
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
      });
}
