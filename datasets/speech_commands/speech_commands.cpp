// `speech_commands`: the Speech Commands V2 layout exactly (docs/reference.md §7):
//   <root>/<word>/<speaker>_nohash_<n>.wav, validation_list.txt and testing_list.txt (paths
//   relative to root) name the validation and test clips, everything else is training;
//   _background_noise_/ holds long noise recordings and is not a class.
// 35 words in the real V2; `classes` selects a subset (label indices follow the given order).
// on_bad_clip = "skip" leaves clips the front end cannot decode out of the run.
#include <fmt/format.h>

#include "patchbay/plugin.hpp"
#include "patchbay_datasets/speech_commands_layout.hpp"

namespace {

namespace fs = std::filesystem;
using namespace patchbay;
using namespace patchbay::datasets;

class SpeechCommands final : public SpeechCommandsLayout {
 public:
  SpeechCommands(const Options& o, const DatasetContext& ctx)
      : SpeechCommandsLayout("speech_commands",
                             resolve_root("speech_commands", o.get_string("root"), ctx,
                                          "the folder of Speech Commands V2 (the one holding "
                                          "validation_list.txt)"),
                             o.get_string_list("classes"), o) {}
};

}  // namespace

void register_speech_commands(patchbay::Registrar& registrar) {
  OptionSchema s;
  s.add_required_string("root", "Speech Commands V2 folder (holds validation_list.txt)");
  s.add({"classes", OptionType::string_list, OptionValue{std::vector<std::string>{}},
         "words to use, in label order (empty: every word folder)", {}, {}});
  add_on_bad_clip_option(s);
  registrar.add_dataset(
      {"speech_commands", "Speech Commands V2: word folders, validation/testing lists", s},
      [](const Options& o, const DatasetContext& c) { return std::make_shared<SpeechCommands>(o, c); },
      [](const fs::path& dir) {
        const char* words[] = {"go", "stop", "yes"};
        std::ofstream valid(dir / "validation_list.txt"), test(dir / "testing_list.txt");
        for (int w = 0; w < 3; ++w) {
          fs::create_directories(dir / words[w]);
          for (int speaker = 0; speaker < 6; ++speaker) {
            const auto name = fmt::format("{:08x}_nohash_0.wav", 0x1000 * (speaker + 1));
            write_tone_wav(dir / words[w] / name, 300.0 * (w + 1) + 10 * speaker, 0.25);
            if (speaker == 4) valid << words[w] << "/" << name << "\n";
            if (speaker == 5) test << words[w] << "/" << name << "\n";
          }
        }
        fs::create_directories(dir / "_background_noise_");
        write_tone_wav(dir / "_background_noise_" / "hum.wav", 50.0, 1.0);
        return std::map<std::string, OptionValue>{{"root", dir.string()}};
      });
}
