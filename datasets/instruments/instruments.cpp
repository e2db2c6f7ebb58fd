// The instruments generator (contract in instruments.hpp). Per clip: a harmony (key, mode,
// tempo, meter, chord progression) -> one part per instrument, its notes written by the
// instrument's role -> note events on the 64-sample block grid -> libfluidsynth renders every
// part to its own stereo output in one pass -> each part to mono, scaled to a common RMS
// (+- 6 dB) -> sum -> peak level U(level_min, level_max) dBFS, 10 ms fade-out -> 16-bit.
#include "instruments.hpp"

#include <fluidsynth.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "patchbay/error.hpp"
#include "patchbay_datasets/generator.hpp"

#ifndef PATCHBAY_DEFAULT_SOUNDFONT
#define PATCHBAY_DEFAULT_SOUNDFONT "/usr/share/sounds/sf2/FluidR3_GM.sf2"
#endif

namespace patchbay {

namespace {

namespace fs = std::filesystem;
using datasets::Rng;

constexpr int kRate = 16000;
constexpr int kBlock = 64;          // libfluidsynth's internal block: events act on its edges
constexpr int kDrumChannel = 9;     // MIDI channel 10
constexpr int kOutputs = 16;        // stereo outputs = audio groups: MIDI channel c -> output c
constexpr int64_t kFolds = 5;     // folds.csv: ESC-50's count
constexpr const char* kReadmeFirstLine = "patchbay instruments generator";
constexpr const char* kGenerator = "instruments";

enum class Role { melody, chords, arpeggio, sustain, bass, drums };

const char* role_name(Role r) {
  switch (r) {
    case Role::melody: return "melody";
    case Role::chords: return "chords";
    case Role::arpeggio: return "arpeggio";
    case Role::sustain: return "sustained notes";
    case Role::bass: return "bass line";
    case Role::drums: return "drum pattern";
  }
  return "?";
}

// A class with what the composer needs: the instrument's register (MIDI keys) and the roles
// that suit it.
struct Profile {
  InstrumentClass cls;
  int lo = 0, hi = 127;
  std::vector<Role> roles;
  bool decays = false;  // struck or plucked: a held note fades out by itself
};

Profile profile(const char* key, int program, const char* name, int lo, int hi, std::vector<Role> roles) {
  Profile p;
  p.cls.key = key;
  p.cls.mid = program < 0 ? "/gm/drums" : fmt::format("/gm/p{:03d}", program);
  p.cls.display_name = name;
  p.cls.program = program;
  p.lo = lo;
  p.hi = hi;
  p.roles = std::move(roles);
  const int struck[] = {0, 6, 11, 12, 24, 25, 27, 32, 33, 46, 47, 105, 114, -1};
  p.decays = std::find(std::begin(struck), std::end(struck), program) != std::end(struck);
  return p;
}

const std::vector<Profile>& profiles() {
  using R = Role;
  static const std::vector<Profile> all = {
      profile("piano", 0, "Acoustic Grand Piano", 45, 84, {R::melody, R::chords, R::arpeggio}),
      profile("harpsichord", 6, "Harpsichord", 45, 84, {R::melody, R::chords, R::arpeggio}),
      profile("vibraphone", 11, "Vibraphone", 53, 89, {R::melody, R::chords, R::arpeggio}),
      profile("marimba", 12, "Marimba", 48, 84, {R::melody, R::arpeggio}),
      profile("church_organ", 19, "Church Organ", 41, 79, {R::chords, R::sustain, R::melody}),
      profile("accordion", 21, "Accordion", 53, 84, {R::chords, R::melody, R::sustain}),
      profile("nylon_guitar", 24, "Acoustic Guitar (nylon)", 40, 76, {R::chords, R::arpeggio, R::melody}),
      profile("steel_guitar", 25, "Acoustic Guitar (steel)", 40, 76, {R::chords, R::arpeggio, R::melody}),
      profile("clean_guitar", 27, "Electric Guitar (clean)", 40, 79, {R::chords, R::arpeggio, R::melody}),
      profile("distortion_guitar", 30, "Distortion Guitar", 40, 72, {R::chords, R::melody}),
      profile("acoustic_bass", 32, "Acoustic Bass", 28, 52, {R::bass}),
      profile("electric_bass", 33, "Electric Bass (finger)", 28, 55, {R::bass}),
      profile("violin", 40, "Violin", 55, 91, {R::melody, R::sustain}),
      profile("cello", 42, "Cello", 36, 67, {R::melody, R::sustain, R::bass}),
      profile("harp", 46, "Orchestral Harp", 36, 88, {R::arpeggio, R::melody, R::chords}),
      profile("timpani", 47, "Timpani", 38, 55, {R::bass}),
      profile("strings", 48, "String Ensemble 1", 43, 84, {R::sustain, R::chords}),
      profile("choir", 52, "Choir Aahs", 48, 79, {R::sustain, R::chords}),
      profile("trumpet", 56, "Trumpet", 55, 82, {R::melody, R::sustain}),
      profile("trombone", 57, "Trombone", 40, 67, {R::melody, R::sustain, R::bass}),
      profile("french_horn", 60, "French Horn", 41, 72, {R::melody, R::sustain}),
      profile("alto_sax", 65, "Alto Sax", 49, 80, {R::melody}),
      profile("oboe", 68, "Oboe", 58, 89, {R::melody, R::sustain}),
      profile("clarinet", 71, "Clarinet", 50, 84, {R::melody, R::arpeggio, R::sustain}),
      profile("flute", 73, "Flute", 60, 96, {R::melody, R::arpeggio, R::sustain}),
      profile("banjo", 105, "Banjo", 48, 79, {R::arpeggio, R::chords}),
      profile("steel_drums", 114, "Steel Drums", 52, 84, {R::melody, R::arpeggio}),
      profile("drums", -1, "Drum Kit", 35, 81, {R::drums}),
  };
  return all;
}

// Drum kits (bank 128 presets) a clip's drummer may use, when the soundfont has them.
constexpr int kKits[] = {0, 8, 16, 24, 25, 32, 40};

// ---------------------------------------------------------------------------------------
// Harmony and parts

struct Mode {
  const char* name;
  int steps[7];
  double weight;
};
constexpr Mode kModes[] = {
    {"major", {0, 2, 4, 5, 7, 9, 11}, 0.40},
    {"minor", {0, 2, 3, 5, 7, 8, 10}, 0.30},
    {"dorian", {0, 2, 3, 5, 7, 9, 10}, 0.10},
    {"mixolydian", {0, 2, 4, 5, 7, 9, 10}, 0.10},
    {"harmonic minor", {0, 2, 3, 5, 7, 8, 11}, 0.10},
};
// Chord roots as scale degrees (0-based), one chord per slot, cycled.
const std::vector<std::vector<int>> kProgressions = {
    {0, 4, 5, 3}, {0, 3, 4, 0}, {0, 5, 3, 4}, {1, 4, 0, 0}, {0, 3, 0, 4},
    {5, 3, 0, 4}, {0, 6, 5, 4}, {0, 2, 5, 4}, {0, 0, 3, 3}, {0, 4, 0, 4},
};
constexpr const char* kPitchNames[] = {"C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"};

int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int modulo(int a, int b) { return a - b * floor_div(a, b); }

struct Harmony {
  int tonic = 60;               // MIDI key of the tonic near middle C
  const Mode* mode = &kModes[0];
  double beat = 0.5;            // seconds
  int beats_per_bar = 4;
  int beats_per_chord = 4;
  double start = 0.0;           // seconds: where the music begins
  double end = 0.0;             // seconds: last note start is before this
  std::vector<int> chords;      // root degree per chord slot

  int key_of(int degree) const {
    const int octave = floor_div(degree, 7);
    return tonic + mode->steps[degree - 7 * octave] + 12 * octave;
  }
  // The degree whose key is closest to `key` (the lower one on a tie).
  int degree_near(int key) const {
    int best = 0, best_distance = 1 << 30;
    for (int d = -35; d <= 42; ++d) {
      const int distance = std::abs(key_of(d) - key);
      if (distance < best_distance) {
        best = d;
        best_distance = distance;
      }
    }
    return best;
  }
  double slot_seconds() const { return beats_per_chord * beat; }
  int slots() const { return static_cast<int>(chords.size()); }
  double slot_start(int s) const { return start + s * slot_seconds(); }
  int chord(int s) const { return chords[static_cast<size_t>(s)]; }
};

struct Note {
  double on = 0, off = 0;  // seconds
  int key = 60;
  int velocity = 100;
};

struct Part {
  const Profile* profile = nullptr;
  Role role = Role::melody;
  int channel = 0;
  int bank = 0, preset = 0;
  std::string detail;  // for the README-level description (pattern names)
  std::vector<Note> notes;
};

int clamp_velocity(double v) { return std::clamp(static_cast<int>(std::lround(v)), 1, 127); }

// The degree nearest to `degree` that is a tone of the triad on `root`.
int nearest_chord_tone(int degree, int root) {
  for (int delta : {0, -1, 1, -2, 2, -3, 3}) {
    const int m = modulo(degree + delta - root, 7);
    if (m == 0 || m == 2 || m == 4) return degree + delta;
  }
  return degree;
}

// The chord root degree (≡ root mod 7) whose key is at or just above `key`.
int root_at_or_above(const Harmony& h, int root, int key) {
  int d = h.degree_near(key);
  while (modulo(d - root, 7) != 0) ++d;
  while (h.key_of(d - 7) >= key) d -= 7;
  return d;
}

void add_note(Part& part, double on, double length, int key, int velocity) {
  part.notes.push_back({on, on + std::max(length, 0.02), key, velocity});
}

void write_melody(const Harmony& h, Part& part, Rng& r) {
  const Profile& p = *part.profile;
  // Struck and plucked instruments fade within a second or so: shorter notes keep them
  // sounding through the clip.
  const bool decays = p.decays;
  const std::vector<double> lengths =
      decays ? (h.beat > 0.55 ? std::vector<double>{0.5, 0.5, 0.5, 1, 1} : std::vector<double>{0.5, 1, 1, 1, 1.5})
             : (h.beat > 0.55 ? std::vector<double>{0.5, 0.5, 1, 1, 1, 1.5, 2} : std::vector<double>{0.5, 1, 1, 1, 1.5, 2, 2});
  const std::vector<int> steps = {-2, -1, -1, -1, 0, 1, 1, 1, 2, -3, 3, -4, 4};
  const int lo = p.lo + 3, hi = p.hi - 3;
  int degree = h.degree_near(lo + static_cast<int>(r.below(static_cast<uint64_t>(std::max(1, hi - lo)))));
  const double base = r.uniform(60, 110);
  const double legato = r.uniform(0.8, 0.97);
  part.detail = fmt::format("legato {:.2f}", legato);
  bool first = true, rested = false;
  for (double t = h.start; t < h.end;) {
    const double beats = r.pick(lengths);
    const double d = beats * h.beat;
    if (!first && !rested && r.chance(0.1)) {  // a rest: one at a time, at most half a beat
      t += std::min(d, h.beat / 2);
      rested = true;
      continue;
    }
    rested = false;
    if (!first) degree += r.pick(steps);
    while (h.key_of(degree) > hi) --degree;
    while (h.key_of(degree) < lo) ++degree;
    const int slot = std::min(h.slots() - 1, static_cast<int>((t - h.start) / h.slot_seconds() + 1e-9));
    const bool chord_start = std::fabs(t - h.slot_start(slot)) < 1e-6;
    if (first || (chord_start && r.chance(0.6))) degree = nearest_chord_tone(degree, h.chord(slot));
    const double beat_pos = (t - h.start) / h.beat;
    const bool strong = std::fabs(beat_pos - std::round(beat_pos)) < 1e-6 &&
                        static_cast<int>(std::lround(beat_pos)) % h.beats_per_bar == 0;
    add_note(part, t, d * legato * r.uniform(0.9, 1.0), h.key_of(degree),
             clamp_velocity(base + r.uniform(-12, 12) + (strong ? 8 : 0)));
    t += d;
    first = false;
  }
}

// Chord tones (degrees) of the chord on `root` in the part's register.
std::vector<int> voicing(const Harmony& h, const Profile& p, int root, bool power, Rng& r) {
  const int d0 = root_at_or_above(h, root, p.lo + (p.hi - p.lo) / 4);
  std::vector<int> tones = power ? std::vector<int>{d0, d0 + 4, d0 + 7}
                                 : r.chance(0.3) ? std::vector<int>{d0 + 2, d0 + 4, d0 + 7}
                                                 : std::vector<int>{d0, d0 + 2, d0 + 4};
  if (!power && r.chance(0.3)) tones.push_back(tones.front() + 7);
  std::vector<int> fit;
  for (int t : tones) {
    if (h.key_of(t) <= p.hi) fit.push_back(t);
  }
  if (fit.size() < 2) {
    fit.clear();
    for (int t : tones) fit.push_back(t - 7);
  }
  return fit;
}

void write_chords(const Harmony& h, Part& part, Rng& r) {
  const Profile& p = *part.profile;
  const bool power = p.cls.program == 30;  // distortion guitar: power chords
  static const char* kPatterns[] = {"held", "on every beat", "every two beats", "off-beats"};
  const int pattern = static_cast<int>(r.below(4));
  part.detail = kPatterns[pattern];
  const double base = r.uniform(55, 100);
  for (int s = 0; s < h.slots(); ++s) {
    const double t0 = h.slot_start(s), len = h.slot_seconds();
    if (t0 >= h.end) break;
    const std::vector<int> tones = voicing(h, p, h.chord(s), power, r);
    std::vector<std::pair<double, double>> hits;  // (start, length)
    if (pattern == 0) {
      hits.emplace_back(t0, len * 0.95);
    } else if (pattern == 1) {
      for (int b = 0; b < h.beats_per_chord; ++b) hits.emplace_back(t0 + b * h.beat, h.beat * 0.8);
    } else if (pattern == 2) {
      for (int b = 0; b < h.beats_per_chord; b += 2) {
        hits.emplace_back(t0 + b * h.beat, std::min(2, h.beats_per_chord - b) * h.beat * 0.9);
      }
    } else {
      for (int b = 0; b < h.beats_per_chord; ++b) hits.emplace_back(t0 + (b + 0.5) * h.beat, h.beat * 0.4);
    }
    for (size_t i = 0; i < hits.size(); ++i) {
      if (hits[i].first >= h.end) break;
      const double v = base + r.uniform(-10, 10) + (i == 0 ? 6 : 0);
      for (int tone : tones) {
        add_note(part, hits[i].first, hits[i].second, h.key_of(tone), clamp_velocity(v + r.uniform(-4, 4)));
      }
    }
  }
}

void write_arpeggio(const Harmony& h, Part& part, Rng& r) {
  const Profile& p = *part.profile;
  double step = h.beat / 2;
  std::string grid = "eighths";
  if (r.chance(0.2)) {
    step = h.beat / 3;
    grid = "triplets";
  } else if (h.beat > 0.55 && r.chance(0.4)) {
    step = h.beat / 4;
    grid = "sixteenths";
  }
  static const char* kShapes[] = {"up", "down", "up-down", "random"};
  const int shape = static_cast<int>(r.below(4));
  const bool two_octaves = r.chance(0.5);
  part.detail = fmt::format("{} {}{}", grid, kShapes[shape], two_octaves ? ", two octaves" : "");
  const double base = r.uniform(55, 100);
  const double ring = r.uniform(1.0, 2.0);
  int index = 0;
  for (int s = 0; s < h.slots(); ++s) {
    const double t0 = h.slot_start(s);
    if (t0 >= h.end) break;
    const int d0 = root_at_or_above(h, h.chord(s), p.lo + (p.hi - p.lo) / 5);
    std::vector<int> tones;
    for (int t : two_octaves ? std::vector<int>{0, 2, 4, 7, 9, 11, 14} : std::vector<int>{0, 2, 4, 7}) {
      if (h.key_of(d0 + t) <= p.hi) tones.push_back(d0 + t);
    }
    if (tones.empty()) tones.push_back(d0);
    std::vector<int> order(tones.begin(), tones.end());
    if (shape == 1) std::reverse(order.begin(), order.end());
    if (shape == 2) {
      for (size_t i = tones.size() - 1; i-- > 1;) order.push_back(tones[i]);
    }
    const int n = static_cast<int>(std::lround(h.slot_seconds() / step));
    for (int k = 0; k < n; ++k, ++index) {
      const double t = t0 + k * step;
      if (t >= h.end) break;
      const int tone = shape == 3 ? r.pick(tones) : order[static_cast<size_t>(index) % order.size()];
      const double beat_pos = (t - h.start) / h.beat;
      const bool on_beat = std::fabs(beat_pos - std::round(beat_pos)) < 1e-6;
      add_note(part, t, step * ring, h.key_of(tone),
               clamp_velocity(base + r.uniform(-10, 10) + (on_beat ? 6 : 0)));
    }
  }
}

void write_sustain(const Harmony& h, Part& part, Rng& r) {
  const Profile& p = *part.profile;
  const int voices = 1 + static_cast<int>(r.below(2));
  part.detail = voices == 1 ? "one voice" : "two voices";
  const double base = r.uniform(50, 100);
  for (int s = 0; s < h.slots(); ++s) {
    const double t0 = h.slot_start(s);
    if (t0 >= h.end) break;
    const int d0 = root_at_or_above(h, h.chord(s), (p.lo + p.hi) / 2 - 5);
    std::vector<int> triad = {d0, d0 + 2, d0 + 4};
    for (int v = 0; v < voices; ++v) {
      const size_t i = r.below(triad.size());
      int tone = triad[i];
      triad.erase(triad.begin() + static_cast<long>(i));
      while (h.key_of(tone) > p.hi) tone -= 7;
      add_note(part, t0, h.slot_seconds() * 0.98, h.key_of(tone), clamp_velocity(base + r.uniform(-8, 8)));
    }
  }
}

void write_bass(const Harmony& h, Part& part, Rng& r) {
  const Profile& p = *part.profile;
  const bool timpani = p.cls.program == 47;
  static const char* kPatterns[] = {"roots", "root and fifth", "walking", "eighths"};
  const int pattern = static_cast<int>(r.below(timpani ? 2 : 4));
  part.detail = kPatterns[pattern];
  const double base = r.uniform(70, 110);
  for (int s = 0; s < h.slots(); ++s) {
    const double t0 = h.slot_start(s);
    if (t0 >= h.end) break;
    const int root = root_at_or_above(h, h.chord(s), p.lo + 2);
    const auto note = [&](double t, double len, int degree, double accent) {
      if (t < h.end) add_note(part, t, len, h.key_of(degree), clamp_velocity(base + accent + r.uniform(-8, 8)));
    };
    const int beats = h.beats_per_chord;
    if (pattern == 0) {
      note(t0, (timpani ? 1.0 : beats * 0.9) * h.beat, root, 6);
      if (beats >= 4) note(t0 + 2 * h.beat, (timpani ? 1.0 : 1.8) * h.beat, root, 0);
    } else if (pattern == 1) {
      for (int b = 0; b < beats; b += 2) {
        note(t0 + b * h.beat, (std::min(2, beats - b) - 0.2) * h.beat, (b / 2) % 2 ? root + 4 : root, b ? 0 : 6);
      }
    } else if (pattern == 2) {
      const std::vector<int> walk = {0, 2, 4, 5, 4, 2, 7, 6};
      for (int b = 0; b < beats; ++b) {
        const int degree = b == 0 ? root : root + walk[r.below(walk.size())];
        note(t0 + b * h.beat, 0.9 * h.beat, h.key_of(degree) > p.hi ? degree - 7 : degree, b ? 0 : 6);
      }
    } else {
      for (int k = 0; k < 2 * beats; ++k) note(t0 + k * h.beat / 2, 0.45 * h.beat, k == 2 * beats - 1 && r.chance(0.5) ? root + 4 : root, k % 2 ? -6 : 4);
    }
  }
}

// General MIDI percussion keys.
constexpr int kKick = 36, kSnare = 38, kClosedHat = 42, kOpenHat = 46, kRide = 51, kCrash = 49;
constexpr int kToms[] = {50, 48, 47, 45, 43, 41};

void write_drums(const Harmony& h, Part& part, Rng& r) {
  const int steps = 4 * h.beats_per_bar;  // sixteenths per bar
  const bool waltz = h.beats_per_bar == 3;
  // Kick and snare patterns on the sixteenth grid.
  const std::vector<std::vector<int>> kicks = waltz ? std::vector<std::vector<int>>{{0}, {0, 6}, {0, 10}}
                                                    : std::vector<std::vector<int>>{{0, 8}, {0, 6, 8}, {0, 10}, {0, 8, 11}, {0, 3, 8, 10}, {0, 4, 8, 12}};
  const std::vector<std::vector<int>> snares = waltz ? std::vector<std::vector<int>>{{4, 8}, {8}}
                                                     : std::vector<std::vector<int>>{{4, 12}, {8}, {4, 12, 15}};
  const std::vector<int>& kick = r.pick(kicks);
  const std::vector<int>& snare = r.pick(snares);
  const int cymbal = r.chance(0.25) ? kRide : kClosedHat;
  const int hat_every = h.beat > 0.6 && r.chance(0.3) ? 1 : r.chance(0.15) ? 4 : 2;  // in sixteenths
  const bool open_hat = cymbal == kClosedHat && r.chance(0.3);
  const bool crash = r.chance(0.4);
  const bool fill = r.chance(0.3);
  part.detail = fmt::format("{} every {} sixteenth(s){}{}{}", cymbal == kRide ? "ride" : "hi-hat",
                            hat_every, open_hat ? ", open hat" : "", crash ? ", crash" : "", fill ? ", fill" : "");
  const double sixteenth = h.beat / 4;
  const double base = r.uniform(75, 110);
  const int bars = static_cast<int>(std::ceil((h.end - h.start) / (h.beats_per_bar * h.beat)));
  for (int bar = 0; bar < bars; ++bar) {
    const double t0 = h.start + bar * h.beats_per_bar * h.beat;
    const bool fill_bar = fill && bar == bars - 1 && bars > 1;
    for (int k = 0; k < steps; ++k) {
      const double t = t0 + k * sixteenth;
      if (t >= h.end) break;
      const auto hit = [&](int key, double velocity) {
        part.notes.push_back({t, t + 0.1, key, clamp_velocity(velocity + r.uniform(-8, 8))});
      };
      if (fill_bar && k >= steps - 4) {
        hit(kToms[(k - (steps - 4)) * 2 % 6 + (r.chance(0.5) ? 1 : 0)], base);
        continue;
      }
      if (std::find(kick.begin(), kick.end(), k) != kick.end()) hit(kKick, base + 8);
      if (std::find(snare.begin(), snare.end(), k) != snare.end()) {
        hit(kSnare, base + 4);
      } else if (k % 2 == 1 && r.chance(0.06)) {
        hit(kSnare, base - 40);  // ghost note
      }
      if (k % hat_every == 0) {
        const bool last_off_beat = open_hat && k == steps - 2;
        hit(last_off_beat ? kOpenHat : cymbal, base - (k % 4 == 0 ? 10 : 25));
      }
      if (crash && bar == 0 && k == 0) hit(kCrash, base);
    }
  }
}

// ---------------------------------------------------------------------------------------
// libfluidsynth

// libfluidsynth reports through global log functions: warnings are dropped (FluidR3_GM
// triggers harmless ones), errors are kept for the next exception's message.
std::mutex log_mutex;
std::string last_fluid_error;

void keep_error(int, const char* message, void*) {
  std::lock_guard<std::mutex> lock(log_mutex);
  last_fluid_error = message ? message : "";
}

std::string take_fluid_error() {
  std::lock_guard<std::mutex> lock(log_mutex);
  std::string e = std::move(last_fluid_error);
  last_fluid_error.clear();
  return e.empty() ? "" : " (" + e + ")";
}

void quiet_fluidsynth() {
  static std::once_flag once;
  std::call_once(once, [] {
    fluid_set_log_function(FLUID_PANIC, keep_error, nullptr);
    fluid_set_log_function(FLUID_ERR, keep_error, nullptr);
    fluid_set_log_function(FLUID_WARN, nullptr, nullptr);
    fluid_set_log_function(FLUID_INFO, nullptr, nullptr);
    fluid_set_log_function(FLUID_DBG, nullptr, nullptr);
  });
}

class Synth {
 public:
  explicit Synth(const std::string& soundfont) {
    quiet_fluidsynth();
    std::error_code ec;
    if (!fs::is_regular_file(soundfont, ec)) {
      throw DataError("instruments.soundfont",
                      fmt::format("the soundfont '{}' does not exist; install fluid-soundfont-gm "
                                  "(apt-get install fluid-soundfont-gm, or ./setup.sh) or give "
                                  "another General MIDI .sf2 (--soundfont, dataset.soundfont)",
                                  soundfont));
    }
    // A SoundFont 2 file is a RIFF form of type sfbk. Checked here so that other files get a
    // clear error (libfluidsynth would hand them to libinstpatch, which prints to stderr).
    char head[12] = {};
    std::ifstream(soundfont, std::ios::binary).read(head, sizeof head);
    if (std::string(head, 4) != "RIFF" || std::string(head + 8, 4) != "sfbk") {
      throw DataError("instruments.soundfont",
                      fmt::format("'{}' is not a SoundFont 2 file (.sf2); install "
                                  "fluid-soundfont-gm or give another General MIDI .sf2", soundfont));
    }
    // libfluidsynth initialises global tables when the first synth is created: one at a time.
    static std::mutex create_mutex;
    std::lock_guard<std::mutex> lock(create_mutex);
    settings_ = new_fluid_settings();
    if (settings_ == nullptr) fail("cannot create its settings");
    set_num("synth.sample-rate", kRate);
    set_int("synth.reverb.active", 0);  // no effects: nothing carries over from clip to clip
    set_int("synth.chorus.active", 0);
    set_int("synth.audio-channels", kOutputs);
    set_int("synth.audio-groups", kOutputs);
    set_int("synth.cpu-cores", 1);       // render in this thread only
    set_int("synth.threadsafe-api", 0);  // one thread uses this synth
    set_int("synth.lock-memory", 0);     // no mlock of 148 MB of samples
    // Load only the samples of the presets pinned below (all of them when every class is
    // used): a few classes start in a fraction of the time of a full load.
    set_int("synth.dynamic-sample-loading", 1);
    synth_ = new_fluid_synth(settings_);
    if (synth_ == nullptr) fail("cannot create a synthesiser");
    sfont_id_ = fluid_synth_sfload(synth_, soundfont.c_str(), 1);
    if (sfont_id_ == FLUID_FAILED) {
      throw DataError("instruments.soundfont",
                      fmt::format("libfluidsynth cannot load the soundfont '{}'{}; reinstall "
                                  "fluid-soundfont-gm or give another General MIDI .sf2",
                                  soundfont, take_fluid_error()));
    }
    sfont_ = fluid_synth_get_sfont_by_id(synth_, sfont_id_);
  }
  Synth(const Synth&) = delete;
  Synth& operator=(const Synth&) = delete;
  ~Synth() {
    if (synth_) delete_fluid_synth(synth_);
    if (settings_) delete_fluid_settings(settings_);
  }

  bool has_preset(int bank, int preset) const {
    return sfont_ && fluid_sfont_get_preset(sfont_, bank, preset) != nullptr;
  }
  std::string preset_name(int bank, int preset) const {
    fluid_preset_t* p = sfont_ ? fluid_sfont_get_preset(sfont_, bank, preset) : nullptr;
    return p ? fluid_preset_get_name(p) : "";
  }

  // Keeps the preset's samples loaded from now on (with dynamic sample loading, a preset that
  // no channel uses would otherwise be unloaded at every reset between clips).
  void pin(int bank, int preset) {
    if (fluid_synth_pin_preset(synth_, sfont_id_, bank, preset) != FLUID_OK) {
      fail(fmt::format("cannot load bank {} preset {}", bank, preset));
    }
  }

  void select(int channel, int bank, int preset) {
    if (fluid_synth_program_select(synth_, channel, sfont_id_, bank, preset) != FLUID_OK) {
      fail(fmt::format("cannot select bank {} preset {} on channel {}", bank, preset, channel));
    }
  }
  void note_on(int channel, int key, int velocity) {
    if (fluid_synth_noteon(synth_, channel, key, velocity) != FLUID_OK) {
      fail(fmt::format("note-on {} failed on channel {}", key, channel));
    }
  }
  // Note-off of a key that already stopped sounding (a short drum sample) reports an error:
  // not one for us.
  void note_off(int channel, int key) { fluid_synth_noteoff(synth_, channel, key); }

  // Renders `frames` frames; MIDI channel c is mixed into outputs[2c] (left), [2c+1] (right),
  // null pointers skip a channel.
  void render(int frames, float** outputs) {
    if (fluid_synth_process(synth_, frames, 0, nullptr, 2 * kOutputs, outputs) != FLUID_OK) {
      fail("rendering failed");
    }
  }

  // Stops every sound at once, waits until every voice is free, and resets channels,
  // programs and controllers: no note or controller of a clip reaches into the next.
  void silence() {
    float* none[2 * kOutputs] = {};
    fluid_synth_all_sounds_off(synth_, -1);
    for (int i = 0; fluid_synth_get_active_voice_count(synth_) > 0; ++i) {
      if (i == 1000) fail("voices keep sounding after all-sounds-off");
      render(kBlock, none);
    }
    fluid_synth_system_reset(synth_);
    render(kBlock, none);
    if (fluid_synth_get_active_voice_count(synth_) > 0) fail("voices sound after a reset");
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw DataError("instruments.render", "libfluidsynth: " + what + take_fluid_error());
  }
  void set_int(const char* name, int value) {
    if (fluid_settings_setint(settings_, name, value) != FLUID_OK) fail(fmt::format("no setting {}", name));
  }
  void set_num(const char* name, double value) {
    if (fluid_settings_setnum(settings_, name, value) != FLUID_OK) fail(fmt::format("no setting {}", name));
  }

  fluid_settings_t* settings_ = nullptr;
  fluid_synth_t* synth_ = nullptr;
  int sfont_id_ = FLUID_FAILED;
  fluid_sfont_t* sfont_ = nullptr;
};

// ---------------------------------------------------------------------------------------
// Clips

struct ClipPlan {
  std::vector<int> classes;  // indices into the selected classes, ascending
  int split = 0;             // 0 train, 1 valid, 2 test
};

// Each class in exactly per_class clips: clip sizes drawn from [min, max]; each clip's
// classes drawn without replacement, weighted by how many clips each class still needs (so
// the counts run out together); near the end a clip may get fewer classes than min.
std::vector<ClipPlan> plan_clips(const InstrumentsOptions& o, int classes) {
  Rng r = datasets::random_stream(o.seed, "instruments:plan");
  std::vector<int64_t> remaining(static_cast<size_t>(classes), o.per_class);
  int64_t left = static_cast<int64_t>(classes) * o.per_class;
  std::vector<ClipPlan> plan;
  while (left > 0) {
    const int want = o.min_instruments + static_cast<int>(r.below(static_cast<uint64_t>(o.max_instruments - o.min_instruments + 1)));
    ClipPlan clip;
    for (int k = 0; k < want; ++k) {
      int64_t weight = 0;
      for (int c = 0; c < classes; ++c) {
        if (std::find(clip.classes.begin(), clip.classes.end(), c) == clip.classes.end()) weight += remaining[static_cast<size_t>(c)];
      }
      if (weight == 0) break;
      int64_t x = static_cast<int64_t>(r.below(static_cast<uint64_t>(weight)));
      for (int c = 0; c < classes; ++c) {
        if (std::find(clip.classes.begin(), clip.classes.end(), c) != clip.classes.end()) continue;
        x -= remaining[static_cast<size_t>(c)];
        if (x < 0) {
          clip.classes.push_back(c);
          --remaining[static_cast<size_t>(c)];
          --left;
          break;
        }
      }
    }
    std::sort(clip.classes.begin(), clip.classes.end());
    plan.push_back(std::move(clip));
  }
  // Splits: a seeded shuffle of the clips; the first test_share of it test, the next
  // valid_share validation. At least one clip each once there are 3 clips.
  const auto held_out = [&](double share) {
    if (share <= 0) return size_t{0};
    return std::max(static_cast<size_t>(std::lround(share * static_cast<double>(plan.size()))),
                    plan.size() >= 3 ? size_t{1} : size_t{0});
  };
  std::vector<size_t> order(plan.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  Rng s = datasets::random_stream(o.seed, "instruments:split");
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[s.below(i)]);
  const size_t n_test = held_out(o.test_share), n_valid = held_out(o.valid_share);
  for (size_t i = 0; i < order.size(); ++i) {
    plan[order[i]].split = i < n_test ? 2 : i < n_test + n_valid ? 1 : 0;
  }
  return plan;
}

Harmony make_harmony(Rng& r, double seconds) {
  Harmony h;
  h.tonic = 60 + static_cast<int>(r.below(12)) - 6;
  double x = r.uniform(), acc = 0;
  for (const Mode& m : kModes) {
    h.mode = &m;
    acc += m.weight;
    if (x < acc) break;
  }
  h.beat = 60.0 / r.uniform(70, 150);
  h.beats_per_bar = r.chance(0.2) ? 3 : 4;
  h.beats_per_chord = h.beats_per_bar == 4 && r.chance(0.3) ? 2 : h.beats_per_bar;
  h.start = r.uniform(0.0, 0.3);
  h.end = seconds - 0.1;
  const auto& progression = r.pick(kProgressions);
  const size_t rotation = r.below(progression.size());
  const int slots = static_cast<int>(std::ceil((h.end - h.start) / h.slot_seconds())) + 1;
  for (int s = 0; s < slots; ++s) h.chords.push_back(progression[(rotation + static_cast<size_t>(s)) % progression.size()]);
  return h;
}

struct RenderedClip {
  std::vector<float> samples;
  std::string description;  // key, mode, tempo, parts
};

struct Event {
  int64_t block;
  int on;  // 0: note-off (first within a block), 1: note-on
  int channel, key, velocity;
  bool operator<(const Event& o) const {
    return std::tie(block, on, channel, key) < std::tie(o.block, o.on, o.channel, o.key);
  }
};

// The part's notes as events on the block grid. A note that starts while the same key still
// sounds ends it; notes are at least one block long.
void add_events(const Part& part, int64_t blocks, std::vector<Event>& events) {
  std::vector<Note> notes = part.notes;
  std::stable_sort(notes.begin(), notes.end(), [](const Note& a, const Note& b) { return a.on < b.on; });
  struct Span { int64_t on, off; int key, velocity; };
  std::vector<Span> spans;
  std::map<int, size_t> last;  // key -> index of its latest span
  for (const Note& n : notes) {
    const int64_t on = std::llround(n.on * kRate / kBlock);
    if (on >= blocks || on < 0) continue;
    const int64_t off = std::max(on + 1, static_cast<int64_t>(std::llround(n.off * kRate / kBlock)));
    const auto it = last.find(n.key);
    if (it != last.end()) {
      Span& previous = spans[it->second];
      if (previous.on == on) {  // the same key struck twice at once: keep the louder
        previous.velocity = std::max(previous.velocity, n.velocity);
        previous.off = std::max(previous.off, off);
        continue;
      }
      previous.off = std::min(previous.off, on);
    }
    last[n.key] = spans.size();
    spans.push_back({on, off, n.key, n.velocity});
  }
  for (const Span& s : spans) {
    events.push_back({s.on, 1, part.channel, s.key, s.velocity});
    if (s.off < blocks) events.push_back({s.off, 0, part.channel, s.key, 0});
  }
}

RenderedClip render_clip(Synth& synth, const InstrumentsOptions& o, const std::vector<const Profile*>& classes,
                         const std::vector<int>& kits, const ClipPlan& plan, uint64_t index) {
  Rng r = datasets::random_stream(o.seed, "instruments:clip", index);
  const double seconds = r.uniform(o.min_seconds, o.max_seconds);
  const auto frames = static_cast<int64_t>(std::lround(seconds * kRate));
  const int64_t blocks = (frames + kBlock - 1) / kBlock;
  const Harmony h = make_harmony(r, static_cast<double>(frames) / kRate);

  std::vector<Part> parts;
  int next_channel = 0;
  for (size_t i = 0; i < plan.classes.size(); ++i) {
    Part part;
    part.profile = classes[static_cast<size_t>(plan.classes[i])];
    Rng pr = datasets::random_stream(o.seed, fmt::format("instruments:clip{}:part", index), i);
    part.role = pr.pick(part.profile->roles);
    if (part.role == Role::drums) {
      part.channel = kDrumChannel;
      part.bank = 128;
      part.preset = pr.pick(kits);
    } else {
      if (next_channel == kDrumChannel) ++next_channel;
      part.channel = next_channel++;
      part.preset = part.profile->cls.program;
    }
    switch (part.role) {
      case Role::melody: write_melody(h, part, pr); break;
      case Role::chords: write_chords(h, part, pr); break;
      case Role::arpeggio: write_arpeggio(h, part, pr); break;
      case Role::sustain: write_sustain(h, part, pr); break;
      case Role::bass: write_bass(h, part, pr); break;
      case Role::drums: write_drums(h, part, pr); break;
    }
    parts.push_back(std::move(part));
  }

  // Every part to its own stereo output, in one pass over the events.
  std::vector<Event> events;
  for (const Part& part : parts) {
    synth.select(part.channel, part.bank, part.preset);
    add_events(part, blocks, events);
  }
  std::sort(events.begin(), events.end());
  const int64_t padded = blocks * kBlock;
  std::vector<std::vector<float>> stems(2 * parts.size(), std::vector<float>(static_cast<size_t>(padded), 0.0f));
  const auto render_to = [&](int64_t from, int64_t to) {
    if (to <= from) return;
    float* outputs[2 * kOutputs] = {};
    for (size_t p = 0; p < parts.size(); ++p) {
      outputs[2 * parts[p].channel] = stems[2 * p].data() + from * kBlock;
      outputs[2 * parts[p].channel + 1] = stems[2 * p + 1].data() + from * kBlock;
    }
    synth.render(static_cast<int>((to - from) * kBlock), outputs);
  };
  int64_t done = 0;
  for (const Event& e : events) {
    render_to(done, e.block);
    done = std::max(done, e.block);
    if (e.on) {
      synth.note_on(e.channel, e.key, e.velocity);
    } else {
      synth.note_off(e.channel, e.key);
    }
  }
  render_to(done, blocks);
  synth.silence();

  // Mono stems at a common loudness (+- 6 dB), summed, brought to the clip's peak level.
  std::vector<float> mix(static_cast<size_t>(frames), 0.0f);
  std::vector<std::string> described;
  for (size_t p = 0; p < parts.size(); ++p) {
    std::vector<double> mono(static_cast<size_t>(frames));
    double energy = 0;
    for (size_t i = 0; i < mono.size(); ++i) {
      mono[i] = 0.5 * (double(stems[2 * p][i]) + double(stems[2 * p + 1][i]));
      energy += mono[i] * mono[i];
    }
    const double rms = std::sqrt(energy / static_cast<double>(frames));
    const Profile& prof = *parts[p].profile;
    if (!(rms > 1e-6)) {
      throw DataError("instruments.render",
                      fmt::format("clip {}: {} ({}) stayed silent; the soundfont's preset may be "
                                  "empty; try another soundfont", index, prof.cls.display_name,
                                  role_name(parts[p].role)));
    }
    const double gain_db = r.uniform(-6.0, 0.0);
    const double gain = std::pow(10.0, gain_db / 20.0) / rms;
    for (size_t i = 0; i < mix.size(); ++i) mix[i] += static_cast<float>(mono[i] * gain);
    described.push_back(fmt::format("{} ({}{}{}, {:+.1f} dB)", prof.cls.key, role_name(parts[p].role),
                                    parts[p].detail.empty() ? "" : ": ", parts[p].detail, gain_db));
  }
  float peak = 0;
  for (float v : mix) peak = std::max(peak, std::fabs(v));
  const double level = r.uniform(o.level_min_dbfs, o.level_max_dbfs);
  const double scale = peak > 0 ? std::pow(10.0, level / 20.0) / peak : 0.0;
  const auto fade = static_cast<int64_t>(kRate / 100);  // 10 ms: the cut at the end does not click
  for (int64_t i = 0; i < frames; ++i) {
    const double ramp = i >= frames - fade ? static_cast<double>(frames - 1 - i) / fade : 1.0;
    mix[static_cast<size_t>(i)] = static_cast<float>(mix[static_cast<size_t>(i)] * scale * ramp);
  }
  RenderedClip out;
  out.samples = std::move(mix);
  out.description = fmt::format("{} {}, {:.0f} bpm, {}/4, {:.2f} s: {}", kPitchNames[modulo(h.tonic, 12)],
                                h.mode->name, 60.0 / h.beat, h.beats_per_bar,
                                static_cast<double>(frames) / kRate, fmt::join(described, "; "));
  return out;
}

std::vector<const Profile*> selected_classes(const InstrumentsOptions& o) {
  std::vector<const Profile*> out;
  if (o.classes.empty()) {
    for (const auto& p : profiles()) out.push_back(&p);
    return out;
  }
  std::vector<std::string> keys;
  for (const auto& p : profiles()) keys.push_back(p.cls.key);
  for (const auto& key : o.classes) {
    const auto it = std::find_if(profiles().begin(), profiles().end(),
                                 [&](const Profile& p) { return p.cls.key == key; });
    if (it == profiles().end()) {
      throw ConfigError("instruments.options",
                        fmt::format("instruments generator: unknown class '{}'; available: {}", key,
                                    fmt::join(keys, ", ")));
    }
    if (std::find(out.begin(), out.end(), &*it) != out.end()) {
      throw ConfigError("instruments.options",
                        fmt::format("instruments generator: class '{}' is given twice", key));
    }
    out.push_back(&*it);
  }
  return out;
}

void check_options(const InstrumentsOptions& o, size_t classes) {
  const auto bad = [](const std::string& what) {
    throw ConfigError("instruments.options", "instruments generator: " + what);
  };
  if (o.per_class < 1 || o.per_class > 100000) {
    bad(fmt::format("per_class is {}; give 1 to 100000 clips per instrument", o.per_class));
  }
  if (o.min_instruments < 1 || o.max_instruments > 8 || o.min_instruments > o.max_instruments) {
    bad(fmt::format("instruments per clip {}..{}: need 1 <= min_instruments <= max_instruments <= 8",
                    o.min_instruments, o.max_instruments));
  }
  if (static_cast<size_t>(o.min_instruments) > classes) {
    bad(fmt::format("min_instruments is {} but only {} classes are selected", o.min_instruments, classes));
  }
  if (!(o.min_seconds >= 0.5 && o.min_seconds <= o.max_seconds && o.max_seconds <= 60)) {
    bad(fmt::format("clip length {}..{} s: need 0.5 <= min_seconds <= max_seconds <= 60",
                    o.min_seconds, o.max_seconds));
  }
  if (o.valid_share < 0 || o.test_share < 0 || o.valid_share + o.test_share >= 0.9) {
    bad(fmt::format("valid_share {} and test_share {} must be >= 0 and sum below 0.9",
                    o.valid_share, o.test_share));
  }
  if (!(o.level_min_dbfs <= o.level_max_dbfs && o.level_max_dbfs <= -0.1)) {
    bad("need level_min_dbfs <= level_max_dbfs <= -0.1");
  }
}

}  // namespace

const std::vector<InstrumentClass>& instrument_classes() {
  static const std::vector<InstrumentClass> classes = [] {
    std::vector<InstrumentClass> out;
    for (const auto& p : profiles()) out.push_back(p.cls);
    return out;
  }();
  return classes;
}

std::string default_soundfont() { return PATCHBAY_DEFAULT_SOUNDFONT; }

InstrumentsSummary generate_instruments(const InstrumentsOptions& o, const fs::path& out_dir) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<const Profile*> classes = selected_classes(o);
  check_options(o, classes.size());
  const std::string soundfont = o.soundfont.empty() ? default_soundfont() : o.soundfont;

  Synth synth(soundfont);
  for (const Profile* p : classes) {
    if (p->cls.program >= 0 && !synth.has_preset(0, p->cls.program)) {
      throw DataError("instruments.soundfont",
                      fmt::format("the soundfont '{}' has no General MIDI program {} ({}); use a "
                                  "General MIDI soundfont such as fluid-soundfont-gm's",
                                  soundfont, p->cls.program, p->cls.display_name));
    }
  }
  std::vector<int> kits;
  for (int kit : kKits) {
    if (synth.has_preset(128, kit)) kits.push_back(kit);
  }
  const bool drums = std::any_of(classes.begin(), classes.end(), [](const Profile* p) { return p->cls.program < 0; });
  if (drums && kits.empty()) {
    throw DataError("instruments.soundfont",
                    fmt::format("the soundfont '{}' has no drum kit (bank 128); use a General MIDI "
                                "soundfont such as fluid-soundfont-gm's", soundfont));
  }
  // A reset selects program 0 on every channel and kit 0 on channel 10: kept loaded too.
  if (synth.has_preset(0, 0)) synth.pin(0, 0);
  if (synth.has_preset(128, 0)) synth.pin(128, 0);
  for (const Profile* p : classes) {
    if (p->cls.program >= 0) synth.pin(0, p->cls.program);
  }
  if (drums) {
    for (int kit : kits) synth.pin(128, kit);
  }
  InstrumentsSummary summary;
  summary.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  summary.soundfont = soundfont;
  summary.fluidsynth_version = fluid_version_str();
  summary.classes = static_cast<int64_t>(classes.size());

  datasets::prepare_generator_out_dir(out_dir, o.overwrite, kGenerator, kReadmeFirstLine);
  fs::create_directories(out_dir / "audio");

  const std::vector<ClipPlan> plan = plan_clips(o, static_cast<int>(classes.size()));
  nlohmann::ordered_json lists[3];
  for (auto& l : lists) l = {{"data", nlohmann::ordered_json::array()}};
  std::ostringstream clips_txt;
  std::string folds_csv = "path,labels,fold\n";
  std::vector<int64_t> dealt(classes.size(), 0);  // clips dealt into folds, per first class
  for (size_t i = 0; i < plan.size(); ++i) {
    const RenderedClip clip = render_clip(synth, o, classes, kits, plan[i], i);
    const std::string rel = fmt::format("audio/clip{:06d}.wav", i);
    datasets::write_wav16(out_dir / rel, clip.samples, kRate, kGenerator);
    std::vector<std::string> mids;
    for (int c : plan[i].classes) mids.push_back(classes[static_cast<size_t>(c)]->cls.mid);
    lists[plan[i].split]["data"].push_back({{"wav", rel}, {"labels", fmt::format("{}", fmt::join(mids, ","))}});
    std::vector<std::string> keys;
    for (int c : plan[i].classes) keys.push_back(classes[static_cast<size_t>(c)]->cls.key);
    const int64_t fold = dealt[static_cast<size_t>(plan[i].classes.front())]++ % kFolds + 1;
    folds_csv += fmt::format("{},{},{}\n", rel, fmt::join(keys, ";"), fold);
    clips_txt << fmt::format("clip{:06d} [{}] {}\n", i, plan[i].split == 0 ? "train" : plan[i].split == 1 ? "valid" : "test",
                             clip.description);
    summary.audio_seconds += static_cast<double>(clip.samples.size()) / kRate;
    (plan[i].split == 0 ? summary.train : plan[i].split == 1 ? summary.valid : summary.test) += 1;
    if (o.progress) o.progress(static_cast<int64_t>(i + 1), static_cast<int64_t>(plan.size()));
  }
  const char* names[3] = {"train.json", "valid.json", "test.json"};
  for (int s = 0; s < 3; ++s) datasets::write_text_file(out_dir / names[s], lists[s].dump(1) + "\n", kGenerator);

  std::string csv = "index,mid,display_name\n";
  for (size_t c = 0; c < classes.size(); ++c) {
    csv += fmt::format("{},{},\"{}\"\n", c, classes[c]->cls.mid, classes[c]->cls.display_name);
  }
  datasets::write_text_file(out_dir / "class_labels_indices.csv", csv, kGenerator);
  datasets::write_text_file(out_dir / "clips.txt", clips_txt.str(), kGenerator);
  datasets::write_text_file(out_dir / "folds.csv", folds_csv, kGenerator);

  std::vector<std::string> class_lines;
  for (const Profile* p : classes) {
    std::vector<std::string> roles;
    for (Role r : p->roles) roles.push_back(role_name(r));
    class_lines.push_back(fmt::format("  {:<18} {:<10} {:<24} {} (soundfont: {})", p->cls.key, p->cls.mid,
                                      p->cls.display_name, fmt::join(roles, ", "),
                                      p->cls.program < 0 ? "kits " + fmt::format("{}", fmt::join(kits, ","))
                                                         : synth.preset_name(0, p->cls.program)));
  }
  std::ostringstream readme;
  readme << kReadmeFirstLine << " " << kInstrumentsGeneratorVersion << " (patchbay data instruments)\n\n"
         << "A synthetic multi-label instrument dataset in AudioSet's layout as AST keeps it:\n"
            "audio/<id>.wav (16 kHz 16-bit mono), train.json / valid.json / test.json\n"
            "({\"data\": [{\"wav\": \"audio/<id>.wav\", \"labels\": \"/gm/p040,/gm/drums\"}]}, wav "
            "paths relative to\nthe JSON file), class_labels_indices.csv (index,mid,display_name). "
            "Read it with\n  [dataset] plugin = \"audioset\"  train_json = \"DIR/train.json\"  "
            "valid_json = \"DIR/valid.json\"\n            test_json = \"DIR/test.json\"  labels_csv = "
            "\"DIR/class_labels_indices.csv\"\n"
            "folds.csv (path,labels,fold; 5 folds) reads it for cross-validation with\n"
            "  [dataset] plugin = \"folder\"  manifest = \"DIR/folds.csv\"  fold = 1\n\n"
         << "Each clip is a short piece of music in one key, mode, tempo and meter with "
         << o.min_instruments << "-" << o.max_instruments
         << " instruments,\neach playing a role (melody, chords, arpeggio, sustained notes, bass "
            "line, drum pattern) with\nrandom velocities; label = the set of instruments. Each "
            "instrument's part is rendered on its\nown and scaled to a common RMS +- 6 dB before "
            "mixing; the mix peaks at U(level_dbfs). clips.txt\ndescribes every clip.\n\n"
         << "Rendering: libfluidsynth " << summary.fluidsynth_version << ", soundfont " << soundfont
         << ",\nreverb and chorus off, events on the 64-sample block grid.\n\n"
         << "Classes (key, mid, name, roles, preset):\n" << fmt::format("{}", fmt::join(class_lines, "\n"))
         << "\n\nOptions:\n  seed = " << o.seed << "\n  per_class = " << o.per_class
         << "\n  classes = " << fmt::format("{}", fmt::join(o.classes, ",")) << (o.classes.empty() ? "(all)" : "")
         << "\n  instruments per clip = [" << o.min_instruments << ", " << o.max_instruments
         << "]\n  seconds = [" << o.min_seconds << ", " << o.max_seconds << "]\n  valid_share = "
         << o.valid_share << "\n  test_share = " << o.test_share << "\n  level_dbfs = ["
         << o.level_min_dbfs << ", " << o.level_max_dbfs << "]\n\n"
         << "Clips: train " << summary.train << ", validation " << summary.valid << ", test "
         << summary.test << fmt::format(" ({:.0f} s of audio)\n", summary.audio_seconds);
  datasets::write_text_file(out_dir / "README.txt", readme.str(), kGenerator);

  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace patchbay
