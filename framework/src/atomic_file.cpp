#include "atomic_file.hpp"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "patchbay/error.hpp"

namespace fs = std::filesystem;

namespace patchbay {
namespace {

// Whether the folder's file system has (almost) no room left: a failed write is then
// reported as a full disk, whatever the library that failed said (LibTorch says
// "unexpected pos", HDF5 "addr overflow").
bool disk_full(const fs::path& folder) {
  struct statvfs s {};
  if (::statvfs(folder.c_str(), &s) != 0) return false;
  const double free_bytes = static_cast<double>(s.f_bavail) * static_cast<double>(s.f_frsize);
  return free_bytes < 1024.0 * 1024.0;
}

// Fault injection for the tests: PATCHBAY_TEST_KILL_WRITING="<what>:<n>" SIGKILLs this
// process at its n-th replace_file of `what` ("checkpoint", "results file", ...), after the
// temporary is complete and before the rename: the moment a crash must not tear the file.
// In a `patchbay run` worker (PATCHBAY_PROGRESS_FD set) the host is killed first, as a
// kill -9 of the whole command would.
void maybe_die_writing(const std::string& what) {
  static const char* spec = std::getenv("PATCHBAY_TEST_KILL_WRITING");
  if (spec == nullptr) return;
  const std::string s = spec;
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos || s.substr(0, colon) != what) return;
  static std::atomic<int> seen{0};
  if (++seen != std::atoi(s.c_str() + colon + 1)) return;
  if (std::getenv("PATCHBAY_PROGRESS_FD") != nullptr) ::kill(::getppid(), SIGKILL);
  ::kill(::getpid(), SIGKILL);
}

}  // namespace

constexpr const char* kTemporaryMark = ".tmp-";

fs::path temporary_beside(const fs::path& target) {
  static std::atomic<uint64_t> counter{0};
  return target.parent_path() / fmt::format(".{}{}{}-{}", target.filename().string(), kTemporaryMark,
                                            ::getpid(), counter.fetch_add(1));
}

bool is_temporary_of(const fs::path& file, const std::string& target_prefix) {
  const std::string name = file.filename().string();
  return name.size() > target_prefix.size() + 1 && name[0] == '.' &&
         name.compare(1, target_prefix.size(), target_prefix) == 0 &&
         name.find(kTemporaryMark, 1 + target_prefix.size()) != std::string::npos;
}

size_t remove_stale_temporaries(const fs::path& folder, const std::string& target_prefix,
                                std::chrono::seconds older_than) {
  size_t removed = 0;
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    if (!is_temporary_of(it->path(), target_prefix)) continue;
    std::error_code e2;
    if (older_than.count() > 0) {
      const auto when = fs::last_write_time(it->path(), e2);
      if (e2 || now - when <= older_than) continue;
    }
    if (fs::remove(it->path(), e2)) ++removed;
  }
  return removed;
}

void write_whole_file(const fs::path& file, const void* data, size_t size) {
  errno = 0;
  std::FILE* f = std::fopen(file.c_str(), "wb");
  int error = f == nullptr ? errno : 0;
  if (f != nullptr) {
    if (std::fwrite(data, 1, size, f) != size) error = errno ? errno : EIO;
    if (std::fclose(f) != 0 && error == 0) error = errno ? errno : EIO;  // buffered bytes meet the disk here
  }
  if (error != 0) {
    throw Error("io.write", fmt::format("cannot write '{}': {}", file.string(), std::strerror(error)));
  }
}

void sync_path(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void replace_file(const fs::path& target, const std::string& what,
                  const std::function<void(const fs::path& temp)>& write) {
  const fs::path temp = temporary_beside(target);
  const fs::path folder = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  // Whether the disk is full is asked before the temporary is removed: removing it frees
  // the space that would tell.
  const auto full = [&](const std::string& cause) {
    return disk_full(folder) || cause.find("No space left") != std::string::npos;
  };
  const auto fail = [&](const std::string& cause) {
    const bool no_space = full(cause);
    std::error_code ignored;
    fs::remove(temp, ignored);
    if (no_space) {
      throw Error("io.disk_full", fmt::format("no space left on the disk of '{}' while writing the {} ({}); "
                                              "free some space and run the command again: it "
                                              "continues from the last complete file",
                                              target.string(), what, cause));
    }
    throw Error("io.write", fmt::format("cannot write the {} '{}': {}; check the folder's permissions "
                                        "and free space", what, target.string(), cause));
  };
  try {
    write(temp);
  } catch (const Error& e) {
    // patchbay's own errors say what went wrong already (a corrupt input, a refused value);
    // only a full disk overrides them, being the likelier cause of a failed write.
    if (full(e.what())) fail(e.what());
    std::error_code ignored;
    fs::remove(temp, ignored);
    throw;
  } catch (const std::exception& e) {
    fail(e.what());
  }
  maybe_die_writing(what);
  const int fd = ::open(temp.c_str(), O_RDONLY);
  if (fd < 0 || ::fsync(fd) != 0) {
    const std::string cause = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    fail(cause);
  }
  ::close(fd);
  std::error_code ec;
  fs::rename(temp, target, ec);
  if (ec) fail(ec.message());
  sync_path(folder);
}

}  // namespace patchbay
