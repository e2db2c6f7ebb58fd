// The keywords generator (contract in keywords.hpp). Signal chain per clip (docs/datasets.md):
// espeak-ng at 22050 Hz -> 16 kHz (libsoxr) -> [a band-limited channel] -> trim silence
// (-40 dB re. the loudest 10 ms frame) -> [a room] -> peak-normalise -> random offset in 1 s
// (crop a longer word) -> peak level U(level_min, level_max) dBFS -> usually a random second
// of generated noise [or babble] at SNR U(snr_min, snr_max) dB measured on the speech ->
// 16-bit. The bracketed steps are off by default; their draws come from a stream of their
// own, so turning them on leaves every other draw of a clip as it was.
#include "keywords.hpp"

#include "acoustics.hpp"

#include <espeak-ng/speak_lib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "patchbay/error.hpp"
#include "patchbay/hash.hpp"
#include "patchbay/fbank.hpp"
#include "patchbay_datasets/generator.hpp"

namespace patchbay {

namespace {

namespace fs = std::filesystem;

constexpr int64_t kRate = 16000;                 // output sample rate
constexpr int64_t kClip = kRate;                 // exactly 1 s
constexpr int64_t kNoiseSeconds = 10;
constexpr const char* kReadmeFirstLine = "patchbay keywords generator";


using datasets::Rng;
constexpr auto mix = datasets::mix_seed;

Rng stream(uint64_t seed, const std::string& what, uint64_t index = 0) {
  return datasets::random_stream(seed, what, index);
}

enum SplitId { kTrain = 0, kValid = 1, kTest = 2 };

struct Voice {
  std::string name;     // what espeak_SetVoiceByName takes: "en-US+m3", "en-GB-x-rp"
  std::string timbre;   // the variant ("" = the accent's default): the speaker group
  std::string id;       // 8 hex digits, the speaker id in file names
  SplitId split = kTrain;
  double pitch = 50, rate = 170, range = 50;  // personal settings (espeak units)
};

// libespeak-ng keeps hidden synthesis state between calls that no API resets (e.g. the
// pitch-flutter phase in wavegen.c), so the same call gives different samples depending on
// everything synthesised before in the process. Each generation therefore runs libespeak-ng
// in a child process forked from a parent that never touches it: every generation starts
// from the library's pristine state and the bytes depend only on the options.
// Protocol over a socketpair: the child sends its sample rate and the usable accents and
// timbres, then answers each request (voice, word, pitch, rate, range, rand seed) with
// a status and the 16-bit samples.

bool send_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);  // no SIGPIPE if the other side died
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

bool recv_all(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t k = ::recv(fd, p, n, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

bool send_string(int fd, const std::string& s) {
  const uint64_t n = s.size();
  return send_all(fd, &n, sizeof n) && send_all(fd, s.data(), s.size());
}

bool recv_string(int fd, std::string& s) {
  uint64_t n = 0;
  if (!recv_all(fd, &n, sizeof n) || n > (1u << 24)) return false;
  s.resize(n);
  return recv_all(fd, s.data(), n);
}

int collect_samples(short* wav, int count, espeak_EVENT* events) {
  if (wav != nullptr && count > 0) {
    auto* out = static_cast<std::vector<short>*>(events->user_data);
    out->insert(out->end(), wav, wav + count);
  }
  return 0;  // continue synthesis
}

std::string base_name(const char* identifier) {
  const std::string s = identifier ? identifier : "";
  const auto slash = s.rfind('/');
  return slash == std::string::npos ? s : s.substr(slash + 1);
}

// The child: owns libespeak-ng, serves requests until the parent closes the socket.
[[noreturn]] void serve_espeak(int fd) {
  // DONT_EXIT: without it libespeak-ng calls exit() when its data is missing.
  const int32_t rate =
      espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, nullptr, espeakINITIALIZE_DONT_EXIT);
  if (!send_all(fd, &rate, sizeof rate) || rate <= 0) ::_exit(1);
  espeak_SetSynthCallback(collect_samples);
  // Every English accent and every variant ("timbre") that libespeak-ng accepts by name;
  // sorted (std::set) so the list does not depend on the order of its voice folder.
  std::set<std::string> accents, timbres;
  for (const espeak_VOICE** v = espeak_ListVoices(nullptr); v && *v; ++v) {
    // languages: a priority byte, then the voice's own language name.
    const char* lang = (*v)->languages ? (*v)->languages + 1 : "";
    const std::string id = base_name((*v)->identifier);
    if (std::string(lang).rfind("en", 0) == 0 && espeak_SetVoiceByName(id.c_str()) == EE_OK) {
      accents.insert(id);
    }
  }
  espeak_VOICE spec{};
  spec.languages = "variant";
  for (const espeak_VOICE** v = espeak_ListVoices(&spec); v && *v; ++v) {
    const std::string t = base_name((*v)->identifier);
    if (!accents.empty() && espeak_SetVoiceByName((*accents.begin() + "+" + t).c_str()) == EE_OK) {
      timbres.insert(t);
    }
  }
  std::string listing = std::string(espeak_Info(nullptr)) + "\n";
  for (const auto& a : accents) listing += "A" + a + "\n";
  for (const auto& t : timbres) listing += "T" + t + "\n";
  if (!send_string(fd, listing)) ::_exit(1);

  for (std::string request; recv_string(fd, request);) {
    std::istringstream in(request);
    std::string voice, word;
    int pitch = 50, speed = 170, range = 50;
    unsigned noise_seed = 0;
    std::getline(in, voice);
    std::getline(in, word);
    in >> pitch >> speed >> range >> noise_seed;
    std::vector<short> pcm;
    int32_t status = espeak_SetVoiceByName(voice.c_str());
    if (status == EE_OK) {
      // Set everything each time: libespeak-ng keeps parameters between calls.
      espeak_SetParameter(espeakRATE, speed, 0);
      espeak_SetParameter(espeakPITCH, pitch, 0);
      espeak_SetParameter(espeakRANGE, range, 0);
      espeak_SetParameter(espeakVOLUME, 100, 0);
      // Some voices (klatt, whisper) may draw noise from rand(): seed it per clip.
      std::srand(noise_seed);
      status = espeak_Synth(word.c_str(), word.size() + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8,
                            nullptr, &pcm);
    }
    const uint64_t n = pcm.size();
    if (!send_all(fd, &status, sizeof status) || !send_all(fd, &n, sizeof n) ||
        !send_all(fd, pcm.data(), n * sizeof(short))) {
      break;
    }
  }
  ::_exit(0);  // no atexit handlers or static destructors of the parent's state
}

class EspeakWorker {
 public:
  EspeakWorker() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) fail("socketpair failed");
    pid_ = ::fork();
    if (pid_ < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      fail("fork failed");
    }
    if (pid_ == 0) {
      ::close(fds[0]);
      serve_espeak(fds[1]);
    }
    ::close(fds[1]);
    fd_ = fds[0];
    int32_t rate = 0;
    if (!recv_all(fd_, &rate, sizeof rate) || rate <= 0) {
      fail("libespeak-ng could not start (its voice data was not found); install espeak-ng-data "
           "(apt-get install espeak-ng-data) or run ./setup.sh");
    }
    rate_ = rate;
    std::string listing;
    if (!recv_string(fd_, listing)) fail("the libespeak-ng worker stopped while listing voices");
    std::istringstream in(listing);
    std::getline(in, version_);
    for (std::string line; std::getline(in, line);) {
      if (line.size() > 1) (line[0] == 'A' ? accents_ : timbres_).push_back(line.substr(1));
    }
    if (accents_.empty()) {
      fail("libespeak-ng offers no English voice; install espeak-ng-data "
           "(apt-get install espeak-ng-data)");
    }
  }
  EspeakWorker(const EspeakWorker&) = delete;
  EspeakWorker& operator=(const EspeakWorker&) = delete;
  ~EspeakWorker() {
    if (fd_ >= 0) ::close(fd_);  // the child sees EOF and exits
    if (pid_ > 0) {
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {}
    }
  }

  int rate() const { return rate_; }
  const std::string& version() const { return version_; }
  const std::vector<std::string>& accents() const { return accents_; }
  const std::vector<std::string>& timbres() const { return timbres_; }

  // 16-bit samples at rate(); throws DataError naming the voice and word on failure.
  std::vector<short> synthesise(const std::string& voice, const std::string& word, int pitch,
                                int speed, int range, unsigned noise_seed) {
    const std::string request =
        fmt::format("{}\n{}\n{} {} {} {}", voice, word, pitch, speed, range, noise_seed);
    int32_t status = -1;
    uint64_t n = 0;
    std::vector<short> pcm;
    bool ok = send_string(fd_, request) && recv_all(fd_, &status, sizeof status) &&
              recv_all(fd_, &n, sizeof n) && n < (1u << 26);
    if (ok) {
      pcm.resize(n);
      ok = recv_all(fd_, pcm.data(), n * sizeof(short));
    }
    if (!ok) fail(fmt::format("the libespeak-ng worker stopped while saying '{}' with voice '{}'",
                              word, voice));
    if (status != EE_OK || pcm.empty()) {
      fail(fmt::format("libespeak-ng produced no audio for '{}' with voice '{}' (error {}); check "
                       "espeak-ng-data", word, voice, status));
    }
    return pcm;
  }

 private:
  [[noreturn]] static void fail(const std::string& what) {
    throw DataError("keywords.espeak", what);
  }
  int fd_ = -1;
  pid_t pid_ = -1;
  int rate_ = 0;
  std::string version_;
  std::vector<std::string> accents_, timbres_;
};

// Every accent x every timbre ("" = the accent's default), with stable speaker ids.
std::vector<Voice> list_voices(const EspeakWorker& espeak) {
  std::vector<std::string> timbres{""};
  timbres.insert(timbres.end(), espeak.timbres().begin(), espeak.timbres().end());
  std::vector<Voice> voices;
  std::set<std::string> ids;
  for (const auto& a : espeak.accents()) {
    for (const auto& t : timbres) {
      Voice v;
      v.name = t.empty() ? a : a + "+" + t;
      v.timbre = t;
      uint64_t h = stable_hash("keywords-voice:" + v.name);
      v.id = fmt::format("{:08x}", h >> 32);
      while (!ids.insert(v.id).second) v.id = fmt::format("{:08x}", (h = mix(h, 1)) >> 32);
      voices.push_back(std::move(v));
    }
  }
  return voices;
}

// Speaker-disjoint splits by timbre: timbres ranked by a seed-independent hash, the first
// test_share of them test, the next valid_share validation (train-only timbres skipped).
std::map<std::string, SplitId> split_timbres(const std::vector<Voice>& voices,
                                             const KeywordsOptions& o) {
  std::vector<std::pair<uint64_t, std::string>> ranked;
  std::set<std::string> seen;
  for (const auto& v : voices) {
    // split_seed 0 keeps the ranking of every set made before the option existed.
    const std::string key = o.split_seed == 0 ? "keywords-group:" + v.timbre
                                              : fmt::format("keywords-group:{}:{}", o.split_seed, v.timbre);
    if (seen.insert(v.timbre).second) ranked.emplace_back(stable_hash(key), v.timbre);
  }
  std::sort(ranked.begin(), ranked.end());
  const auto groups = static_cast<double>(ranked.size());
  const auto n_test = static_cast<size_t>(std::lround(o.test_share * groups));
  const auto n_valid = static_cast<size_t>(std::lround(o.valid_share * groups));
  std::map<std::string, SplitId> out;
  size_t tests = 0, valids = 0;
  for (const auto& [hash, timbre] : ranked) {
    const bool train_only = std::find(o.train_only_timbres.begin(), o.train_only_timbres.end(),
                                      timbre) != o.train_only_timbres.end();
    SplitId s = kTrain;
    if (!train_only && tests < n_test) {
      s = kTest;
      ++tests;
    } else if (!train_only && valids < n_valid) {
      s = kValid;
      ++valids;
    }
    out[timbre] = s;
  }
  return out;
}

// Clips per word in a held-out split: the share, at least one once a word has 3 clips, so
// small sets still have every split.
int held_out_clips(int per_class, double share) {
  if (share <= 0) return 0;
  return std::max(static_cast<int>(std::lround(share * per_class)), per_class >= 3 ? 1 : 0);
}

std::vector<float> synthesise(EspeakWorker& espeak, const Voice& v, const std::string& word,
                              double pitch, double rate, double range, unsigned noise_seed) {
  const std::vector<short> pcm = espeak.synthesise(
      v.name, word, static_cast<int>(std::lround(pitch)), static_cast<int>(std::lround(rate)),
      static_cast<int>(std::lround(range)), noise_seed);
  std::vector<float> out(pcm.size());
  for (size_t i = 0; i < pcm.size(); ++i) out[i] = static_cast<float>(pcm[i]) / 32768.0f;
  return out;
}

std::vector<float> resample_to_16k(std::vector<float> x, int from_rate, const std::string& what) {
  const at::Tensor in = at::from_blob(x.data(), {static_cast<int64_t>(x.size())}, at::kFloat);
  const at::Tensor out = resample(in, from_rate, kRate, what).contiguous();
  const float* p = out.data_ptr<float>();
  return std::vector<float>(p, p + out.numel());
}

// Keeps the samples from the first to the last 10 ms frame within 40 dB of the loudest one.
std::vector<float> trim_silence(const std::vector<float>& x) {
  constexpr size_t kFrame = kRate / 100;
  const size_t frames = (x.size() + kFrame - 1) / kFrame;
  std::vector<double> energy(frames, 0.0);
  for (size_t i = 0; i < x.size(); ++i) energy[i / kFrame] += double(x[i]) * x[i];
  const double loudest = frames ? *std::max_element(energy.begin(), energy.end()) : 0.0;
  if (loudest <= 0) return {};
  const double floor = loudest * 1e-4;  // -40 dB in energy
  size_t first = 0, last = frames - 1;
  while (energy[first] < floor) ++first;
  while (energy[last] < floor) --last;
  return std::vector<float>(x.begin() + first * kFrame,
                            x.begin() + std::min(x.size(), (last + 1) * kFrame));
}

double rms(const float* x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += double(x[i]) * x[i];
  return n ? std::sqrt(s / n) : 0.0;
}

// The largest |sample|.
float peak_of(const std::vector<float>& x) {
  float peak = 0;
  for (float v : x) peak = std::max(peak, std::fabs(v));
  return peak;
}

// Background noises, 10 s each, peak-normalised to 0.5.
std::vector<std::pair<std::string, std::vector<float>>> make_noises(uint64_t seed) {
  const size_t n = kNoiseSeconds * kRate;
  std::vector<std::pair<std::string, std::vector<float>>> noises;
  for (const char* kind : {"white", "pink", "brown"}) {
    Rng rng = stream(seed, std::string("noise:") + kind);
    std::vector<float> x(n);
    double b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0, b6 = 0, brown = 0;
    for (size_t i = 0; i < n; ++i) {
      const double w = rng.gaussian();
      double y = w;
      if (kind[0] == 'p') {
        // Paul Kellet's pink filter: -3 dB / octave within 0.05 dB above ~10 Hz.
        b0 = 0.99886 * b0 + w * 0.0555179;
        b1 = 0.99332 * b1 + w * 0.0750759;
        b2 = 0.96900 * b2 + w * 0.1538520;
        b3 = 0.86650 * b3 + w * 0.3104856;
        b4 = 0.55000 * b4 + w * 0.5329522;
        b5 = -0.7616 * b5 - w * 0.0168980;
        y = b0 + b1 + b2 + b3 + b4 + b5 + b6 + w * 0.5362;
        b6 = w * 0.115926;
      } else if (kind[0] == 'b') {
        // A leaky integrator: -6 dB / octave, with the leak keeping it from drifting off.
        brown = 0.998 * brown + 0.05 * w;
        y = brown;
      }
      x[i] = static_cast<float>(y);
    }
    const float peak = peak_of(x);
    for (float& v : x) v *= 0.5f / peak;
    noises.emplace_back(kind, std::move(x));
  }
  return noises;
}

// One word's recording, resampled to 16 kHz: [a band-limited channel] -> trim the silence
// -> [a room]. Empty when the word is silent. `r` is the clip's recording stream.
std::vector<float> record(std::vector<float> speech, const KeywordsOptions& o, Rng& r) {
  if (r.chance(o.channel_probability)) {
    const double high_pass = r.uniform(80.0, 400.0);  // one draw per statement: a fixed order
    const double low_pass = r.uniform(2800.0, 7500.0);
    acoustics::band_limit(speech, kRate, high_pass, low_pass);
  }
  speech = trim_silence(speech);
  if (!speech.empty() && r.chance(o.reverb_probability)) {
    const double rt60 = r.uniform(0.15, 0.8);
    const double predelay = r.uniform(0.0, 0.02);
    const double drr_db = r.uniform(-2.0, 10.0);
    speech = acoustics::convolve(speech, acoustics::room_response(r, kRate, rt60, predelay, drr_db));
  }
  return speech;
}

// Babble: talkers saying common words that are not keywords (the generator's own words are
// left out too), so babble never holds a label.
const std::vector<std::string>& babble_words() {
  static const std::vector<std::string> words = {
      "the", "morning", "water", "people", "because", "little", "number", "between", "family", "picture",
      "question", "another", "children", "evening", "garden", "history", "important", "kitchen", "letter",
      "market", "minute", "paper", "river", "summer", "table", "window", "yellow", "together", "without",
      "doctor", "island", "money", "orange", "pencil", "station", "weather"};
  return words;
}

constexpr int kBabbleTracks = 3, kBabbleTalkers = 4;
constexpr int64_t kBabbleSeconds = 4;
constexpr double kBabbleOverFloorDb = 15.0;  // babble's level above the noise under it

// A split's babble: kBabbleTracks tracks of kBabbleSeconds, each kBabbleTalkers voices of
// that split talking at once (a word every ~0.5 s at its own level), peak-normalised to 0.5
// as the generated noises are.
std::vector<std::vector<float>> make_babble(EspeakWorker& espeak, const std::vector<const Voice*>& pool,
                                            const KeywordsOptions& o, SplitId split) {
  std::vector<std::vector<float>> tracks;
  if (pool.empty()) return tracks;
  std::vector<std::string> words;
  for (const auto& w : babble_words()) {
    if (std::find(o.words.begin(), o.words.end(), w) == o.words.end()) words.push_back(w);
  }
  const auto len = static_cast<size_t>(kBabbleSeconds * kRate);
  for (int t = 0; t < kBabbleTracks; ++t) {
    std::vector<float> track(len, 0.0f);
    for (int k = 0; k < kBabbleTalkers; ++k) {
      Rng r = stream(o.seed, fmt::format("babble:{}:{}", static_cast<int>(split), t), static_cast<uint64_t>(k));
      const Voice& v = *pool[r.below(pool.size())];
      auto at = static_cast<size_t>(r.uniform(0.0, 0.5) * kRate);
      while (at < len) {
        const std::string& word = r.pick(words);
        const auto espeak_noise = static_cast<unsigned>(r.below(1ULL << 31));
        const std::vector<float> x = trim_silence(resample_to_16k(
            synthesise(espeak, v, word, v.pitch, v.rate, v.range, espeak_noise), espeak.rate(), "babble"));
        const float peak = peak_of(x);
        const double gain = peak > 0 ? r.uniform(0.3, 1.0) / peak : 0.0;
        for (size_t i = 0; i < x.size() && at + i < len; ++i) track[at + i] += static_cast<float>(x[i] * gain);
        at += x.size() + static_cast<size_t>(r.uniform(0.05, 0.3) * kRate);
      }
    }
    const float peak = peak_of(track);
    if (peak > 0) {
      for (float& s : track) s *= 0.5f / peak;
    }
    tracks.push_back(std::move(track));
  }
  return tracks;
}

// The recording-realism options in README.txt; nothing when all are off, so such a set's
// README is the one earlier versions wrote.
std::string realism_text(const KeywordsOptions& o) {
  if (!o.realism_on()) return "";
  return fmt::format("  split_seed = {} (0: the ranking above; else by FNV-1a(\"keywords-group:<split_seed>:\" + timbre))\n"
                     "  channel_probability = {} (high-pass U(80, 400) Hz, low-pass U(2.8, 7.5) kHz)\n"
                     "  reverb_probability = {} (RT60 U(0.15, 0.8) s, pre-delay U(0, 20) ms, DRR U(-2, 10) dB)\n"
                     "  babble_share = {} (of the noisy clips; {} talkers of the clip's split, {} dB over the noise)\n",
                     o.split_seed, o.channel_probability, o.reverb_probability, o.babble_share, kBabbleTalkers,
                     kBabbleOverFloorDb);
}

void write_wav(const fs::path& file, const std::vector<float>& x) {
  datasets::write_wav16(file, x, kRate, "keywords");
}

void write_text(const fs::path& file, const std::string& text) {
  datasets::write_text_file(file, text, "keywords");
}

void check_options(const KeywordsOptions& o) {
  const auto bad = [](const std::string& what) {
    throw ConfigError("keywords.options", "keywords generator: " + what);
  };
  if (o.per_class < 1 || o.per_class > 100000) {
    bad(fmt::format("per_class is {}; give 1 to 100000 clips per word", o.per_class));
  }
  if (o.words.empty()) bad("no words; give at least one (e.g. yes,no)");
  std::set<std::string> seen;
  for (const auto& w : o.words) {
    const bool ok_chars = !w.empty() && std::all_of(w.begin(), w.end(), [](unsigned char c) {
      return std::isalnum(c) || c == '-' || c == '\'';
    });
    if (!ok_chars) {
      bad(fmt::format("word '{}' is not a plain word; use letters, digits, '-' or '''", w));
    }
    if (!seen.insert(w).second) bad(fmt::format("word '{}' is given twice", w));
  }
  if (o.valid_share < 0 || o.test_share < 0 || o.valid_share + o.test_share >= 0.9) {
    bad(fmt::format("valid_share {} and test_share {} must be >= 0 and sum below 0.9",
                    o.valid_share, o.test_share));
  }
  if (!(o.noise_probability >= 0 && o.noise_probability <= 1)) {
    bad("noise_probability must be in [0, 1]");
  }
  if (!(o.snr_min_db <= o.snr_max_db)) bad("snr_min_db must not exceed snr_max_db");
  for (const auto& [name, p] : {std::pair<const char*, double>{"channel_probability", o.channel_probability},
                                {"reverb_probability", o.reverb_probability}, {"babble_share", o.babble_share}}) {
    if (!(p >= 0 && p <= 1)) bad(fmt::format("{} is {}; give a share in [0, 1]", name, p));
  }
  if (!(o.level_min_dbfs <= o.level_max_dbfs && o.level_max_dbfs <= 0)) {
    bad("need level_min_dbfs <= level_max_dbfs <= 0");
  }
}

void prepare_out_dir(const fs::path& out, bool overwrite) {
  datasets::prepare_generator_out_dir(out, overwrite, "keywords", kReadmeFirstLine);
}

}  // namespace

const std::vector<std::string>& speech_commands_v2_words() {
  static const std::vector<std::string> words = {
      "backward", "bed",   "bird",  "cat",  "dog",    "down",  "eight", "five", "follow",
      "forward",  "four",  "go",    "happy", "house", "learn", "left",  "marvin", "nine",
      "no",       "off",   "on",    "one",  "right",  "seven", "sheila", "six",  "stop",
      "three",    "tree",  "two",   "up",   "visual", "wow",   "yes",   "zero"};
  return words;
}

KeywordsSummary generate_keywords(const KeywordsOptions& o, const fs::path& out_dir) {
  check_options(o);
  const auto start = std::chrono::steady_clock::now();
  EspeakWorker espeak;
  std::vector<Voice> voices = list_voices(espeak);
  const auto timbre_split = split_timbres(voices, o);
  std::vector<const Voice*> pools[3];
  for (auto& v : voices) {
    v.split = timbre_split.at(v.timbre);
    Rng r = stream(o.seed, "voice:" + v.name);
    v.pitch = r.uniform(25, 75);
    v.rate = r.uniform(120, 210);
    v.range = r.uniform(30, 80);
  }
  for (const auto& v : voices) pools[v.split].push_back(&v);

  prepare_out_dir(out_dir, o.overwrite);
  const auto noises = make_noises(o.seed);
  fs::create_directories(out_dir / "_background_noise_");
  for (const auto& [kind, x] : noises) {
    write_wav(out_dir / "_background_noise_" / (kind + "_noise.wav"), x);
  }

  std::vector<std::vector<float>> babble_tracks[3];
  if (o.babble_share > 0) {
    for (int s = 0; s < 3; ++s) babble_tracks[s] = make_babble(espeak, pools[s], o, static_cast<SplitId>(s));
  }

  const int n_test = pools[kTest].empty() ? 0 : held_out_clips(o.per_class, o.test_share);
  const int n_valid = pools[kValid].empty() ? 0 : held_out_clips(o.per_class, o.valid_share);
  std::vector<std::string> lists[3];
  std::set<std::string> used_voices[3], used_groups[3];
  const int64_t total = static_cast<int64_t>(o.words.size()) * o.per_class;
  int64_t done = 0;
  for (const auto& word : o.words) {
    fs::create_directories(out_dir / word);
    std::map<std::string, int> takes;  // speaker id -> clips of this word so far
    for (int n = 0; n < o.per_class; ++n) {
      Rng rng = stream(o.seed, "clip:" + word, static_cast<uint64_t>(n));
      const SplitId split = n < n_test ? kTest : n < n_test + n_valid ? kValid : kTrain;
      const auto& pool = pools[split];
      const Voice& v = *pool[rng.below(pool.size())];
      const double pitch = std::clamp(v.pitch + rng.uniform(-6, 6), 0.0, 99.0);
      const double rate = v.rate * rng.uniform(0.9, 1.1);
      const double range = std::clamp(v.range + rng.uniform(-10, 10), 0.0, 99.0);
      const auto espeak_noise = static_cast<unsigned>(rng.below(1ULL << 31));

      const std::string what = fmt::format("'{}' by {}", word, v.name);
      Rng recording = stream(o.seed, "recording:" + word, static_cast<uint64_t>(n));
      std::vector<float> speech = record(
          resample_to_16k(synthesise(espeak, v, word, pitch, rate, range, espeak_noise), espeak.rate(), what),
          o, recording);
      if (speech.empty()) {
        throw DataError("keywords.espeak", fmt::format("libespeak-ng produced silence for {}; "
                                                       "check espeak-ng-data", what));
      }
      if (static_cast<int64_t>(speech.size()) > kClip) speech.resize(kClip);  // rare: crop
      const float peak = peak_of(speech);
      const double gain = std::pow(10.0, rng.uniform(o.level_min_dbfs, o.level_max_dbfs) / 20.0) / peak;
      const auto offset = static_cast<size_t>(rng.below(kClip - speech.size() + 1));
      std::vector<float> clip(kClip, 0.0f);
      for (size_t i = 0; i < speech.size(); ++i) clip[offset + i] = static_cast<float>(speech[i] * gain);

      if (rng.uniform() < o.noise_probability) {
        const auto& noise = noises[rng.below(noises.size())].second;
        const auto at = static_cast<size_t>(rng.below(noise.size() - kClip + 1));
        const double snr = rng.uniform(o.snr_min_db, o.snr_max_db);
        std::vector<float> background(noise.begin() + static_cast<std::ptrdiff_t>(at),
                                      noise.begin() + static_cast<std::ptrdiff_t>(at + kClip));
        if (!babble_tracks[split].empty() && recording.chance(o.babble_share)) {
          // Babble over the noise, the noise kBabbleOverFloorDb below it: talkers pause, a
          // recording's floor does not.
          const auto& track = recording.pick(babble_tracks[split]);
          const auto from = static_cast<size_t>(recording.below(track.size() - kClip + 1));
          const double floor_rms = rms(background.data(), kClip), babble_rms = rms(track.data() + from, kClip);
          const double kb = babble_rms > 0 ? floor_rms * std::pow(10.0, kBabbleOverFloorDb / 20.0) / babble_rms : 0;
          for (int64_t i = 0; i < kClip; ++i) background[i] += static_cast<float>(track[from + i] * kb);
        }
        const double speech_rms = rms(clip.data() + offset, speech.size());
        const double noise_rms = rms(background.data(), kClip);
        const double k = noise_rms > 0 ? speech_rms / (noise_rms * std::pow(10.0, snr / 20.0)) : 0;
        for (int64_t i = 0; i < kClip; ++i) clip[i] += static_cast<float>(background[i] * k);
      }
      for (float& s : clip) s = std::clamp(s, -1.0f, 32767.0f / 32768.0f);

      const std::string rel = fmt::format("{}/{}_nohash_{}.wav", word, v.id, takes[v.id]++);
      write_wav(out_dir / rel, clip);
      lists[split].push_back(rel);
      used_voices[split].insert(v.name);
      used_groups[split].insert(v.timbre);
      ++done;
      if (o.progress) o.progress(done, total);
    }
  }

  for (auto& l : lists) std::sort(l.begin(), l.end());
  const auto joined = [](const std::vector<std::string>& l) {
    std::string s;
    for (const auto& x : l) s += x + "\n";
    return s;
  };
  write_text(out_dir / "validation_list.txt", joined(lists[kValid]));
  write_text(out_dir / "testing_list.txt", joined(lists[kTest]));

  KeywordsSummary summary;
  KeywordsSplitSummary* parts[3] = {&summary.train, &summary.valid, &summary.test};
  for (int s = 0; s < 3; ++s) {
    parts[s]->clips = static_cast<int64_t>(lists[s].size());
    parts[s]->voices = static_cast<int64_t>(used_voices[s].size());
    parts[s]->groups = static_cast<int64_t>(used_groups[s].size());
  }
  summary.voices_available = static_cast<int64_t>(voices.size());

  std::vector<std::string> held_out[3];
  for (const auto& [timbre, s] : timbre_split) held_out[s].push_back(timbre.empty() ? "(default)" : timbre);
  std::ostringstream readme;
  readme << kReadmeFirstLine << " " << kKeywordsGeneratorVersion << " (patchbay data keywords)\n\n"
         << "A synthetic spoken-keyword dataset in the Speech Commands V2 layout: <word>/"
            "<speaker>_nohash_<n>.wav,\n16 kHz 16-bit mono, exactly 1 s; validation_list.txt and "
            "testing_list.txt name the held-out\nclips, every other clip is training; "
            "_background_noise_/ holds 10 s of white, pink and brown noise.\n\n"
         << "Voices: libespeak-ng " << espeak.version() << ", " << voices.size()
         << " voices (English accents x variants), each with a personal\npitch U(25, 75), rate "
            "U(120, 210) wpm and range U(30, 80), jittered per clip (pitch +-6, rate x U(0.9, 1.1),\n"
            "range +-10). Speaker id = 8 hex digits of FNV-1a(\"keywords-voice:\" + voice name).\n"
         << "Splits are speaker-disjoint by timbre (a variant with all its accents is one group), "
            "ranked by\nFNV-1a(\"keywords-group:\" + timbre), independent of the seed.\n"
         << "Kept in training on purpose (train_only_timbres): " << fmt::format("{}", fmt::join(o.train_only_timbres, ", "))
         << "\nValidation timbres: " << fmt::format("{}", fmt::join(held_out[kValid], ", "))
         << "\nTest timbres: " << fmt::format("{}", fmt::join(held_out[kTest], ", ")) << "\n\n"
         << "Options:\n  seed = " << o.seed << "\n  per_class = " << o.per_class
         << "\n  words = " << fmt::format("{}", fmt::join(o.words, ",")) << "\n  valid_share = "
         << o.valid_share << "\n  test_share = " << o.test_share << "\n  noise_probability = "
         << o.noise_probability << "\n  snr_db = [" << o.snr_min_db << ", " << o.snr_max_db
         << "]\n  level_dbfs = [" << o.level_min_dbfs << ", " << o.level_max_dbfs << "]\n"
         << realism_text(o) << "\n"
         << "Clips: train " << summary.train.clips << ", validation " << summary.valid.clips
         << ", test " << summary.test.clips << "\n";
  write_text(out_dir / "README.txt", readme.str());

  summary.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace patchbay
