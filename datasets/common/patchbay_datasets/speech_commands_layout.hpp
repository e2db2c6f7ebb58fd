// The Speech Commands V2 layout (docs/reference.md §7), read by the `speech_commands` plugin and
// by the built-in `keywords` dataset (which generates that layout):
//   <root>/<word>/<speaker>_nohash_<n>.wav, validation_list.txt and testing_list.txt (paths
//   relative to root) name the validation and test clips, everything else is training;
//   _background_noise_/ holds long noise recordings and is not a class.
#pragma once
#include <algorithm>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "patchbay_datasets/layout.hpp"

namespace patchbay::datasets {

class SpeechCommandsLayout : public ListedDataset {
 public:
  // `dataset` names the plugin in messages; `classes` selects words in label order (empty:
  // every word folder, sorted). Throws DataError "data.layout" (a list file missing),
  // "data.unknown_class", "data.no_clips".
  SpeechCommandsLayout(const std::string& dataset, const fs::path& root,
                       const std::vector<std::string>& classes, const Options& options)
      : ListedDataset(false, options) {
    for (const char* list : {"validation_list.txt", "testing_list.txt"}) {
      if (!fs::exists(root / list)) {
        throw DataError("data.layout",
                        fmt::format("dataset '{}': '{}' is missing; Speech Commands V2 ships it at "
                                    "its root; point dataset.root there, or use the 'folder' "
                                    "dataset for other layouts", dataset, (root / list).string()));
      }
    }
    const auto available = class_folders(root);
    names_ = classes.empty() ? available : classes;
    for (const auto& name : names_) {
      if (std::find(available.begin(), available.end(), name) == available.end()) {
        throw DataError("data.unknown_class",
                        fmt::format("dataset '{}': class '{}' (dataset.classes) has no folder under "
                                    "'{}'; available: {}",
                                    dataset, name, root.string(), fmt::join(available, ", ")));
      }
    }
    const auto valid = read_lines(root / "validation_list.txt");
    const auto test = read_lines(root / "testing_list.txt");
    for (size_t label = 0; label < names_.size(); ++label) {
      for (const auto& f : audio_files(root / names_[label], {".wav"})) {
        Clip clip;
        // audio_files() yields paths under root / class, so the id is a lexical suffix:
        // fs::relative would resolve both paths on disk (a readlink per path component,
        // ~24k system calls for 1,000 clips).
        const fs::path class_dir = root / names_[label];
        clip.id = names_[label] + "/" + f.lexically_relative(class_dir).generic_string();
        clip.path = fs::absolute(f);
        clip.labels = {static_cast<int64_t>(label)};
        const Split where = valid.count(clip.id) ? Split::valid : test.count(clip.id) ? Split::test : Split::train;
        split(where).push_back(std::move(clip));
      }
    }
    if (split(Split::train).empty()) {
      throw DataError("data.no_clips", fmt::format("dataset '{}': no training clips under '{}'",
                                                   dataset, root.string()));
    }
  }
};

}  // namespace patchbay::datasets
