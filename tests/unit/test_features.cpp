// The feature cache (features.hpp): rows equal the front end's direct output bit for bit, are
// read back instead of recomputed, follow changes of clips and options, survive damaged files,
// concurrent writers and leftovers, and bad clips follow the on_bad_clip policy.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "helpers.hpp"
#include "patchbay/error.hpp"
#include "patchbay/features.hpp"
#include "patchbay_datasets/layout.hpp"

namespace fs = std::filesystem;
using namespace patchbay;

namespace {

// Clips of 0.5 .. 1.5 s (some padded to 128 frames, some cropped), distinct tones.
std::vector<Clip> make_clips(const fs::path& dir, int count, int first = 0) {
  fs::create_directories(dir);
  std::vector<Clip> clips;
  for (int i = first; i < first + count; ++i) {
    Clip c;
    c.id = fmt::format("c{:03d}.wav", i);
    c.path = dir / c.id;
    c.labels = {i % 3};
    datasets::write_tone_wav(c.path, 150.0 + 37.0 * i, 0.5 + 0.1 * (i % 11));
    clips.push_back(c);
  }
  return clips;
}

// What the trainer would get without the cache: read_audio + Fbank + pad_or_crop per clip.
at::Tensor direct(const std::vector<Clip>& clips, const FbankOptions& o) {
  const Fbank fbank(o);
  std::vector<at::Tensor> rows;
  for (const auto& c : clips) rows.push_back(pad_or_crop(fbank.compute(read_audio(c.path, o.sample_rate)), o.target_frames));
  return at::stack(rows);
}

FeatureRequest request(int threads = 2) {
  FeatureRequest r;
  r.threads = threads;
  return r;
}

// Moves a file's modification time, so a rewrite is seen even within one clock tick.
void bump_mtime(const fs::path& p, int seconds) {
  fs::last_write_time(p, fs::last_write_time(p) + std::chrono::seconds(seconds));
}

// Standard error (where log warnings go) captured while the object lives.
class CaptureStderr {
 public:
  CaptureStderr() : file_(std::tmpfile()) {
    std::fflush(stderr);
    saved_ = ::dup(2);
    ::dup2(::fileno(file_), 2);
  }
  ~CaptureStderr() {
    restore();
    std::fclose(file_);
  }
  std::string text() {
    restore();
    std::rewind(file_);
    std::string out;
    char buf[4096];
    for (size_t got; (got = std::fread(buf, 1, sizeof buf, file_)) > 0;) out.append(buf, got);
    return out;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
  }
  std::FILE* file_;
  int saved_ = -1;
};

// What a cache file holds, read with the HDF5 C API as any other reader would.
struct CacheContents {
  std::vector<std::string> keys;
  std::vector<hsize_t> dims;
  long long version = -1;
  std::string options;
};

CacheContents inspect(const fs::path& file) {
  CacheContents c;
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
  H5Aread(a, H5T_NATIVE_LLONG, &c.version);
  H5Aclose(a);
  a = H5Aopen(f, "options", H5P_DEFAULT);
  hid_t t = H5Aget_type(a);
  c.options.assign(H5Tget_size(t), '\0');
  H5Aread(a, t, c.options.data());
  H5Tclose(t);
  H5Aclose(a);
  const hid_t d = H5Dopen2(f, "features", H5P_DEFAULT);
  hid_t s = H5Dget_space(d);
  c.dims.resize(static_cast<size_t>(H5Sget_simple_extent_ndims(s)));
  H5Sget_simple_extent_dims(s, c.dims.data(), nullptr);
  H5Sclose(s);
  const hid_t plist = H5Dget_create_plist(d);
  hsize_t chunk[3] = {0, 0, 0};
  CHECK(H5Pget_chunk(plist, 3, chunk) == 3);
  CHECK(chunk[0] == 1);  // one chunk per clip row
  H5Pclose(plist);
  H5Dclose(d);
  const hid_t k = H5Dopen2(f, "keys", H5P_DEFAULT);
  t = H5Dget_type(k);
  const size_t width = H5Tget_size(t);
  s = H5Dget_space(k);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(s, &n, nullptr);
  std::vector<char> buf(n * width);
  if (n > 0) H5Dread(k, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
  for (hsize_t i = 0; i < n; ++i) c.keys.emplace_back(buf.data() + i * width, strnlen(buf.data() + i * width, width));
  H5Sclose(s);
  H5Tclose(t);
  H5Dclose(k);
  H5Fclose(f);
  return c;
}

std::vector<fs::path> files_under(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string error_id(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.id();
  }
  return "(no error)";
}

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("features: rows equal read_audio + Fbank + pad_or_crop bit for bit, then come from the cache") {
  test::TempDir dir;
  const auto clips = make_clips(dir.path() / "data" / "a", 12);
  FeatureRequest req = request(2);
  std::vector<std::pair<size_t, size_t>> progress;
  req.progress = [&](size_t done, size_t total) { progress.emplace_back(done, total); };

  const FeatureSet first = load_features(clips, req);
  const at::Tensor expected = direct(clips, req.frontend);
  CHECK(first.features.sizes() == at::IntArrayRef({12, 128, 128}));
  CHECK(first.features.is_contiguous());
  CHECK((first.features.scalar_type() == at::kFloat));
  CHECK(at::equal(first.features, expected));
  CHECK(first.computed == 12);
  CHECK(first.from_cache == 0);
  CHECK(first.skipped.empty());
  CHECK(first.clip_index == std::vector<size_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  // Default place: .patchbay-cache in the deepest folder holding every clip.
  CHECK(first.cache_file.parent_path() == dir.path() / "data" / "a" / ".patchbay-cache");
  CHECK(first.cache_file.filename().string().size() == std::string("features-0123456789abcdef.h5").size());
  CHECK(fs::exists(first.cache_file));
  REQUIRE_FALSE(progress.empty());
  CHECK(progress.back() == std::make_pair(size_t{12}, size_t{12}));

  // The layout other tools can read.
  const auto contents = inspect(first.cache_file);
  CHECK(contents.version == 1);
  CHECK(contents.dims == std::vector<hsize_t>{12, 128, 128});
  REQUIRE(contents.keys.size() == 12);
  CHECK(contents.keys[0].rfind(fs::absolute(clips[0].path).string() + "|" +
                                   std::to_string(fs::file_size(clips[0].path)) + "|", 0) == 0);
  CHECK(contents.options.find("num_mel_bins = 128") != std::string::npos);

  for (int threads : {1, 2}) {
    const FeatureSet again = load_features(clips, request(threads));
    CHECK(again.from_cache == 12);
    CHECK(again.computed == 0);
    CHECK(again.cache_file == first.cache_file);
    CHECK(at::equal(again.features, expected));
  }
  // Same clips in another order: rows follow the order asked for.
  std::vector<Clip> reversed(clips.rbegin(), clips.rend());
  const FeatureSet rev = load_features(reversed, request());
  CHECK(rev.from_cache == 12);
  CHECK(at::equal(rev.features, expected.flip(0)));
}

TEST_CASE("features: a rewritten clip is recomputed, exactly that one") {
  test::TempDir dir;
  auto clips = make_clips(dir.path(), 8);
  load_features(clips, request());
  // Same length (same size), other content and a later modification time.
  datasets::write_tone_wav(clips[3].path, 3000.0, 0.5 + 0.1 * 3);
  bump_mtime(clips[3].path, 5);
  const FeatureSet after = load_features(clips, request());
  CHECK(after.computed == 1);
  CHECK(after.from_cache == 7);
  CHECK(at::equal(after.features, direct(clips, FbankOptions{})));
  // The stale row was replaced, not added.
  CHECK(inspect(after.cache_file).keys.size() == 8);
  CHECK(load_features(clips, request()).from_cache == 8);
}

TEST_CASE("features: fbank options choose the cache file, normalisation does not") {
  test::TempDir dir;
  const auto clips = make_clips(dir.path(), 5);
  const FeatureSet base = load_features(clips, request());

  FeatureRequest norm = request();
  norm.frontend.normalize = Normalization::none;
  norm.frontend.norm_mean = 0.0;
  norm.frontend.norm_std = 1.0;
  const FeatureSet same = load_features(clips, norm);
  CHECK(same.cache_file == base.cache_file);
  CHECK(same.from_cache == 5);

  FeatureRequest mels = request();
  mels.frontend.num_mel_bins = 64;
  FeatureRequest frames = request();
  frames.frontend.target_frames = 100;
  FeatureRequest window = request();
  window.frontend.window = FbankWindow::hamming;
  std::set<fs::path> files{base.cache_file};
  for (const auto* r : {&mels, &frames, &window}) {
    const FeatureSet other = load_features(clips, *r);
    CHECK(other.computed == 5);
    CHECK(other.from_cache == 0);
    CHECK(at::equal(other.features, direct(clips, r->frontend)));
    files.insert(other.cache_file);
  }
  CHECK(files.size() == 4);
  CHECK(load_features(clips, mels).features.sizes() == at::IntArrayRef({5, 128, 64}));
  CHECK(load_features(clips, request()).from_cache == 5);  // the first file is still there
}

TEST_CASE("features: a damaged cache file is rebuilt with a warning, never an error") {
  test::TempDir dir;
  const auto clips = make_clips(dir.path(), 6);
  const at::Tensor expected = direct(clips, FbankOptions{});
  const fs::path file = load_features(clips, request()).cache_file;
  const auto size = fs::file_size(file);

  const std::vector<std::pair<std::string, std::function<void()>>> damage = {
      {"truncated", [&] { fs::resize_file(file, size / 2); }},
      {"garbage", [&] { std::ofstream(file, std::ios::trunc) << "this is not an HDF5 file\n"; }},
      {"empty", [&] { std::ofstream(file, std::ios::trunc); }},
      {"bit flips in the rows", [&] {
         // Flip bytes across the data region: the per-row checksums catch them.
         std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
         for (auto at = size / 3; at < size; at += size / 7) {
           f.seekg(static_cast<std::streamoff>(at));
           const char c = static_cast<char>(f.get());
           f.seekp(static_cast<std::streamoff>(at));
           f.put(static_cast<char>(c ^ 0x5a));
         }
       }},
  };
  for (const auto& [what, spoil] : damage) {
    CAPTURE(what);
    REQUIRE(load_features(clips, request()).from_cache == 6);
    spoil();
    CaptureStderr err;
    const FeatureSet rebuilt = load_features(clips, request());
    const std::string log = err.text();
    CHECK(at::equal(rebuilt.features, expected));
    CHECK(rebuilt.computed == 6);
    CHECK(log.find("feature cache '" + file.string() + "' cannot be read") != std::string::npos);
    CHECK(log.find("rebuilding it") != std::string::npos);
    // HDF5's own error stack is not printed.
    CHECK(log.find("HDF5-DIAG") == std::string::npos);
    const FeatureSet again = load_features(clips, request());
    CHECK(again.from_cache == 6);
    CHECK(at::equal(again.features, expected));
  }

  // A cache written for other options under this name (a hash collision) is not used.
  {
    FeatureRequest other = request();
    other.frontend.num_mel_bins = 64;
    const fs::path other_file = load_features(clips, other).cache_file;
    fs::copy_file(other_file, file, fs::copy_options::overwrite_existing);
    CaptureStderr err;
    const FeatureSet rebuilt = load_features(clips, request());
    CHECK(err.text().find("written for other options") != std::string::npos);
    CHECK(rebuilt.computed == 6);
    CHECK(at::equal(rebuilt.features, expected));
  }
}

TEST_CASE("features: on_bad_clip = skip lists bad clips with reasons; error throws the first one") {
  test::TempDir dir;
  auto clips = make_clips(dir.path(), 6);
  const fs::path empty = dir.path() / "empty.wav", text = dir.path() / "notes.wav",
                 tiny = dir.path() / "tiny.wav";
  std::ofstream(empty, std::ios::trunc);
  std::ofstream(text) << "not audio at all, just some text that is long enough to be a header\n";
  datasets::write_tone_wav(tiny, 440.0, 0.01);  // 160 samples: shorter than one frame
  std::vector<Clip> mixed = clips;
  mixed.insert(mixed.begin() + 2, Clip{"empty", empty, {0}});
  mixed.insert(mixed.begin() + 5, Clip{"notes", text, {0}});
  mixed.push_back(Clip{"tiny", tiny, {0}});

  FeatureRequest skip = request();
  skip.skip_bad_clips = true;
  const FeatureSet got = load_features(mixed, skip);
  CHECK(got.features.size(0) == 6);
  CHECK(at::equal(got.features, direct(clips, FbankOptions{})));
  CHECK(got.clip_index == std::vector<size_t>{0, 1, 3, 4, 6, 7});
  REQUIRE(got.skipped.size() == 3);
  CHECK(got.skipped[0].path == empty.string());
  CHECK(got.skipped[0].reason.find("the file is empty (0 bytes)") != std::string::npos);
  CHECK(got.skipped[1].path == text.string());
  CHECK(got.skipped[1].reason.find("not a readable audio file") != std::string::npos);
  CHECK(got.skipped[2].path == tiny.string());
  CHECK(got.skipped[2].reason.find("shorter than one") != std::string::npos);
  CHECK(got.computed == 6);
  // Bad clips are not cached: the good rows come back, the bad ones are tried (and skipped) again.
  const FeatureSet again = load_features(mixed, skip);
  CHECK(again.from_cache == 6);
  CHECK(again.computed == 0);
  CHECK(again.skipped.size() == 3);

  // Error policy: the first bad clip's DataError, whatever the thread count.
  for (int threads : {1, 2, 3}) {
    CAPTURE(threads);
    FeatureRequest strict = request(threads);
    strict.use_cache = false;
    CHECK(error_id([&] { load_features(mixed, strict); }) == "data.empty");
    std::vector<Clip> unreadable_first = mixed;
    std::swap(unreadable_first[2], unreadable_first[5]);
    CHECK(error_id([&] { load_features(unreadable_first, strict); }) == "data.unreadable");
  }
  try {
    load_features(mixed, request(1));
    FAIL("no error");
  } catch (const DataError& e) {
    CHECK(std::string(e.what()).find(empty.string()) != std::string::npos);
  }

  // The rows computed before the error were saved.
  test::TempDir fresh;
  auto more = make_clips(fresh.path(), 4);
  const fs::path bad = fresh.path() / "bad.wav";
  std::ofstream(bad, std::ios::trunc);
  std::vector<Clip> stop = {more[0], more[1], Clip{"bad", bad, {0}}, more[2], more[3]};
  CHECK(error_id([&] { load_features(stop, request(1)); }) == "data.empty");
  FeatureRequest fresh_skip = request(1);
  fresh_skip.skip_bad_clips = true;
  const FeatureSet resumed = load_features(stop, fresh_skip);
  CHECK(resumed.from_cache == 2);
  CHECK(resumed.computed == 2);
  CHECK(resumed.skipped.size() == 1);

  // A missing file is a bad clip too.
  std::vector<Clip> missing = {more[0], Clip{"gone", fresh.path() / "gone.wav", {0}}};
  CHECK(error_id([&] { load_features(missing, request()); }) == "data.missing");
  CHECK(load_features(missing, fresh_skip).skipped.size() == 1);
}

TEST_CASE("features: use_cache = false computes everything and writes nothing") {
  test::TempDir dir;
  const auto clips = make_clips(dir.path(), 5);
  const auto before = files_under(dir.path());
  FeatureRequest req = request();
  req.use_cache = false;
  const FeatureSet got = load_features(clips, req);
  CHECK(got.computed == 5);
  CHECK(got.from_cache == 0);
  CHECK(got.cache_file.empty());
  CHECK(at::equal(got.features, direct(clips, req.frontend)));
  CHECK(files_under(dir.path()) == before);
  CHECK_FALSE(fs::exists(dir.path() / ".patchbay-cache"));
  // Nor does it read an existing cache.
  load_features(clips, request());
  CHECK(load_features(clips, req).computed == 5);
}

TEST_CASE("features: splits share one file without thrashing; rows of deleted clips are dropped") {
  test::TempDir dir;
  const auto all = make_clips(dir.path() / "sc", 10);
  const std::vector<Clip> train(all.begin(), all.begin() + 7), valid(all.begin() + 7, all.end());
  const FeatureSet t = load_features(train, request());
  const FeatureSet v = load_features(valid, request());
  CHECK(t.cache_file == v.cache_file);
  CHECK(inspect(t.cache_file).keys.size() == 10);
  for (int round = 0; round < 2; ++round) {
    CHECK(load_features(train, request()).from_cache == 7);
    CHECK(load_features(valid, request()).from_cache == 3);
  }
  const FeatureSet both = load_features(all, request());
  CHECK(both.from_cache == 10);
  CHECK(at::equal(both.features, direct(all, FbankOptions{})));

  // A training clip deleted and one changed: the next write (here: a changed validation clip)
  // drops both stale rows and keeps the rest.
  fs::remove(train[0].path);
  datasets::write_tone_wav(train[1].path, 2500.0, 0.5 + 0.1 * 1);
  bump_mtime(train[1].path, 5);
  datasets::write_tone_wav(valid[0].path, 2600.0, 0.5 + 0.1 * 7);
  bump_mtime(valid[0].path, 5);
  CHECK(load_features(valid, request()).computed == 1);
  CHECK(inspect(t.cache_file).keys.size() == 8);
  const std::vector<Clip> rest(train.begin() + 2, train.end());
  CHECK(load_features(rest, request()).from_cache == 5);
}

TEST_CASE("features: concurrent writers all succeed and leave a complete file") {
  test::TempDir dir;
  const auto clips = make_clips(dir.path(), 24);
  const at::Tensor expected = direct(clips, FbankOptions{});

  // Two threads, same clips, empty cache: both compute and both replace the file.
  for (int round = 0; round < 2; ++round) {
    std::atomic<int> ready{0};
    FeatureSet results[2];
    std::string errors[2];
    std::vector<std::thread> threads;
    for (int k = 0; k < 2; ++k) {
      threads.emplace_back([&, k] {
        ++ready;
        while (ready.load() < 2) std::this_thread::yield();
        try {
          results[k] = load_features(clips, request(1));
        } catch (const std::exception& e) {
          errors[k] = e.what();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (int k = 0; k < 2; ++k) {
      CHECK(errors[k].empty());
      CHECK(at::equal(results[k].features, expected));
    }
    const FeatureSet after = load_features(clips, request());
    CHECK(after.from_cache == 24);
    CHECK(at::equal(after.features, expected));
    fs::remove_all(dir.path() / ".patchbay-cache");
  }

  // Two processes (fork), the two halves of the clips at once: both succeed, and whatever
  // the file holds afterwards reads back right.
  const std::vector<Clip> half_a(clips.begin(), clips.begin() + 12), half_b(clips.begin() + 12, clips.end());
  std::fflush(nullptr);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::alarm(120);  // never hang the suite
    int code = 1;
    try {
      const FeatureSet got = load_features(half_b, request(1));
      code = at::equal(got.features, expected.narrow(0, 12, 12)) ? 0 : 2;
    } catch (...) {
      code = 3;
    }
    ::_exit(code);
  }
  const FeatureSet mine = load_features(half_a, request(1));
  int status = -1;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(at::equal(mine.features, expected.narrow(0, 0, 12)));
  const FeatureSet merged = load_features(clips, request());
  CHECK(merged.from_cache + merged.computed == 24);
  CHECK(merged.from_cache >= 12);
  CHECK(at::equal(merged.features, expected));
  CHECK(load_features(clips, request()).from_cache == 24);
}

TEST_CASE("features: leftover temporary files do not break anything; stale ones are removed") {
  test::TempDir dir;
  const auto clips = make_clips(dir.path(), 4);
  const fs::path file = load_features(clips, request()).cache_file;
  const fs::path fresh = file.parent_path() / ("." + file.filename().string() + ".tmp-999999-0");
  const fs::path stale = file.parent_path() / ("." + file.filename().string() + ".tmp-999998-0");
  fs::copy_file(file, fresh);  // as if a writer were still busy
  fs::resize_file(fresh, fs::file_size(fresh) / 3);
  std::ofstream(stale) << "half a file";
  fs::last_write_time(stale, fs::last_write_time(stale) - std::chrono::hours(2));
  const fs::path unrelated = file.parent_path() / "notes.txt";
  std::ofstream(unrelated) << "keep me";
  fs::last_write_time(unrelated, fs::last_write_time(unrelated) - std::chrono::hours(2));

  CHECK(load_features(clips, request()).from_cache == 4);
  // A write (a new clip) cleans up the stale temporary, and only that one.
  auto more = clips;
  more.push_back(make_clips(dir.path(), 1, 50).front());
  const FeatureSet got = load_features(more, request());
  CHECK(got.computed == 1);
  CHECK(got.from_cache == 4);
  CHECK(fs::exists(fresh));
  CHECK_FALSE(fs::exists(stale));
  CHECK(fs::exists(unrelated));
  CHECK(at::equal(got.features, direct(more, FbankOptions{})));
  // No temporary of its own is left behind.
  size_t temps = 0;
  for (const auto& e : fs::directory_iterator(file.parent_path())) {
    temps += e.path().filename().string().find(".h5.tmp-") != std::string::npos;  // `fresh`
  }
  CHECK(temps == 1);
}

TEST_CASE("features: cache folders") {
  test::TempDir dir;
  const auto a = make_clips(dir.path() / "root" / "x", 2);
  const auto b = make_clips(dir.path() / "root" / "y" / "z", 2, 10);
  std::vector<Clip> both = a;
  both.insert(both.end(), b.begin(), b.end());
  CHECK(load_features(both, request()).cache_file.parent_path() == dir.path() / "root" / ".patchbay-cache");

  // An explicit folder; the file name still depends on the clips' folder.
  FeatureRequest req = request();
  req.cache_dir = dir.path() / "cache";
  const FeatureSet in_a = load_features(a, req);
  const FeatureSet in_b = load_features(b, req);
  CHECK(in_a.cache_file.parent_path() == dir.path() / "cache");
  CHECK(in_a.cache_file != in_b.cache_file);
  CHECK(load_features(a, req).from_cache == 2);

  // A folder that cannot be created: a clear error naming it.
  req.cache_dir = a[0].path / "sub";  // below a file
  try {
    load_features(a, req);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.id() == "cache.unwritable");
    CHECK(std::string(e.what()).find(req.cache_dir.string()) != std::string::npos);
  }
  req.use_cache = false;  // ... unless the cache is off
  CHECK(load_features(a, req).computed == 2);

  // No clips: an empty [0, T, F] tensor and no file.
  const FeatureSet none = load_features({}, request());
  CHECK(none.features.sizes() == at::IntArrayRef({0, 128, 128}));
  CHECK(none.cache_file.empty());
}

TEST_CASE("features: feature_stats is the mean and standard deviation of every value") {
  const at::Tensor x = at::arange(24, at::kFloat).reshape({2, 3, 4}) * 0.5 - 3.0;
  const FeatureStats s = feature_stats(x);
  double mean = 0, var = 0;
  for (int i = 0; i < 24; ++i) mean += i * 0.5 - 3.0;
  mean /= 24;
  for (int i = 0; i < 24; ++i) var += (i * 0.5 - 3.0 - mean) * (i * 0.5 - 3.0 - mean);
  CHECK(s.mean == doctest::Approx(mean).epsilon(1e-15));
  CHECK(s.std == doctest::Approx(std::sqrt(var / 24)).epsilon(1e-15));
  // Large offsets: double accumulation keeps the small spread.
  const at::Tensor big = at::full({1000, 10, 10}, 1000.0f) + at::arange(2, at::kFloat).repeat({50000}).reshape({1000, 10, 10});
  const FeatureStats b = feature_stats(big);
  CHECK(b.mean == doctest::Approx(1000.5).epsilon(1e-12));
  CHECK(b.std == doctest::Approx(0.5).epsilon(1e-12));
  // Non-contiguous input.
  CHECK(feature_stats(x.transpose(1, 2)).mean == doctest::Approx(mean));
  // A count that is not a multiple of the 8 partial sums: the tail is included.
  for (int n : {1, 7, 9, 27}) {
    CAPTURE(n);
    const at::Tensor v = at::arange(n, at::kFloat) * 0.25 + 1.0;
    double m = 0, q = 0;
    for (int i = 0; i < n; ++i) m += i * 0.25 + 1.0;
    m /= n;
    for (int i = 0; i < n; ++i) q += (i * 0.25 + 1.0 - m) * (i * 0.25 + 1.0 - m);
    const FeatureStats t = feature_stats(v);
    CHECK(t.mean == doctest::Approx(m).epsilon(1e-15));
    CHECK(t.std == doctest::Approx(std::sqrt(q / n)).epsilon(1e-15));
  }
}
}  // TEST_SUITE
