#include "patchbay/results.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>
#include <limits>
#include <set>

#include <fmt/format.h>

#include "atomic_file.hpp"
#include "h5.hpp"
#include "patchbay/error.hpp"
#include "patchbay/version.hpp"

namespace fs = std::filesystem;

namespace patchbay {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// place_file's last step: the complete temporary replaces the target.
void publish_file(const fs::path& temp, const fs::path& target) {
  sync_path(temp);
  std::error_code ec;
  fs::rename(temp, target, ec);
  if (ec) {
    fs::remove(temp, ec);
    throw Error("results.write", fmt::format("cannot replace '{}': {}; check the folder's "
                                             "permissions and free space", target.string(),
                                             ec.message()));
  }
  sync_path(target.parent_path().empty() ? fs::path(".") : target.parent_path());
}

// Reads a just-written file back before it replaces the published one: HDF5 reports some
// failures (a full disk while it completes its metadata) only by leaving a file that does
// not open ("addr overflow"), and that file must never replace a good one.
void check_complete(const fs::path& file, const std::string& schema) {
  auto f = h5::open_file_read(file);
  if (h5::read_attr_string(f.id(), "schema").value_or("") != schema) {
    throw Error("results.write", fmt::format("'{}' was written but does not read back as {}", file.string(), schema));
  }
}

// /runs/<id>/test_predictions: clip_ids [N], logits [N, C] float32, targets [N, C] uint8;
// absent when the run kept none (no test split, or a record from before they were kept).
void write_predictions(hid_t group, const RunRecord& r) {
  const auto n = static_cast<hsize_t>(r.test_clip_ids.size());
  if (n == 0 || r.test_logits.size() % n != 0 || r.test_targets.size() != r.test_logits.size()) return;
  const hsize_t classes = r.test_logits.size() / n;
  auto p = h5::create_group(group, "test_predictions");
  h5::write_strings(p.id(), "clip_ids", r.test_clip_ids);
  h5::write_nd(p.id(), "logits", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, r.test_logits.data(), {n, classes});
  h5::write_nd(p.id(), "targets", H5T_STD_U8LE, H5T_NATIVE_UINT8, r.test_targets.data(), {n, classes});
}

void read_predictions(hid_t group, RunRecord& r) {
  if (!h5::exists(group, "test_predictions")) return;
  auto p = h5::open_group(group, "test_predictions");
  r.test_clip_ids = h5::read_strings(p.id(), "clip_ids");
  auto logits = h5::open_dataset(p.id(), "logits");
  auto targets = h5::open_dataset(p.id(), "targets");
  const auto shape = h5::shape_of(logits.id());
  const size_t count = shape.size() == 2 ? static_cast<size_t>(shape[0] * shape[1]) : 0;
  if (count == 0 || h5::shape_of(targets.id()) != shape || shape[0] != r.test_clip_ids.size()) {
    throw Error("results.corrupt", "test_predictions: logits, targets and clip_ids disagree in shape");
  }
  r.test_logits.resize(count);
  r.test_targets.resize(count);
  h5::read_nd(logits.id(), H5T_NATIVE_FLOAT, r.test_logits.data());
  h5::read_nd(targets.id(), H5T_NATIVE_UINT8, r.test_targets.data());
}

void write_run_group(hid_t group, const RunRecord& r) {
  h5::write_attr(group, "id", r.id);
  h5::write_attr(group, "slug", r.slug);
  h5::write_attr(group, "status", to_string(r.status));
  h5::write_attr(group, "reason", r.reason);
  h5::write_attr(group, "failed_step", r.failed_step);
  h5::write_attr(group, "seed", r.seed);
  h5::write_attr(group, "host", r.host);
  h5::write_attr(group, "started", r.started);
  h5::write_attr(group, "finished", r.finished);
  h5::write_attr(group, "wall_seconds", r.wall_seconds);
  h5::write_attr(group, "attempts", r.attempts);
  h5::write_attr(group, "threads", r.threads);
  h5::write_attr(group, "loader_threads", r.loader_threads);
  h5::write_attr(group, "blas", r.blas);
  h5::write_attr(group, "config", r.config_toml);
  h5::write_attr(group, "reused_from", r.reused_from);
  h5::write_attr(group, "patchbay_version", std::string(version()));

  auto axes = h5::create_group(group, "axes");
  for (const auto& [k, v] : r.axes) h5::write_attr(axes.id(), k, v);

  auto curves = h5::create_group(group, "curves");
  const auto column = [&](const char* name, auto member) {
    std::vector<double> values;
    for (const auto& row : r.curves) values.push_back(static_cast<double>(row.*member));
    h5::write_doubles(curves.id(), name, values);
  };
  std::vector<int64_t> epochs, steps;
  for (const auto& row : r.curves) {
    epochs.push_back(row.epoch);
    steps.push_back(row.step);
  }
  h5::write_int64s(curves.id(), "epoch", epochs);
  h5::write_int64s(curves.id(), "step", steps);
  column("lr", &EpochRow::lr);
  column("train_loss", &EpochRow::train_loss);
  column("valid_loss", &EpochRow::valid_loss);
  column("valid_accuracy", &EpochRow::valid_accuracy);
  column("valid_mAP", &EpochRow::valid_mAP);
  column("valid_auc", &EpochRow::valid_auc);
  column("epoch_seconds", &EpochRow::epoch_seconds);
  column("train_seconds", &EpochRow::train_seconds);
  column("data_seconds", &EpochRow::data_seconds);
  column("masked_cells", &EpochRow::masked_cells);

  auto final = h5::create_group(group, "final");
  for (const auto& [k, v] : r.final) h5::write_attr(final.id(), k, v);
  h5::write_strings(final.id(), "class_names", r.class_names);
  h5::write_doubles(final.id(), "test_ap_per_class", r.test_ap_per_class);
  h5::write_strings(group, "skipped_clips", r.skipped_clips);
  write_predictions(group, r);
}

RunRecord read_run_group(hid_t group) {
  RunRecord r;
  const auto str = [&](const char* name) { return h5::read_attr_string(group, name).value_or(""); };
  const auto num = [&](const char* name) { return h5::read_attr_double(group, name).value_or(0.0); };
  r.id = str("id");
  r.slug = str("slug");
  r.status = parse_run_status(str("status"));
  r.reason = str("reason");
  r.failed_step = static_cast<int64_t>(num("failed_step"));
  r.seed = static_cast<int64_t>(num("seed"));
  r.host = str("host");
  r.started = str("started");
  r.finished = str("finished");
  r.wall_seconds = num("wall_seconds");
  r.attempts = static_cast<int64_t>(num("attempts"));
  r.threads = static_cast<int64_t>(num("threads"));
  r.loader_threads = static_cast<int64_t>(num("loader_threads"));
  r.blas = str("blas");
  r.config_toml = str("config");
  r.reused_from = str("reused_from");
  if (h5::exists(group, "axes")) {
    auto axes = h5::open_group(group, "axes");
    for (const auto& k : h5::attr_names(axes.id())) r.axes.emplace_back(k, h5::read_attr_string(axes.id(), k).value_or(""));
  }
  if (h5::exists(group, "curves")) {
    auto c = h5::open_group(group, "curves");
    const auto epochs = h5::read_doubles(c.id(), "epoch");
    r.curves.resize(epochs.size());
    const auto fill = [&](const char* name, auto member) {
      if (!h5::exists(c.id(), name)) return;
      const auto values = h5::read_doubles(c.id(), name);
      for (size_t i = 0; i < std::min(values.size(), r.curves.size()); ++i) {
        r.curves[i].*member = static_cast<std::remove_reference_t<decltype(r.curves[i].*member)>>(values[i]);
      }
    };
    fill("epoch", &EpochRow::epoch);
    fill("step", &EpochRow::step);
    fill("lr", &EpochRow::lr);
    fill("train_loss", &EpochRow::train_loss);
    fill("valid_loss", &EpochRow::valid_loss);
    fill("valid_accuracy", &EpochRow::valid_accuracy);
    fill("valid_mAP", &EpochRow::valid_mAP);
    fill("valid_auc", &EpochRow::valid_auc);
    fill("epoch_seconds", &EpochRow::epoch_seconds);
    fill("train_seconds", &EpochRow::train_seconds);
    fill("data_seconds", &EpochRow::data_seconds);
    fill("masked_cells", &EpochRow::masked_cells);
  }
  if (h5::exists(group, "final")) {
    auto f = h5::open_group(group, "final");
    for (const auto& k : h5::attr_names(f.id())) {
      if (auto v = h5::read_attr_double(f.id(), k)) r.final[k] = *v;
    }
    if (h5::exists(f.id(), "class_names")) r.class_names = h5::read_strings(f.id(), "class_names");
    if (h5::exists(f.id(), "test_ap_per_class")) r.test_ap_per_class = h5::read_doubles(f.id(), "test_ap_per_class");
  }
  if (h5::exists(group, "skipped_clips")) r.skipped_clips = h5::read_strings(group, "skipped_clips");
  read_predictions(group, r);
  return r;
}

bool parses_as_number(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

// A column of strings, stored as doubles when every value is a number or empty (a run that
// does not set the key: NaN, as pandas reads a missing number).
void write_column(hid_t group, const std::string& name, const std::vector<std::string>& values) {
  std::vector<double> numbers;
  for (const auto& v : values) {
    double x = kNaN;
    if (!v.empty() && !parses_as_number(v, x)) {
      h5::write_strings(group, name, values);
      return;
    }
    numbers.push_back(x);
  }
  h5::write_doubles(group, name, numbers);
}

}  // namespace

std::string axis_value_text(const std::string& toml_value) {
  const auto& v = toml_value;
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') return v.substr(1, v.size() - 2);
  return v;
}

const char* to_string(RunStatus status) {
  switch (status) {
    case RunStatus::planned: return "PLANNED";
    case RunStatus::running: return "RUNNING";
    case RunStatus::completed: return "COMPLETED";
    case RunStatus::failed: return "FAILED";
  }
  return "PLANNED";
}

RunStatus parse_run_status(const std::string& text) {
  if (text == "RUNNING") return RunStatus::running;
  if (text == "COMPLETED") return RunStatus::completed;
  if (text == "FAILED") return RunStatus::failed;
  return RunStatus::planned;
}

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

ExperimentRecord record_of(const Experiment& experiment) {
  ExperimentRecord rec;
  rec.name = experiment.name;
  rec.file = experiment.file.string();
  rec.text = experiment.text;
  rec.overrides = experiment.overrides;
  for (const auto& run : experiment.runs) {
    rec.run_ids.push_back(run.id);
    rec.slugs.push_back(run.slug);
    std::vector<std::pair<std::string, std::string>> axes;
    for (const auto& [k, v] : run.axes) axes.emplace_back(k, to_toml(v));
    rec.axes.push_back(std::move(axes));
  }
  return rec;
}

ResultsLock::~ResultsLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

ResultsStore::ResultsStore(fs::path results_file) : file_(std::move(results_file)) {}

fs::path ResultsStore::runs_dir() const { return fs::path(file_.string() + ".runs"); }

fs::path ResultsStore::run_dir(const std::string& id) const { return runs_dir() / id; }

ResultsLock ResultsStore::lock() const {
  std::error_code ec;
  if (!file_.parent_path().empty()) fs::create_directories(file_.parent_path(), ec);
  const fs::path lock_file = file_.string() + ".lock";
  const int fd = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw Error("results.write", fmt::format("cannot create lock file '{}': {}; choose a writable "
                                             "place with --results", lock_file.string(),
                                             std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {0};
    const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    ::close(fd);
    const std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "unknown";
    throw Error("results.locked",
                fmt::format("results '{}' are in use by another patchbay run (pid {}); wait for it "
                            "to finish (it records every run, including yours if the plan is the "
                            "same), or write elsewhere with --results OTHER.h5",
                            file_.string(), pid.substr(0, pid.find('\n'))));
  }
  const std::string pid = fmt::format("{}\n", ::getpid());
  if (::ftruncate(fd, 0) == 0) {
    [[maybe_unused]] const ssize_t w = ::pwrite(fd, pid.data(), pid.size(), 0);
  }
  remove_stale_temporaries();
  return ResultsLock(fd);
}

void ResultsStore::remove_stale_temporaries() const {
  // Only the lock holder (and the workers it starts later) writes here, so every temporary
  // file that exists now was left by a process killed mid-write.
  const fs::path parent = file_.parent_path().empty() ? fs::path(".") : file_.parent_path();
  patchbay::remove_stale_temporaries(parent, file_.filename().string());
  std::error_code ec;
  if (!fs::is_directory(runs_dir(), ec)) return;
  for (const auto& run : fs::directory_iterator(runs_dir(), ec)) {
    if (!run.is_directory(ec)) continue;
    // The run record, and import_run's checkpoint and log.
    for (const char* name : {"run.h5", "checkpoint.pt", "log.txt"}) {
      patchbay::remove_stale_temporaries(run.path(), name);
    }
    fs::remove(run.path() / "checkpoint.pt.tmp", ec);  // the fixed name earlier builds used
  }
}

void ResultsStore::write_run(const RunRecord& record) const {
  const fs::path dir = run_dir(record.id);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    throw Error("results.write", fmt::format("cannot create '{}': {}", dir.string(), ec.message()));
  }
  replace_file(dir / "run.h5", "run record", [&](const fs::path& temp) {
    {
      auto file = h5::create_file(temp);
      h5::write_attr(file.id(), "schema", "patchbay.run");
      h5::write_attr(file.id(), "schema_version", kResultsSchemaVersion);
      auto group = h5::create_group(file.id(), "run");
      write_run_group(group.id(), record);
      h5::flush(file.id());  // a full disk fails here, loudly, not silently at close
    }
    check_complete(temp, "patchbay.run");
  });
}

namespace {

// Places src_dir/name at dst_dir/name atomically (temp + rename); hard-linked when allowed
// and possible. A missing source removes the target: another attempt's file would not match
// the record placed beside it.
void place_file(const fs::path& src_dir, const fs::path& dst_dir, const std::string& name, bool may_link) {
  const fs::path source = src_dir / name, target = dst_dir / name;
  std::error_code e;
  if (!fs::exists(source, e)) {
    fs::remove(target, e);
    return;
  }
  const fs::path temp = temporary_beside(target);
  fs::remove(temp, e);
  e.clear();
  if (may_link) fs::create_hard_link(source, temp, e);
  if (!may_link || e) {
    e.clear();
    fs::copy_file(source, temp, fs::copy_options::overwrite_existing, e);
  }
  if (e) {
    fs::remove(temp, e);
    throw Error("results.write", fmt::format("cannot copy '{}' to '{}': {}; check the space "
                                             "and permissions there", source.string(),
                                             temp.string(), e.message()));
  }
  publish_file(temp, target);
}

void make_run_dir(const fs::path& dst) {
  std::error_code ec;
  fs::create_directories(dst, ec);
  if (ec) {
    throw Error("results.write", fmt::format("cannot create '{}': {}", dst.string(), ec.message()));
  }
}

}  // namespace

void ResultsStore::import_run(const ResultsStore& from, const std::string& id) const {
  const fs::path src = from.run_dir(id), dst = run_dir(id);
  make_run_dir(dst);
  std::error_code ec;
  fs::remove(dst / "run.h5", ec);
  place_file(src, dst, "checkpoint.pt", true);
  place_file(src, dst, "log.txt", false);
  place_file(src, dst, "run.h5", false);
}

void ResultsStore::import_run_as(const ResultsStore& from, const std::string& from_id,
                                 const RunRecord& record) const {
  const fs::path src = from.run_dir(from_id), dst = run_dir(record.id);
  make_run_dir(dst);
  std::error_code ec;
  fs::remove(dst / "run.h5", ec);
  place_file(src, dst, "checkpoint.pt", true);
  place_file(src, dst, "log.txt", false);
  write_run(record);
}

std::optional<RunRecord> ResultsStore::read_run(const std::string& id) const {
  const fs::path path = run_dir(id) / "run.h5";
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  try {
    auto file = h5::open_file_read(path);
    auto group = h5::open_group(file.id(), "run");
    return read_run_group(group.id());
  } catch (const Error& e) {
    throw Error("results.corrupt",
                fmt::format("run file '{}' cannot be read ({}); delete it to run that run again",
                            path.string(), e.what()));
  }
}

std::optional<ExperimentRecord> ResultsStore::read_experiment() const {
  std::error_code ec;
  if (!fs::exists(file_, ec)) return std::nullopt;
  auto file = h5::open_file_read(file_);
  if (!h5::exists(file.id(), "sweep")) return std::nullopt;
  auto sweep = h5::open_group(file.id(), "sweep");
  ExperimentRecord rec;
  rec.name = h5::read_attr_string(file.id(), "experiment").value_or("");
  rec.file = h5::read_attr_string(sweep.id(), "file").value_or("");
  rec.text = h5::read_attr_string(sweep.id(), "experiment_toml").value_or("");
  if (h5::exists(sweep.id(), "overrides")) rec.overrides = h5::read_strings(sweep.id(), "overrides");
  rec.shard = h5::read_attr_string(sweep.id(), "shard").value_or("");
  if (h5::exists(sweep.id(), "plan/id")) {
    rec.run_ids = h5::read_strings(sweep.id(), "plan/id");
    rec.slugs = h5::read_strings(sweep.id(), "plan/slug");
  }
  return rec;
}

namespace {

// False when R is absent or readable; true when it cannot be read and is patchbay's (its runs
// folder says so, or it is empty: nothing to lose). Throws for anything else given as
// --results by mistake (a folder, an experiment file, a weights file), which is never moved.
bool damaged_results(const ResultsStore& store) {
  const fs::path& file = store.file();
  std::error_code ec;
  if (!fs::exists(file, ec)) return false;
  if (fs::is_directory(file, ec)) {
    throw Error("results.not_a_file", fmt::format("'{}' is a folder, not a results file; give --results a file "
                                                  "path such as '{}'", file.string(), (file / "NAME.h5").string()));
  }
  bool hdf5 = false, results = false;
  try {
    auto handle = h5::open_file_read(file);
    hdf5 = true;
    results = h5::read_attr_string(handle.id(), "schema").value_or("") == "patchbay.results";
    if (results) {
      (void)store.read_experiment();
      return false;
    }
  } catch (const Error&) {
    // unreadable: damaged, if it is ours
  }
  if (!fs::is_directory(store.runs_dir(), ec) && fs::file_size(file, ec) != 0) {
    const std::string runs = store.runs_dir().filename().string() + "/";
    if (results) {
      throw Error("results.not_results",
                  fmt::format("'{}' is patchbay results that cannot be read, and there is no '{}' beside it to "
                              "rebuild it from; move it away yourself (patchbay moves only what it can rebuild) "
                              "and run again, or choose another --results path",
                              file.string(), runs));
    }
    throw Error("results.not_results",
                fmt::format("'{}' is {}, and no '{}' beside it says patchbay wrote it; patchbay moves and "
                            "overwrites only its own results: choose another --results path",
                            file.string(), hdf5 ? "an HDF5 file, but not patchbay results" : "not an HDF5 file",
                            runs));
  }
  return true;
}

}  // namespace

void ResultsStore::refuse_foreign() const { (void)damaged_results(*this); }

std::optional<fs::path> ResultsStore::set_aside_unreadable() const {
  if (!damaged_results(*this)) return std::nullopt;
  std::error_code ec;
  std::string stamp = utc_now();
  for (char& c : stamp) c = c == ':' ? '-' : c;
  const fs::path aside = file_.string() + ".unreadable-" + stamp;
  fs::rename(file_, aside, ec);
  if (ec) {
    throw Error("results.write", fmt::format("'{}' cannot be read and cannot be moved aside to '{}' ({}); "
                                             "move or delete it yourself and run again: the runs' own "
                                             "files in '{}' are kept", file_.string(), aside.string(),
                                             ec.message(), runs_dir().string()));
  }
  return aside;
}

size_t ResultsStore::restore_run_files() const {
  std::error_code ec;
  if (!fs::exists(file_, ec)) return 0;
  // Written in full into a staging folder first, which is then renamed "ready": a kill while
  // writing leaves no "ready" folder (the next run writes it again), and a kill while moving
  // the files into place leaves the rest in "ready" for the next run to move.
  const ResultsStore writing(file_.string() + ".restoring");
  const fs::path ready = file_.string() + ".restored.runs";
  if (!fs::exists(ready, ec)) {
    // One run file deleted (of several) is how a user asks for that run again: only when none
    // of R's runs has its file (R copied without R.runs/, or into an empty one) is anything
    // restored. Asked of the plan alone, so that a usual start does not read every run of R.
    const auto plan = read_experiment();
    if (!plan || std::any_of(plan->run_ids.begin(), plan->run_ids.end(), [&](const std::string& id) {
          return fs::exists(run_dir(id) / "run.h5", ec);
        })) {
      return 0;
    }
    fs::remove_all(writing.runs_dir(), ec);
    std::vector<RunRecord> started;
    for (auto& run : read_results(file_).runs) {
      if (run.status != RunStatus::planned) started.push_back(std::move(run));
    }
    if (started.empty()) return 0;
    for (const auto& run : started) writing.write_run(run);
    fs::rename(writing.runs_dir(), ready, ec);
    if (ec) {
      throw Error("results.write", fmt::format("cannot rename '{}' to '{}': {}", writing.runs_dir().string(),
                                               ready.string(), ec.message()));
    }
  }
  size_t restored = 0;
  for (const auto& entry : fs::directory_iterator(ready, ec)) {
    if (!fs::exists(entry.path() / "run.h5", ec)) continue;  // moved before a kill
    const fs::path dir = run_dir(entry.path().filename().string());
    fs::create_directories(dir, ec);
    fs::rename(entry.path() / "run.h5", dir / "run.h5", ec);
    if (ec) {
      throw Error("results.write", fmt::format("cannot move '{}' into '{}': {}", (entry.path() / "run.h5").string(),
                                               dir.string(), ec.message()));
    }
    ++restored;
  }
  fs::remove_all(ready, ec);
  return restored;
}

PublishedResults read_results(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw Error("results.not_found", fmt::format("no results file '{}'; run `patchbay run "
                                                 "EXPERIMENT.toml` first, or check the path",
                                                 path.string()));
  }
  if (fs::is_directory(path, ec)) {
    throw Error("results.not_a_file", fmt::format("'{}' is a folder; give the results file (R.h5) that "
                                                  "`patchbay run` wrote", path.string()));
  }
  PublishedResults out;
  try {
    auto file = h5::open_file_read(path);
    if (h5::read_attr_string(file.id(), "schema").value_or("") != "patchbay.results") {
      throw Error("results.not_results", fmt::format("'{}' is an HDF5 file but not patchbay "
                                                     "results (no schema attribute "
                                                     "\"patchbay.results\")", path.string()));
    }
    out.experiment = ResultsStore(path).read_experiment().value_or(ExperimentRecord{});
    auto runs = h5::open_group(file.id(), "runs");
    for (const auto& id : out.experiment.run_ids) {
      if (!h5::exists(runs.id(), id)) continue;
      auto g = h5::open_group(runs.id(), id);
      out.runs.push_back(read_run_group(g.id()));
    }
    out.experiment.axes.clear();
    for (const auto& r : out.runs) out.experiment.axes.push_back(r.axes);
  } catch (const Error& e) {
    if (e.id() == "results.not_results") throw;
    throw Error("results.corrupt",
                fmt::format("cannot read results file '{}': {}; if '{}.runs/' is there, `patchbay run "
                            "EXPERIMENT.toml --results {}` rebuilds the file from the runs' own files "
                            "(finished runs are not trained again)",
                            path.string(), e.what(), path.string(), path.string()));
  }
  return out;
}

void ResultsStore::publish(const ExperimentRecord& exp) const {
  std::error_code ec;
  if (!file_.parent_path().empty()) fs::create_directories(file_.parent_path(), ec);
  replace_file(file_, "results file", [&](const fs::path& temp) {
    {
      // Built in memory, then written as one image (h5.hpp says why).
      auto out = h5::create_memory_file(temp.string());
      h5::write_attr(out.id(), "schema", "patchbay.results");
      h5::write_attr(out.id(), "schema_version", kResultsSchemaVersion);
      h5::write_attr(out.id(), "patchbay_version", std::string(version()));
      h5::write_attr(out.id(), "git_revision", std::string(git_revision()));
      h5::write_attr(out.id(), "experiment", exp.name);
      h5::write_attr(out.id(), "updated", utc_now());

      // /sweep: the experiment as given and the plan.
      auto sweep = h5::create_group(out.id(), "sweep");
      h5::write_attr(sweep.id(), "file", exp.file);
      h5::write_attr(sweep.id(), "experiment_toml", exp.text);
      h5::write_strings(sweep.id(), "overrides", exp.overrides);
      if (!exp.shard.empty()) h5::write_attr(sweep.id(), "shard", exp.shard);
      auto plan = h5::create_group(sweep.id(), "plan");
      h5::write_strings(plan.id(), "id", exp.run_ids);
      h5::write_strings(plan.id(), "slug", exp.slugs);

      // /runs/<id>: copies of the run files; runs without one are PLANNED.
      auto runs = h5::create_group(out.id(), "runs");
      std::vector<RunRecord> records;
      for (size_t i = 0; i < exp.run_ids.size(); ++i) {
        const auto& id = exp.run_ids[i];
        const fs::path run_file = run_dir(id) / "run.h5";
        // One open per run file: read the record and copy its group from the same handle.
        // An unreadable file is listed as PLANNED (the run will be redone).
        std::optional<RunRecord> rec;
        if (fs::exists(run_file, ec)) {
          try {
            auto src = h5::open_file_read(run_file);
            auto group = h5::open_group(src.id(), "run");
            rec = read_run_group(group.id());
            h5::copy(src.id(), "run", runs.id(), id);
          } catch (const Error&) {
            rec.reset();
          }
        }
        if (rec) {
          records.push_back(*rec);
        } else {
          RunRecord planned;
          planned.id = id;
          planned.slug = i < exp.slugs.size() ? exp.slugs[i] : id;
          if (i < exp.axes.size()) planned.axes = exp.axes[i];
          auto g = h5::create_group(runs.id(), id);
          write_run_group(g.id(), planned);
          records.push_back(planned);
        }
      }

      // Each run's swept values: the plan's, or for a record read back by read_experiment()
      // (which has none: they live in the runs) those its run files recorded.
      std::vector<const std::vector<std::pair<std::string, std::string>>*> run_axes;
      for (size_t i = 0; i < records.size(); ++i) run_axes.push_back(i < exp.axes.size() ? &exp.axes[i] : &records[i].axes);
      std::vector<std::string> axis_keys;
      for (const auto* axes : run_axes) {
        for (const auto& [k, v] : *axes) {
          if (std::find(axis_keys.begin(), axis_keys.end(), k) == axis_keys.end()) axis_keys.push_back(k);
        }
      }
      // The seed, when swept, is the last axis: summary grids then end in a seed dimension
      // to average over.
      std::stable_partition(axis_keys.begin(), axis_keys.end(), [](const std::string& k) { return k != "train.seed"; });
      const auto axis_value = [&](size_t run, const std::string& key) -> std::string {
        for (const auto& [k, v] : *run_axes[run]) {
          if (k == key) return axis_value_text(v);
        }
        return "";
      };
      for (const auto& key : axis_keys) {
        std::vector<std::string> values;
        for (size_t i = 0; i < exp.run_ids.size(); ++i) values.push_back(axis_value(i, key));
        write_column(plan.id(), key, values);
      }

      // /table: one row per planned run, one 1-D dataset per column (pandas.DataFrame).
      auto table = h5::create_group(out.id(), "table");
      std::vector<std::string> ids, slugs, statuses, reasons;
      for (const auto& r : records) {
        ids.push_back(r.id);
        slugs.push_back(r.slug);
        statuses.push_back(to_string(r.status));
        reasons.push_back(r.reason);
      }
      h5::write_strings(table.id(), "id", ids);
      h5::write_strings(table.id(), "slug", slugs);
      h5::write_strings(table.id(), "status", statuses);
      h5::write_strings(table.id(), "reason", reasons);
      for (const auto& key : axis_keys) {
        std::vector<std::string> values;
        for (size_t i = 0; i < records.size(); ++i) values.push_back(axis_value(i, key));
        write_column(table.id(), key, values);
      }
      std::set<std::string> final_keys;
      for (const auto& r : records) {
        for (const auto& [k, v] : r.final) final_keys.insert(k);
      }
      std::vector<double> wall, epochs;
      for (const auto& r : records) {
        wall.push_back(r.wall_seconds);
        epochs.push_back(static_cast<double>(r.curves.size()));
      }
      h5::write_doubles(table.id(), "wall_seconds", wall);
      h5::write_doubles(table.id(), "epochs_done", epochs);
      for (const auto& key : final_keys) {
        if (h5::exists(table.id(), key)) continue;
        std::vector<double> values;
        for (const auto& r : records) {
          const auto it = r.final.find(key);
          values.push_back(it == r.final.end() ? kNaN : it->second);
        }
        h5::write_doubles(table.id(), key, values);
      }

      // /summary/<metric>: grids over the swept axes (seed last), NaN where no run finished.
      if (!axis_keys.empty()) {
        std::vector<std::vector<std::string>> levels(axis_keys.size());
        for (size_t a = 0; a < axis_keys.size(); ++a) {
          for (size_t i = 0; i < records.size(); ++i) {
            const auto v = axis_value(i, axis_keys[a]);
            if (std::find(levels[a].begin(), levels[a].end(), v) == levels[a].end()) levels[a].push_back(v);
          }
        }
        std::vector<hsize_t> dims;
        for (const auto& l : levels) dims.push_back(l.size());
        size_t cells = 1;
        for (auto d : dims) cells *= d;
        auto summary = h5::create_group(out.id(), "summary");
        auto scales = h5::create_group(summary.id(), "axes");
        for (size_t a = 0; a < axis_keys.size(); ++a) write_column(scales.id(), axis_keys[a], levels[a]);
        std::vector<size_t> cell_of(records.size());
        for (size_t i = 0; i < records.size(); ++i) {
          size_t flat = 0;
          for (size_t a = 0; a < axis_keys.size(); ++a) {
            const auto v = axis_value(i, axis_keys[a]);
            flat = flat * dims[a] +
                   static_cast<size_t>(std::find(levels[a].begin(), levels[a].end(), v) - levels[a].begin());
          }
          cell_of[i] = flat;
        }
        for (const auto& key : final_keys) {
          std::vector<double> grid(cells, kNaN);
          for (size_t i = 0; i < records.size(); ++i) {
            if (records[i].status != RunStatus::completed) continue;
            const auto it = records[i].final.find(key);
            if (it != records[i].final.end()) grid[cell_of[i]] = it->second;
          }
          h5::write_array(summary.id(), key, grid, dims);
          auto data = h5::open_dataset(summary.id(), key);
          for (size_t a = 0; a < axis_keys.size(); ++a) {
            auto scale = h5::open_dataset(scales.id(), axis_keys[a]);
            h5::attach_scale(data.id(), scale.id(), static_cast<unsigned>(a), axis_keys[a]);
          }
        }
      }
      const auto image = h5::file_image(out.id());
      write_whole_file(temp, image.data(), image.size());  // a full disk fails here, in our write
    }
    check_complete(temp, "patchbay.results");
  });
}

}  // namespace patchbay
