#include "atomic_file.hpp"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
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

}  // namespace

fs::path temporary_beside(const fs::path& target) {
  return target.parent_path() / fmt::format(".{}.tmp-{}", target.filename().string(), ::getpid());
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
