// The `keywords` generator: a deterministic spoken-keyword dataset in the Speech Commands V2
// layout (docs/reference.md §7), synthesised with libespeak-ng (docs/datasets.md "Keywords").
//
//   KeywordsOptions o;  o.per_class = 30;  o.seed = 0;
//   const KeywordsSummary s = generate_keywords(o, "data/keywords");
//
// Writes into `out_dir`:
//   <word>/<speaker>_nohash_<n>.wav   16 kHz, 16-bit PCM, mono, exactly 16000 samples
//   validation_list.txt, testing_list.txt   relative paths; every other clip is training
//   _background_noise_/{white,pink,brown}_noise.wav   10 s of noise made by the generator
//   README.txt                        generator version, options, seed, voices per split
//
// A voice is an espeak-ng English accent x a voice variant ("timbre"), with a personal pitch
// and rate, jittered per clip. Splits are speaker-disjoint by timbre: a timbre with all its
// accents is one speaker group, ranked by a stable hash of its name and split_seed
// (independent of the seed) so ~10 % of the groups are validation and ~10 % test; no voice
// appears in two splits. Optional recording effects (a band-limited channel, a room,
// babble) make it a closer proxy of real speech (KeywordsOptions).
// The speaker id in a file name is 8 hex digits of a stable hash of the voice's name.
//
// Determinism: the same options give byte-identical files (on the same espeak-ng data), also
// when one process generates several times: libespeak-ng keeps hidden state between calls,
// so each generation runs it serially in a forked child process with a pristine state.
// Every random draw comes from streams derived from (seed, word, clip index).
// Safe to call from several threads at once (each call has its own child process).
//
// Errors: ConfigError "keywords.options" for bad options (per_class, words, split shares);
// DataError "keywords.out_not_empty" when out_dir holds files and `overwrite` is false (or it
// does not look like an earlier keywords output), "keywords.espeak" when libespeak-ng cannot
// start or has no English voices (install espeak-ng-data), "keywords.write" when a file
// cannot be written.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace patchbay {

// The generator's version: recorded in README.txt; bump it whenever the output bytes change.
inline constexpr const char* kKeywordsGeneratorVersion = "1.0.0";

// The 35 words of Speech Commands V2.
const std::vector<std::string>& speech_commands_v2_words();

struct KeywordsOptions {
  int per_class = 30;                                   // clips per word, >= 1
  uint64_t seed = 0;
  std::vector<std::string> words = speech_commands_v2_words();
  double valid_share = 0.1;                             // of speaker groups (timbres) and of
  double test_share = 0.1;                              // each word's clips
  // Timbres that are far harder than the rest (whispered, extreme: docs/datasets.md measured 26-54 %
  // vs ~90 % accuracy) are kept out of validation and test by default, so the held-out
  // splits measure generalisation to ordinary unseen voices. Empty: place them like any other.
  std::vector<std::string> train_only_timbres = {"whisper", "whisperf", "kaukovalta"};
  double noise_probability = 0.8;                       // share of clips with background noise
  double snr_min_db = 0.0, snr_max_db = 25.0;           // speech-to-noise ratio, on the speech
  double level_min_dbfs = -30.0, level_max_dbfs = -1.0; // the word's peak level
  // Recording realism (docs/datasets.md, "Keywords"), off by default: a set made with all
  // four at their defaults is byte for byte the one earlier versions made.
  // Which timbres are held out: 0 ranks them by a fixed hash (every earlier set); another
  // value re-draws the held-out voice families, so studies can vary the test voices.
  uint64_t split_seed = 0;
  // Share of clips heard through a band-limited channel: Butterworth high-pass U(80, 400) Hz
  // and low-pass U(2.8, 7.5) kHz, before the silence is trimmed.
  double channel_probability = 0.0;
  // Share of clips spoken in a synthetic room: a decaying-noise impulse response with RT60
  // U(0.15, 0.8) s, pre-delay U(0, 20) ms, direct-to-reverberant ratio U(-2, 10) dB.
  double reverb_probability = 0.0;
  // Of the clips with background noise, the share whose noise is babble: other voices of
  // the clip's own split (no voice crosses splits) talking over each other in filler words.
  double babble_share = 0.0;
  // Whether any of the four above is away from its default.
  bool realism_on() const {
    return split_seed != 0 || channel_probability != 0 || reverb_probability != 0 || babble_share != 0;
  }
  bool overwrite = false;  // replace an earlier keywords output in out_dir
  // Called after each clip with (clips done, clips total); may be empty.
  std::function<void(int64_t, int64_t)> progress;
};

struct KeywordsSplitSummary {
  int64_t clips = 0;
  int64_t voices = 0;   // distinct voices (accent x timbre) speaking in the split
  int64_t groups = 0;   // distinct timbres (speaker groups) speaking in the split
};

struct KeywordsSummary {
  KeywordsSplitSummary train, valid, test;
  int64_t voices_available = 0;   // accents x timbres that libespeak-ng offered
  double seconds = 0.0;           // wall time of the generation
};

// Generates the dataset (see the contract above) and returns what it wrote.
KeywordsSummary generate_keywords(const KeywordsOptions& options,
                                  const std::filesystem::path& out_dir);

}  // namespace patchbay
