// The `instruments` generator: a deterministic multi-label instrument-recognition dataset in
// AudioSet's layout as AST keeps it (docs/reference.md §7), rendered with libfluidsynth from a
// General MIDI soundfont (Debian's fluid-soundfont-gm by default; docs/datasets.md "Instruments").
//
//   InstrumentsOptions o;  o.per_class = 150;  o.seed = 0;
//   const InstrumentsSummary s = generate_instruments(o, "data/instruments");
//
// Writes into `out_dir`:
//   audio/<id>.wav                 16 kHz, 16-bit PCM, mono, min_seconds..max_seconds long
//   train.json, valid.json, test.json
//       {"data": [{"wav": "audio/<id>.wav", "labels": "/gm/p040,/gm/drums"}, ...]}
//       wav paths are relative to the JSON file's folder (as the audioset plugin reads them);
//       entries sorted by id
//   class_labels_indices.csv       index,mid,display_name; mids /gm/pNNN (General MIDI
//                                  program NNN, 0-based) and /gm/drums (the kit on channel 10)
//   folds.csv                      path,labels,fold of every clip (labels: class keys joined by
//                                  ';'), 5 folds dealt round-robin within each clip's first
//                                  class: the set read by the folder plugin with dataset.fold,
//                                  for cross-validation
//   README.txt                     generator version, options, soundfont, fluidsynth version
//   clips.txt                      one line per clip: split, key, mode, tempo, length, and
//                                  each instrument's role and relative gain
//
// A clip is a short piece of music: one key, mode, tempo and meter, a chord progression, and
// min_instruments..max_instruments instruments (each at most once), each playing a role that
// suits it (melody, chords, arpeggio, sustained notes, bass line, drum pattern) with random
// velocities. Its label is the set of instruments in it. Every instrument is made audible:
// each one's part is rendered to its own output and scaled to the same loudness, give or take
// 6 dB, before the mix is brought to a peak level of level_min_dbfs..level_max_dbfs.
// Each class plays in exactly per_class clips (so there are about per_class x classes / 2
// clips with 1-3 instruments); a seeded shuffle puts test_share of the clips in test,
// valid_share in validation, the rest in training.
//
// Rendering: the soundfont is loaded once per call (only the presets in use); clips are
// rendered one after the other with libfluidsynth's synth API (no MIDI files), reverb and
// chorus off, every note event on the synth's 64-sample block grid, all sound stopped and the
// synth reset between clips.
//
// Determinism: the same options and soundfont give byte-identical files, also when one
// process generates several times: each call creates its own synth and renders every clip in
// the same order. (libfluidsynth keeps some state per voice slot across notes, e.g. a new
// voice's first block ramps from the output gain its slot had last, so a clip rendered after
// other clips differs slightly from the same clip rendered first: the bytes are a function of
// the whole option set, not of a clip alone.) Every random draw comes from streams derived
// from (seed, clip index), and the class plan and splits from (seed, "plan"/"split").
// Safe to call from several threads at once.
//
// Errors: ConfigError "instruments.options" for bad options (per_class, classes, instrument
// counts, durations, split shares, levels); DataError "instruments.out_not_empty" when out_dir
// holds files and `overwrite` is false (or it does not look like an earlier instruments
// output), "instruments.soundfont" when the soundfont cannot be loaded or lacks a preset
// (install fluid-soundfont-gm), "instruments.render" when libfluidsynth fails or an
// instrument stays silent, "instruments.write" when a file cannot be written.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace patchbay {

// The generator's version: recorded in README.txt; bump it whenever the output bytes change.
inline constexpr const char* kInstrumentsGeneratorVersion = "1.0.0";

// One class: an instrument of the General MIDI set.
struct InstrumentClass {
  std::string key;           // short name for options: "piano", "violin", "drums"
  std::string mid;           // class_labels_indices.csv mid: "/gm/p000", "/gm/drums"
  std::string display_name;  // "Acoustic Grand Piano"
  int program = 0;           // General MIDI program, 0-based; -1: the drum kit (channel 10)
};

// The 28 classes, in label order: 27 General MIDI programs and the drum kit.
const std::vector<InstrumentClass>& instrument_classes();

// The soundfont used when InstrumentsOptions::soundfont is empty: Debian's
// /usr/share/sounds/sf2/FluidR3_GM.sf2 unless the build chose another (PATCHBAY_SOUNDFONT).
std::string default_soundfont();

struct InstrumentsOptions {
  int per_class = 150;              // clips each instrument plays in, >= 1
  uint64_t seed = 0;
  std::vector<std::string> classes;  // keys of instrument_classes(), in label order; empty: all
  int min_instruments = 1;          // instruments per clip, 1 <= min <= max <= 8
  int max_instruments = 3;
  double min_seconds = 2.0, max_seconds = 5.0;           // clip duration, uniform
  double valid_share = 0.1, test_share = 0.1;            // of the clips
  double level_min_dbfs = -20.0, level_max_dbfs = -1.0;  // the mix's peak level
  std::string soundfont;            // a General MIDI .sf2; empty: default_soundfont()
  bool overwrite = false;           // replace an earlier instruments output in out_dir
  // Called after each clip with (clips done, clips total); may be empty.
  std::function<void(int64_t, int64_t)> progress;
};

struct InstrumentsSummary {
  int64_t train = 0, valid = 0, test = 0;  // clips per split
  int64_t classes = 0;
  double audio_seconds = 0.0;   // total duration of the clips
  double seconds = 0.0;         // wall time of the generation
  double load_seconds = 0.0;    // of which loading the soundfont
  std::string soundfont;        // the soundfont used
  std::string fluidsynth_version;
};

// Generates the dataset (see the contract above) and returns what it wrote.
InstrumentsSummary generate_instruments(const InstrumentsOptions& options,
                                        const std::filesystem::path& out_dir);

}  // namespace patchbay
