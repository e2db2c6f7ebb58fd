// The feature cache (contract and file layout in features.hpp): decode + fbank + pad/crop on
// worker threads, rows kept in one HDF5 file per (dataset folder, feature options).
//
// Every HDF5 call happens on the calling thread (the library is built thread-safe on Debian,
// so concurrent load_features calls from several threads are fine too). HDF5's own error
// printing is switched off around our calls; failures become warnings or Error ids.
#include "patchbay/features.hpp"

#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include "atomic_file.hpp"
#include "h5.hpp"
#include "patchbay/error.hpp"
#include "patchbay/hash.hpp"
#include "patchbay/log.hpp"

namespace fs = std::filesystem;

namespace patchbay {
namespace {

// Bump when the layout below changes (readers refuse other versions and rebuild).
constexpr int kFormatVersion = 1;
// Bump when the decoder or fbank change their numbers: the version is part of the hashed
// options text, so old caches are simply not used any more.
constexpr int kFeatureVersion = 2;  // 2: sparse mel projection (values within ~1e-6 of v1)
// Temporary files older than this are leftovers of killed writers.
constexpr auto kStaleTemp = std::chrono::hours(1);

// ---------------------------------------------------------------------------------------
// Names, keys, folders

// The options that change features, one per line (normalisation is applied later and is
// left out on purpose), plus the dataset folder. Hashed into the file name and stored in the
// file, which is compared on read (so a hash collision cannot serve wrong features).
std::string cache_identity(const FbankOptions& o, const fs::path& folder) {
  static constexpr const char* windows[] = {"hanning", "hamming", "povey", "rectangular", "blackman"};
  return fmt::format(
      "patchbay features v{}\nsample_rate = {}\nnum_mel_bins = {}\ntarget_frames = {}\n"
      "frame_length_ms = {}\nframe_shift_ms = {}\nlow_freq = {}\nhigh_freq = {}\n"
      "preemphasis = {}\ndither = {}\nwindow = {}\nsubtract_mean = {}\nremove_dc_offset = {}\n"
      "round_to_power_of_two = {}\nchannel = {}\nfolder = {}\n",
      kFeatureVersion, o.sample_rate, o.num_mel_bins, o.target_frames, o.frame_length_ms,
      o.frame_shift_ms, o.low_freq, o.high_freq, o.preemphasis, o.dither,
      windows[static_cast<int>(o.window)], o.subtract_mean, o.remove_dc_offset,
      o.round_to_power_of_two, o.channel == ChannelMix::mean ? "mean" : "first", folder.string());
}

// "abs_path|size|mtime_ns", or empty when the file cannot be stat'ed (it is then computed,
// and fails there with the decoder's DataError, and never cached).
std::string clip_key(const std::string& abs_path) {
  struct stat st {};
  if (::stat(abs_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return {};
  const int64_t ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return fmt::format("{}|{}|{}", abs_path, static_cast<int64_t>(st.st_size), ns);
}

// The path part of a key (paths may contain '|': the last two fields are numbers).
std::string key_path(const std::string& key) {
  const size_t last = key.rfind('|');
  if (last == std::string::npos || last == 0) return {};
  const size_t second = key.rfind('|', last - 1);
  return second == std::string::npos ? std::string() : key.substr(0, second);
}

// The deepest folder containing every clip.
fs::path common_folder(const std::vector<std::string>& paths) {
  std::string common;
  bool first = true;
  for (const auto& p : paths) {
    const std::string dir = fs::path(p).parent_path().string();
    if (first) {
      common = dir;
      first = false;
      continue;
    }
    const bool inside = dir.compare(0, common.size(), common) == 0 &&
                        (dir.size() == common.size() || dir[common.size()] == '/' || common == "/");
    if (inside) continue;
    fs::path shared;
    const fs::path a(common), b(dir);
    for (auto i = a.begin(), j = b.begin(); i != a.end() && j != b.end() && *i == *j; ++i, ++j) {
      shared /= *i;
    }
    common = shared.string();
  }
  return common.empty() ? fs::path("/") : fs::path(common);
}

bool writable_folder(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  return fs::is_directory(dir, ec) && ::access(dir.c_str(), W_OK | X_OK) == 0;
}

fs::path user_cache_folder() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg != nullptr && *xdg == '/') return fs::path(xdg) / "patchbay";
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home == '/') return fs::path(home) / ".cache" / "patchbay";
  return {};
}

fs::path choose_cache_folder(const FeatureRequest& request, const fs::path& clip_folder) {
  std::vector<fs::path> tried;
  if (!request.cache_dir.empty()) {
    tried.push_back(request.cache_dir);
  } else {
    tried.push_back(clip_folder / ".patchbay-cache");
    const fs::path user = user_cache_folder();
    if (!user.empty()) tried.push_back(user);
  }
  for (const auto& dir : tried) {
    if (writable_folder(dir)) return dir;
  }
  std::vector<std::string> names;
  for (const auto& dir : tried) names.push_back("'" + dir.string() + "'");
  throw Error("cache.unwritable",
              fmt::format("the feature cache cannot be written in {}; make the folder writable, "
                          "set frontend.cache_dir to a writable folder, or turn the cache off",
                          fmt::join(names, " or ")));
}

// ---------------------------------------------------------------------------------------
// HDF5 plumbing

// A failed step of reading or writing the cache; its message becomes a warning.
struct CacheFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Failures of the cache are warnings, not errors: CacheFailure, not h5::Handle's Error.
h5::Handle check(hid_t id, const char* what) {
  if (id < 0) throw CacheFailure(what);
  return h5::Handle(id, what);
}

void check(herr_t status, const char* what) {
  if (status < 0) throw CacheFailure(what);
}

// HDF5 prints its error stack to stderr by default; we report failures ourselves.
class QuietHdf5 {
 public:
  QuietHdf5() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  QuietHdf5(const QuietHdf5&) = delete;
  QuietHdf5& operator=(const QuietHdf5&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// File access without HDF5's advisory locks: files are never modified in place (writers
// fill a private temporary file), and locks fail on some network file systems.
h5::Handle file_access() {
  h5::Handle fapl = check(H5Pcreate(H5P_FILE_ACCESS), "cannot create a file access list");
  check(H5Pset_file_locking(fapl.id(), false, true), "cannot configure file locking");
  return fapl;
}

std::string read_string_attribute(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) <= 0) throw CacheFailure(fmt::format("no '{}' attribute", name));
  h5::Handle attr = check(H5Aopen(obj, name, H5P_DEFAULT), "cannot open an attribute");
  h5::Handle type = check(H5Aget_type(attr.id()), "cannot read an attribute's type");
  if (H5Tget_class(type.id()) != H5T_STRING || H5Tis_variable_str(type.id()) != 0) {
    throw CacheFailure(fmt::format("attribute '{}' is not a fixed-length string", name));
  }
  const size_t size = H5Tget_size(type.id());
  std::string value(size, '\0');
  check(H5Aread(attr.id(), type.id(), value.data()), "cannot read an attribute");
  value.resize(std::strlen(value.c_str()));
  return value;
}

int64_t read_int_attribute(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) <= 0) throw CacheFailure(fmt::format("no '{}' attribute", name));
  h5::Handle attr = check(H5Aopen(obj, name, H5P_DEFAULT), "cannot open an attribute");
  long long value = 0;
  check(H5Aread(attr.id(), H5T_NATIVE_LLONG, &value), "cannot read an attribute");
  return value;
}

void write_string_attribute(hid_t obj, const char* name, const std::string& value) {
  h5::Handle type = check(H5Tcopy(H5T_C_S1), "cannot create a string type");
  check(H5Tset_size(type.id(), std::max<size_t>(value.size(), 1)), "cannot size a string type");
  check(H5Tset_strpad(type.id(), H5T_STR_NULLPAD), "cannot pad a string type");
  check(H5Tset_cset(type.id(), H5T_CSET_UTF8), "cannot set a character set");
  h5::Handle space = check(H5Screate(H5S_SCALAR), "cannot create a dataspace");
  h5::Handle attr = check(H5Acreate2(obj, name, type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT), "cannot create an attribute");
  std::string padded = value;
  padded.resize(std::max<size_t>(value.size(), 1), '\0');
  check(H5Awrite(attr.id(), type.id(), padded.data()), "cannot write an attribute");
}

void write_int_attribute(hid_t obj, const char* name, int64_t value) {
  h5::Handle space = check(H5Screate(H5S_SCALAR), "cannot create a dataspace");
  h5::Handle attr = check(H5Acreate2(obj, name, H5T_STD_I64LE, space.id(), H5P_DEFAULT, H5P_DEFAULT), "cannot create an attribute");
  const long long v = value;
  check(H5Awrite(attr.id(), H5T_NATIVE_LLONG, &v), "cannot write an attribute");
}

// An open, validated cache file: its keys and the features dataset.
struct CacheReader {
  h5::Handle file;
  h5::Handle features;
  std::vector<std::string> keys;

  // Throws CacheFailure when the file is not a cache of `identity` with rows [T, F].
  CacheReader(const fs::path& path, const std::string& identity, int64_t frames, int64_t bins) {
    h5::Handle fapl = file_access();
    file = check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.id()), "not an HDF5 file (or a truncated one)");
    const int64_t version = read_int_attribute(file.id(), "format_version");
    if (version != kFormatVersion) {
      throw CacheFailure(fmt::format("format version {}, this build reads {}", version, kFormatVersion));
    }
    if (read_string_attribute(file.id(), "options") != identity) {
      throw CacheFailure("it was written for other options or another folder");
    }
    if (H5Lexists(file.id(), "keys", H5P_DEFAULT) <= 0 ||
        H5Lexists(file.id(), "features", H5P_DEFAULT) <= 0) {
      throw CacheFailure("no 'keys' or 'features' dataset");
    }
    h5::Handle kset = check(H5Dopen2(file.id(), "keys", H5P_DEFAULT), "cannot open 'keys'");
    h5::Handle ktype = check(H5Dget_type(kset.id()), "cannot read the type of 'keys'");
    if (H5Tget_class(ktype.id()) != H5T_STRING || H5Tis_variable_str(ktype.id()) != 0) {
      throw CacheFailure("'keys' is not a fixed-length string dataset");
    }
    h5::Handle kspace = check(H5Dget_space(kset.id()), "cannot read the shape of 'keys'");
    hsize_t n = 0;
    if (H5Sget_simple_extent_ndims(kspace.id()) != 1) throw CacheFailure("'keys' is not 1-D");
    check(H5Sget_simple_extent_dims(kspace.id(), &n, nullptr), "cannot read the shape of 'keys'");

    features = check(H5Dopen2(file.id(), "features", H5P_DEFAULT), "cannot open 'features'");
    h5::Handle ftype = check(H5Dget_type(features.id()), "cannot read the type of 'features'");
    if (H5Tget_class(ftype.id()) != H5T_FLOAT || H5Tget_size(ftype.id()) != sizeof(float)) {
      throw CacheFailure("'features' is not float32");
    }
    h5::Handle fspace = check(H5Dget_space(features.id()), "cannot read the shape of 'features'");
    hsize_t dims[3] = {0, 0, 0};
    if (H5Sget_simple_extent_ndims(fspace.id()) != 3) throw CacheFailure("'features' is not 3-D");
    check(H5Sget_simple_extent_dims(fspace.id(), dims, nullptr), "cannot read the shape of 'features'");
    if (dims[0] != n || dims[1] != static_cast<hsize_t>(frames) || dims[2] != static_cast<hsize_t>(bins)) {
      throw CacheFailure(fmt::format("'features' is [{}, {}, {}] for {} keys; expected [{}, {}, {}]",
                                     dims[0], dims[1], dims[2], n, n, frames, bins));
    }

    const size_t width = H5Tget_size(ktype.id());
    if (width == 0) throw CacheFailure("'keys' has zero-width strings");
    keys.resize(n);
    if (n > 0) {
      std::vector<char> buffer(n * width);
      check(H5Dread(kset.id(), ktype.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()),
            "cannot read 'keys'");
      for (size_t i = 0; i < n; ++i) {
        const char* s = buffer.data() + i * width;
        keys[i].assign(s, strnlen(s, width));
      }
    }
  }

  // Reads `count` consecutive rows from `first` into dst (count * T * F floats).
  void read_rows(hsize_t first, hsize_t count, int64_t frames, int64_t bins, float* dst) const {
    h5::Handle fspace = check(H5Dget_space(features.id()), "cannot read the shape of 'features'");
    const hsize_t start[3] = {first, 0, 0};
    const hsize_t size[3] = {count, static_cast<hsize_t>(frames), static_cast<hsize_t>(bins)};
    check(H5Sselect_hyperslab(fspace.id(), H5S_SELECT_SET, start, nullptr, size, nullptr),
          "cannot select rows");
    h5::Handle mspace = check(H5Screate_simple(3, size, nullptr), "cannot create a dataspace");
    check(H5Dread(features.id(), H5T_NATIVE_FLOAT, mspace.id(), fspace.id(), H5P_DEFAULT, dst),
          "reading rows failed (corrupt data or checksum mismatch)");
  }
};

// Groups (source, destination) row pairs, sorted by source, into runs consecutive in both.
struct Run {
  size_t src, dst, count;
};
std::vector<Run> runs_of(std::vector<std::pair<size_t, size_t>> pairs) {
  std::sort(pairs.begin(), pairs.end());
  std::vector<Run> runs;
  for (const auto& [src, dst] : pairs) {
    if (!runs.empty() && runs.back().src + runs.back().count == src &&
        runs.back().dst + runs.back().count == dst) {
      ++runs.back().count;
    } else {
      runs.push_back({src, dst, 1});
    }
  }
  return runs;
}

// Writes a complete cache file at `path`: `own` rows (indices into `rows`, a [*, T, F]
// tensor) first, then `foreign` rows copied from `old`. Throws CacheFailure.
void write_cache_file(const fs::path& path, const std::string& identity, int64_t frames, int64_t bins,
                      const at::Tensor& rows, const std::vector<size_t>& own,
                      const std::vector<std::string>& own_keys, const CacheReader* old,
                      const std::vector<size_t>& foreign) {
  const hsize_t n = own.size() + foreign.size();
  h5::Handle fapl = file_access();
  h5::Handle file = check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id()), "cannot create the file");
  write_int_attribute(file.id(), "format_version", kFormatVersion);
  write_string_attribute(file.id(), "options", identity);

  // keys: fixed-length, NUL-padded strings.
  std::vector<const std::string*> all_keys;
  all_keys.reserve(n);
  for (const auto& k : own_keys) all_keys.push_back(&k);
  for (size_t r : foreign) all_keys.push_back(&old->keys[r]);
  size_t width = 1;
  for (const auto* k : all_keys) width = std::max(width, k->size());
  std::vector<char> buffer(static_cast<size_t>(n) * width, '\0');
  for (size_t i = 0; i < all_keys.size(); ++i) std::memcpy(buffer.data() + i * width, all_keys[i]->data(), all_keys[i]->size());
  h5::Handle ktype = check(H5Tcopy(H5T_C_S1), "cannot create a string type");
  check(H5Tset_size(ktype.id(), width), "cannot size a string type");
  check(H5Tset_strpad(ktype.id(), H5T_STR_NULLPAD), "cannot pad a string type");
  check(H5Tset_cset(ktype.id(), H5T_CSET_UTF8), "cannot set a character set");
  {
    h5::Handle kspace = check(H5Screate_simple(1, &n, nullptr), "cannot create a dataspace");
    h5::Handle kset = check(H5Dcreate2(file.id(), "keys", ktype.id(), kspace.id(), H5P_DEFAULT, H5P_DEFAULT,
                                H5P_DEFAULT), "cannot create 'keys'");
    if (n > 0) {
      check(H5Dwrite(kset.id(), ktype.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()),
            "cannot write 'keys'");
    }
  }

  // features: [N, T, F] float32, one chunk per clip row, Fletcher-32 checksums (a damaged
  // chunk fails to read instead of returning wrong numbers).
  const hsize_t dims[3] = {n, static_cast<hsize_t>(frames), static_cast<hsize_t>(bins)};
  const hsize_t maxdims[3] = {H5S_UNLIMITED, dims[1], dims[2]};
  const hsize_t chunk[3] = {1, dims[1], dims[2]};
  h5::Handle fspace = check(H5Screate_simple(3, dims, maxdims), "cannot create a dataspace");
  h5::Handle dcpl = check(H5Pcreate(H5P_DATASET_CREATE), "cannot create a property list");
  check(H5Pset_chunk(dcpl.id(), 3, chunk), "cannot set chunking");
  check(H5Pset_fletcher32(dcpl.id()), "cannot enable checksums");
  h5::Handle fset = check(H5Dcreate2(file.id(), "features", H5T_IEEE_F32LE, fspace.id(), H5P_DEFAULT,
                              dcpl.id(), H5P_DEFAULT), "cannot create 'features'");
  const size_t row = static_cast<size_t>(frames * bins);
  const auto write_rows = [&](hsize_t first, hsize_t count, const float* src) {
    const hsize_t start[3] = {first, 0, 0};
    const hsize_t size[3] = {count, dims[1], dims[2]};
    h5::Handle sel = check(H5Dget_space(fset.id()), "cannot read the shape of 'features'");
    check(H5Sselect_hyperslab(sel.id(), H5S_SELECT_SET, start, nullptr, size, nullptr), "cannot select rows");
    h5::Handle mspace = check(H5Screate_simple(3, size, nullptr), "cannot create a dataspace");
    check(H5Dwrite(fset.id(), H5T_NATIVE_FLOAT, mspace.id(), sel.id(), H5P_DEFAULT, src),
          "cannot write rows (disk full?)");
  };
  const float* data = rows.data_ptr<float>();
  std::vector<std::pair<size_t, size_t>> pairs;
  for (size_t i = 0; i < own.size(); ++i) pairs.emplace_back(own[i], i);
  for (const Run& r : runs_of(pairs)) write_rows(r.dst, r.count, data + r.src * row);

  // Rows of other clips, copied from the previous file in blocks.
  pairs.clear();
  for (size_t i = 0; i < foreign.size(); ++i) pairs.emplace_back(foreign[i], own.size() + i);
  constexpr size_t kBlock = 64;
  std::vector<float> block;
  for (Run r : runs_of(pairs)) {
    while (r.count > 0) {
      const size_t take = std::min(r.count, kBlock);
      block.resize(take * row);
      old->read_rows(r.src, take, frames, bins, block.data());
      write_rows(r.dst, take, block.data());
      r.src += take;
      r.dst += take;
      r.count -= take;
    }
  }
  if (!fset.close() || !file.close()) throw CacheFailure("closing the file failed (disk full?)");
}

// ---------------------------------------------------------------------------------------
// The cache as load_features uses it

struct Cache {
  fs::path dir;
  fs::path file;
  std::string identity;
  int64_t frames = 0, bins = 0;
};

// Fills rows of `all` from the cache file; marks them in `have`. Returns the number read.
// An unreadable file is a warning; nothing is then taken from it.
size_t read_cached(const Cache& cache, const std::vector<std::string>& keys, at::Tensor& all,
                   std::vector<char>& have, bool& damaged) {
  std::error_code ec;
  if (!fs::exists(cache.file, ec)) return 0;
  QuietHdf5 quiet;
  std::vector<size_t> filled;
  try {
    CacheReader reader(cache.file, cache.identity, cache.frames, cache.bins);
    std::unordered_map<std::string_view, size_t> where;
    where.reserve(reader.keys.size());
    for (size_t r = 0; r < reader.keys.size(); ++r) where.emplace(reader.keys[r], r);
    std::vector<std::pair<size_t, size_t>> pairs;  // (file row, clip index)
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i].empty()) continue;
      const auto it = where.find(keys[i]);
      if (it != where.end()) pairs.emplace_back(it->second, i);
    }
    float* dst = all.data_ptr<float>();
    const size_t row = static_cast<size_t>(cache.frames * cache.bins);
    for (const Run& r : runs_of(pairs)) {
      reader.read_rows(r.src, r.count, cache.frames, cache.bins, dst + r.dst * row);
      for (size_t k = 0; k < r.count; ++k) filled.push_back(r.dst + k);
    }
    for (size_t i : filled) have[i] = 1;
    return filled.size();
  } catch (const CacheFailure& e) {
    log::warn("feature cache '{}' cannot be read ({}); rebuilding it", cache.file.string(), e.what());
    damaged = true;
    return 0;
  }
}

// Replaces the cache file with: every row of this call (clips with a key and a row), then
// the rows of the current file that belong to other clips whose files are unchanged. Rows
// of this call's clips with other keys (older versions) and of deleted or changed files are
// dropped. Failures are warnings: the features are right, only not cached.
void write_cached(const Cache& cache, const std::vector<std::string>& keys,
                  const std::vector<std::string>& paths, const at::Tensor& all,
                  const std::vector<char>& have) {
  std::vector<size_t> own;
  std::vector<std::string> own_keys;
  std::unordered_set<std::string_view> own_set;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (have[i] && !keys[i].empty() && own_set.insert(keys[i]).second) {
      own.push_back(i);
      own_keys.push_back(keys[i]);
    }
  }
  const std::unordered_set<std::string_view> own_paths(paths.begin(), paths.end());

  QuietHdf5 quiet;
  // Leftovers of writers that died before their rename (any cache file's: several
  // processes share the folder, so only old ones).
  remove_stale_temporaries(cache.dir, "features-", kStaleTemp);
  // The current file, read again now: another process may have replaced it meanwhile.
  std::optional<CacheReader> old;
  std::vector<size_t> foreign;
  std::error_code ec;
  if (fs::exists(cache.file, ec)) {
    try {
      old.emplace(cache.file, cache.identity, cache.frames, cache.bins);
      for (size_t r = 0; r < old->keys.size(); ++r) {
        const std::string& key = old->keys[r];
        if (own_set.count(key)) continue;
        const std::string path = key_path(key);
        if (path.empty() || own_paths.count(path)) continue;
        if (clip_key(path) == key) foreign.push_back(r);
      }
    } catch (const CacheFailure& e) {
      log::debug("not keeping rows of unreadable feature cache '{}': {}", cache.file.string(), e.what());
      old.reset();
      foreign.clear();
    }
  }

  try {
    replace_file(cache.file, "feature cache", [&](const fs::path& temp) {
      write_cache_file(temp, cache.identity, cache.frames, cache.bins, all, own, own_keys,
                       old ? &*old : nullptr, foreign);
      old.reset();  // closed before the rename replaces the file it reads
    });
    log::debug("feature cache '{}': {} rows ({} kept from other clips)", cache.file.string(),
               own.size() + foreign.size(), foreign.size());
  } catch (const Error& e) {
    log::warn("feature cache '{}' was not written ({}); the features are computed but not cached",
              cache.file.string(), e.what());
  }
}

// ---------------------------------------------------------------------------------------
// Computing rows on worker threads

struct Failure {
  size_t index = 0;            // clip index
  std::exception_ptr error;
  bool data_error = false;     // a bad clip (DataError): skippable
  std::string message;
};

}  // namespace

FeatureSet load_features(const std::vector<Clip>& clips, const FeatureRequest& request) {
  const Fbank fbank(request.frontend);  // bad options throw here, before any work
  const int64_t frames = request.frontend.target_frames;
  const int64_t bins = request.frontend.num_mel_bins;
  if (frames < 1) {
    throw ConfigError("frontend.options", fmt::format("target_frames = {} must be at least 1", frames));
  }
  const size_t n = clips.size();
  const size_t row = static_cast<size_t>(frames * bins);

  FeatureSet out;
  std::vector<std::string> paths(n), keys(n);
  for (size_t i = 0; i < n; ++i) {
    paths[i] = fs::absolute(clips[i].path).lexically_normal().string();
    if (request.use_cache) keys[i] = clip_key(paths[i]);
  }
  at::Tensor all = at::empty({static_cast<int64_t>(n), frames, bins}, at::kFloat);
  std::vector<char> have(n, 0);

  Cache cache;
  bool damaged = false;
  if (request.use_cache && n > 0) {
    const fs::path folder = common_folder(paths);
    cache.dir = choose_cache_folder(request, folder);
    cache.identity = cache_identity(request.frontend, folder);
    cache.file = cache.dir / fmt::format("features-{:016x}.h5", stable_hash(cache.identity));
    cache.frames = frames;
    cache.bins = bins;
    out.cache_file = cache.file;
    out.from_cache = read_cached(cache, keys, all, have, damaged);
  }

  std::vector<size_t> todo;
  for (size_t i = 0; i < n; ++i) {
    if (!have[i]) todo.push_back(i);
  }

  // Workers claim positions of `todo` in increasing order. On a failure at position p that
  // stops the run, positions after p are no longer started; every position before p was
  // already claimed and finishes, so the earliest failure is the first bad clip in order.
  std::atomic<size_t> next{0}, done{0}, computed{0};
  std::atomic<size_t> limit{std::numeric_limits<size_t>::max()};
  std::mutex failures_mutex;
  std::vector<Failure> failures;
  const bool skip = request.skip_bad_clips;
  float* dst = all.data_ptr<float>();
  const auto stop_at = [&](size_t pos) {
    size_t cur = limit.load();
    while (pos < cur && !limit.compare_exchange_weak(cur, pos)) {
    }
  };
  const auto work_one = [&](size_t pos) {
    const size_t i = todo[pos];
    try {
      const Waveform wave = read_audio(paths[i], request.frontend.sample_rate, request.frontend.channel);
      const at::Tensor x = pad_or_crop(fbank.compute(wave), frames).contiguous();
      std::memcpy(dst + i * row, x.data_ptr<float>(), row * sizeof(float));
      have[i] = 1;  // each index is written by one worker only; read after join
      computed.fetch_add(1);
    } catch (const DataError& e) {
      std::lock_guard<std::mutex> lock(failures_mutex);
      failures.push_back({i, std::current_exception(), true, e.what()});
      if (!skip) stop_at(pos);
    } catch (...) {
      std::lock_guard<std::mutex> lock(failures_mutex);
      failures.push_back({i, std::current_exception(), false, {}});
      stop_at(pos);
    }
    done.fetch_add(1);
  };
  const auto worker = [&](bool report) {
    auto last = std::chrono::steady_clock::now();
    for (;;) {
      const size_t pos = next.fetch_add(1);
      if (pos >= todo.size() || pos > limit.load()) break;
      work_one(pos);
      if (report && request.progress) {
        const auto now = std::chrono::steady_clock::now();
        if (now - last > std::chrono::milliseconds(200)) {
          request.progress(out.from_cache + done.load(), n);
          last = now;
        }
      }
    }
  };

  if (!todo.empty()) {
    const int wanted = request.threads > 0 ? request.threads : at::get_num_threads();
    const size_t threads = std::clamp<size_t>(static_cast<size_t>(std::max(wanted, 1)), 1, todo.size());
    if (request.progress) request.progress(out.from_cache, n);
    // Joins the pool on every exit, also when starting a thread or the progress callback throws.
    struct Pool {
      std::vector<std::thread> threads;
      std::atomic<size_t>* limit;
      ~Pool() {
        if (std::uncaught_exceptions() > 0) limit->store(0);
        for (auto& t : threads) t.join();
      }
    } pool{{}, &limit};
    pool.threads.reserve(threads - 1);
    for (size_t t = 1; t < threads; ++t) pool.threads.emplace_back(worker, false);
    worker(true);  // the calling thread works too, and reports progress
  }
  out.computed = computed.load();
  if (request.progress) request.progress(out.from_cache + done.load(), n);

  // Save what was computed (also when a bad clip is about to stop the run).
  if (request.use_cache && n > 0 && (out.computed > 0 || damaged)) {
    write_cached(cache, keys, paths, all, have);
  }

  std::sort(failures.begin(), failures.end(),
            [](const Failure& a, const Failure& b) { return a.index < b.index; });
  for (const auto& f : failures) {
    if (!f.data_error || !skip) std::rethrow_exception(f.error);
  }

  std::vector<int64_t> kept;
  kept.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (have[i]) {
      out.clip_index.push_back(i);
      kept.push_back(static_cast<int64_t>(i));
    }
  }
  for (const auto& f : failures) out.skipped.push_back({paths[f.index], f.message});
  if (kept.size() == n) {
    out.features = all;
  } else {
    out.features = all.index_select(0, at::tensor(kept, at::kLong)).contiguous();
  }
  if (!out.skipped.empty()) {
    log::warn("skipped {} bad clip{} of {} (on_bad_clip = \"skip\"), e.g. {}", out.skipped.size(),
              out.skipped.size() == 1 ? "" : "s", n, out.skipped.front().reason);
  }
  return out;
}

FeatureStats feature_stats(const at::Tensor& features) {
  const at::Tensor x = features.to(at::kFloat).contiguous();
  const float* p = x.data_ptr<float>();
  const int64_t count = x.numel();
  FeatureStats stats;
  if (count == 0) return stats;
  // Two passes in double: the mean first, then the squared deviations (no cancellation).
  // Eight independent partial sums per pass: one serial chain of double additions is bound
  // by the adder's latency (~23 ms per run for the built-in keywords); eight lanes vectorise.
  constexpr int64_t kLanes = 8;
  const int64_t whole = count - count % kLanes;
  double lanes[kLanes] = {};
  for (int64_t i = 0; i < whole; i += kLanes) {
    for (int64_t j = 0; j < kLanes; ++j) lanes[j] += p[i + j];
  }
  double sum = 0.0;
  for (double v : lanes) sum += v;
  for (int64_t i = whole; i < count; ++i) sum += p[i];
  const double mean = sum / static_cast<double>(count);
  double square_lanes[kLanes] = {};
  for (int64_t i = 0; i < whole; i += kLanes) {
    for (int64_t j = 0; j < kLanes; ++j) {
      const double d = p[i + j] - mean;
      square_lanes[j] += d * d;
    }
  }
  double squares = 0.0;
  for (double v : square_lanes) squares += v;
  for (int64_t i = whole; i < count; ++i) {
    const double d = p[i] - mean;
    squares += d * d;
  }
  stats.mean = mean;
  stats.std = std::sqrt(squares / static_cast<double>(count));
  return stats;
}

}  // namespace patchbay
