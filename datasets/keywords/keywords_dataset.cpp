// `keywords`: the built-in spoken-keyword dataset (Speech Commands V2 layout, espeak-ng voices),
// generated on first use and read like Speech Commands.
//
// Where: dataset.root when given (relative to the experiment file), otherwise a folder per
// (generator version, per_class, seed, words) under $PATCHBAY_DATA_DIR, or
// $XDG_CACHE_HOME/patchbay/datasets (~/.cache/patchbay/datasets). A folder is used when its
// marker file (.patchbay-keywords) records the same generator version and options; a folder
// with other contents is refused with what to do. Generation happens once: under a lock file
// (two runs starting together wait for one generation), into a temporary sibling folder that
// is renamed into place when complete, so a kill mid-way never leaves a half dataset behind.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "keywords.hpp"
#include "patchbay/hash.hpp"
#include "patchbay/log.hpp"
#include "patchbay/registry.hpp"
#include "patchbay_datasets/speech_commands_layout.hpp"

namespace {

namespace fs = std::filesystem;
using namespace patchbay;
using namespace patchbay::datasets;

constexpr const char* kMarker = ".patchbay-keywords";

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
  fs::path base;
  if (const char* dir = std::getenv("PATCHBAY_DATA_DIR"); dir && *dir) {
    base = dir;
  } else if (const char* cache = std::getenv("XDG_CACHE_HOME"); cache && *cache) {
    base = fs::path(cache) / "patchbay" / "datasets";
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    base = fs::path(home) / ".cache" / "patchbay" / "datasets";
  } else {
    base = fs::temp_directory_path() / "patchbay" / "datasets";
  }
  return base / fmt::format("keywords-{}-n{}-s{}-{:08x}", kKeywordsGeneratorVersion,
                            o.get_int("per_class"), o.get_int("seed"),
                            stable_hash(fmt::format("{}", fmt::join(words_of(o), ","))) & 0xffffffffu);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// True when `root` holds a complete dataset generated with these options; throws when it
// holds something else.
bool ready(const fs::path& root, const std::string& marker) {
  std::error_code ec;
  if (!fs::exists(root, ec)) return false;
  if (fs::exists(root / kMarker, ec)) {
    if (read_file(root / kMarker) == marker) return true;
    throw DataError("data.keywords_mismatch",
                    fmt::format("dataset 'keywords': '{}' holds a keywords dataset generated with "
                                "other options:\n{}\nwanted:\n{}delete that folder to regenerate it, "
                                "or point dataset.root elsewhere (or leave it empty for the cache)",
                                root.string(), read_file(root / kMarker), marker));
  }
  if (fs::is_directory(root, ec) && fs::is_empty(root, ec)) return false;
  throw DataError("data.keywords_not_ours",
                  fmt::format("dataset 'keywords': '{}' exists but was not made by the keywords "
                              "generator (no {} file); choose an empty or new folder for "
                              "dataset.root, or leave it empty to use the cache",
                              root.string(), kMarker));
}

void generate(const fs::path& root, const Options& o, const std::string& marker) {
  std::error_code ec;
  fs::create_directories(root.parent_path(), ec);
  const fs::path lock_file = root.string() + ".lock";
  const int fd = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw DataError("data.keywords_write",
                    fmt::format("dataset 'keywords': cannot write in '{}'; set dataset.root or "
                                "PATCHBAY_DATA_DIR to a writable folder", root.parent_path().string()));
  }
  ::flock(fd, LOCK_EX);  // another process may be generating the same dataset: wait for it
  try {
    if (!ready(root, marker)) {
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
      const fs::path temp = root.string() + fmt::format(".tmp-{}", ::getpid());
      fs::remove_all(temp, ec);
      const KeywordsSummary s = generate_keywords(k, temp);
      std::ofstream(temp / kMarker) << marker;
      fs::remove_all(root, ec);  // only an empty folder can be here (ready() checked)
      fs::rename(temp, root);
      log::info("keywords: {} clips in {:.1f} s", s.train.clips + s.valid.clips + s.test.clips, s.seconds);
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

class Keywords final : public SpeechCommandsLayout {
 public:
  Keywords(const Options& o, const fs::path& root) : SpeechCommandsLayout("keywords", root, {}, o) {}
};

fs::path prepare(const Options& o, const DatasetContext& ctx) {
  fs::path root = o.get_string("root").empty() ? default_root(o) : fs::path(o.get_string("root"));
  if (root.is_relative()) root = ctx.base_dir / root;
  const std::string marker = marker_text(o);
  if (!ready(root, marker)) generate(root, o, marker);
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
