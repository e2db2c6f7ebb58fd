// What a plugin library sees while it registers: the plugin kinds, the description and
// option schema of an entry, the factory types, and the Registrar it adds them to.
//
// A plugin library registers its factories when the host calls its register function
// (never from static initialisers):
//
//   void register_fftp(patchbay::Registrar& r) {
//     patchbay::OptionSchema s;
//     s.add_int("patch_frames", 16, "frames per patch (Tp)", patchbay::Range::at_least(1));
//     r.add_patcher({"fftp", "full-frequency temporal patches", s},
//                   [](const patchbay::Options& o, const patchbay::PatcherContext& c) { ... });
//   }
//
// Part of the plugin SDK (installed with patchbay). The host's side, the Registry that
// implements Registrar, is not: plugins cannot depend on it.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "patchbay/export.hpp"
#include "patchbay/options.hpp"
#include "patchbay/plugin_kinds.hpp"

namespace patchbay {

enum class PluginKind { dataset, patcher, masker, backbone, token_dropper };
inline constexpr PluginKind kAllPluginKinds[] = {PluginKind::dataset, PluginKind::patcher,
                                                 PluginKind::masker, PluginKind::token_dropper,
                                                 PluginKind::backbone};
PATCHBAY_API const char* to_string(PluginKind kind);          // "patcher"
PATCHBAY_API const char* plural(PluginKind kind);             // "patchers"

// Options the framework adds to every backbone that has an integer `embed_dim` or `depth`
// option (Registry::add_backbone): build_model shrinks that option until the model's paper
// MACs are closest to match_paper_macs (0: off). For FLOP-matched comparisons.
inline constexpr const char* kMatchPaperMacs = "match_paper_macs";
inline constexpr const char* kMatchBy = "match_by";

struct PluginDescription {
  std::string name;      // snake_case, unique within its kind
  std::string help;      // one line
  OptionSchema options;
};

using DatasetFactory =
    std::function<std::shared_ptr<Dataset>(const Options&, const DatasetContext&)>;
// Writes a tiny instance of the dataset's on-disk layout into an empty folder and returns the
// option values that read it. Used by the conformance tests and examples.
using DatasetExampleWriter =
    std::function<std::map<std::string, OptionValue>(const std::filesystem::path& dir)>;
using PatcherFactory =
    std::function<std::shared_ptr<Patcher>(const Options&, const PatcherContext&)>;
using MaskerFactory = std::function<std::shared_ptr<Masker>(const Options&)>;
using TokenDropperFactory = std::function<std::shared_ptr<TokenDropper>(const Options&)>;
// A backbone decides the token width D from its options (a preset, or embed_dim).
using BackboneEmbedDim = std::function<int64_t(const Options&)>;
using BackboneFactory =
    std::function<std::shared_ptr<Backbone>(const Options&, const BackboneContext&)>;

// Where `patchbay data NAME` writes a dataset, and what it shows meanwhile.
struct GenerateRequest {
  std::filesystem::path out;  // the folder; created when missing
  // --force: an earlier dataset of the same kind in `out` may be replaced. Without it a
  // generator refuses a folder that is not empty (DataError naming the folder).
  bool overwrite = false;
  // Called as clips are written (done of total); may be empty.
  std::function<void(int64_t done, int64_t total)> progress;
};

// A dataset that can make its own data (the built-in ones, or a researcher's synthetic set)
// declares how: `patchbay data NAME --out DIR` then works for it, options included, without
// the CLI knowing the dataset. The host validates the options against `options` (given on the
// command line as --per-class for `per_class`; a string list as a,b,c) before it calls
// `generate`, which writes the dataset and returns what to print: what was made, where, and
// how to read it. Errors: DataError / ConfigError naming the cause; the folder keeps what it
// had (write into a temporary folder, then rename).
struct DatasetGenerator {
  std::string usage;     // paragraphs for `patchbay data NAME --help`
  OptionSchema options;
  std::function<std::string(const Options&, const GenerateRequest&)> generate;

  explicit operator bool() const { return static_cast<bool>(generate); }
};

// What a plugin sees while it registers. Registering a (kind, name) that exists is a
// PluginError (id "plugin.duplicate") naming both files.
class PATCHBAY_API Registrar {
 public:
  virtual ~Registrar();
  // `generator` may be empty: the dataset reads data it cannot make.
  virtual void add_dataset(PluginDescription d, DatasetFactory f, DatasetExampleWriter example,
                           DatasetGenerator generator) = 0;
  void add_dataset(PluginDescription d, DatasetFactory f, DatasetExampleWriter example) {
    add_dataset(std::move(d), std::move(f), std::move(example), DatasetGenerator{});
  }
  virtual void add_patcher(PluginDescription d, PatcherFactory f) = 0;
  virtual void add_masker(PluginDescription d, MaskerFactory f) = 0;
  virtual void add_token_dropper(PluginDescription d, TokenDropperFactory f) = 0;
  virtual void add_backbone(PluginDescription d, BackboneEmbedDim dim, BackboneFactory f) = 0;
};

}  // namespace patchbay
