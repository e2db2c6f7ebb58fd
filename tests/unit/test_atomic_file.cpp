// The one atomic-write helper (framework/src/atomic_file.hpp) that checkpoints, run records,
// results, the feature cache and weights files all go through.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <set>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "atomic_file.hpp"
#include "helpers.hpp"
#include "patchbay/error.hpp"

namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& file) {
  std::ifstream in(file);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

size_t entries_in(const fs::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("atomic file: a failed write leaves the target as it was and no temporary") {
  patchbay::test::TempDir dir;
  const fs::path target = dir.path() / "out.txt";
  patchbay::replace_file(target, "note", [](const fs::path& temp) { std::ofstream(temp) << "first"; });
  CHECK(slurp(target) == "first");
  CHECK(entries_in(dir.path()) == 1);

  // A library's exception becomes io.write, naming what and where.
  try {
    patchbay::replace_file(target, "note", [](const fs::path& temp) {
      std::ofstream(temp) << "half";
      throw std::runtime_error("boom");
    });
    FAIL("no error");
  } catch (const patchbay::Error& e) {
    CHECK(e.id() == "io.write");
    CHECK(std::string(e.what()).find("note") != std::string::npos);
    CHECK(std::string(e.what()).find(target.string()) != std::string::npos);
  }
  // patchbay's own error passes through as it is.
  CHECK_THROWS_WITH_AS(patchbay::replace_file(target, "note", [](const fs::path&) {
                         throw patchbay::DataError("data.bad", "a bad input");
                       }),
                       "a bad input", patchbay::DataError);
  CHECK(slurp(target) == "first");
  CHECK(entries_in(dir.path()) == 1);
}

TEST_CASE("atomic file: every temporary name is new, and recognised as its target's") {
  patchbay::test::TempDir dir;
  const fs::path target = dir.path() / "features-ab12.h5";
  std::set<fs::path> names;
  std::vector<std::thread> threads;
  std::mutex m;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        const fs::path p = patchbay::temporary_beside(target);
        std::lock_guard<std::mutex> lock(m);
        names.insert(p);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(names.size() == 200);  // threads of one process never share a temporary
  const fs::path one = *names.begin();
  CHECK(one.parent_path() == dir.path());
  CHECK(patchbay::is_temporary_of(one, "features-ab12.h5"));
  CHECK(patchbay::is_temporary_of(one, "features-"));
  CHECK_FALSE(patchbay::is_temporary_of(one, "run.h5"));
  CHECK_FALSE(patchbay::is_temporary_of(target, "features-"));  // the target itself
  CHECK_FALSE(patchbay::is_temporary_of(dir.path() / ".features-ab12.h5", "features-"));
}

TEST_CASE("atomic file: stale temporaries are swept by age, the rest stays") {
  patchbay::test::TempDir dir;
  const auto old_file = [&](const std::string& name) {
    const fs::path p = dir.path() / name;
    std::ofstream(p) << "x";
    fs::last_write_time(p, fs::file_time_type::clock::now() - std::chrono::hours(3));
    return p;
  };
  const fs::path stale = old_file(".features-1.h5.tmp-99999-0");
  const fs::path fresh = dir.path() / ".features-2.h5.tmp-99999-1";
  std::ofstream(fresh) << "a writer is busy";
  const fs::path other = old_file(".run.h5.tmp-99999-0");
  const fs::path plain = old_file("features-1.h5");
  CHECK(patchbay::remove_stale_temporaries(dir.path(), "features-", std::chrono::hours(1)) == 1);
  CHECK_FALSE(fs::exists(stale));
  CHECK(fs::exists(fresh));
  CHECK(fs::exists(other));
  CHECK(fs::exists(plain));
  // Zero: every temporary of that target, whatever its age (a folder under the caller's lock).
  CHECK(patchbay::remove_stale_temporaries(dir.path(), "run.h5") == 1);
  CHECK_FALSE(fs::exists(other));
  CHECK(fs::exists(fresh));
}
}
