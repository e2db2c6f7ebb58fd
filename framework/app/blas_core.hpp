// Which OpenBLAS kernels this CPU deserves, for the launcher (launcher.cpp), which sets
// OPENBLAS_CORETYPE before patchbay-main loads OpenBLAS with LibTorch.
//
// Why: an OpenBLAS build older than the CPU does not recognise it and falls back to its
// oldest kernels. Debian 12's 0.3.21 runs "Prescott" (SSE3) kernels on Intel Xeon 6
// (AVX-512): fp32 GEMM 1024^2 at 32 GFLOP/s on one core instead of 93 with SkylakeX's, and
// the quick start's training 2.4x slower (bench/README.md). The flags tell what the CPU
// can run; OpenBLAS's own choice is kept unless those flags allow a better class of kernels.
//
// Policy: a value the user set is never changed (the launcher checks that first). Classes:
// 3 = AVX-512 kernels (SkylakeX, Cooperlake, SapphireRapids), 2 = AVX2 + FMA kernels
// (Haswell, Zen, SkylakeX's older siblings Skylake), 1 = anything older. The CPU's class: 3
// when it has avx512f, avx512bw, avx512vl, avx512dq and avx512cd (what SkylakeX kernels
// use), 2 with avx2 and fma, else 1. When the CPU's class is above the detected core's, the
// choice is that class's OpenBLAS core ("SkylakeX", "Haswell"); otherwise none.
#pragma once
#include <dlfcn.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace patchbay::cli {

struct BlasCoreChoice {
  std::string core;    // the OPENBLAS_CORETYPE to set; empty: keep OpenBLAS's own
  std::string reason;  // one line for the log and --version
};

// The flags of the first "flags" line of /proc/cpuinfo text.
inline std::set<std::string> cpu_flags(const std::string& cpuinfo) {
  std::istringstream in(cpuinfo);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("flags", 0) != 0) continue;
    const size_t colon = line.find(':');
    std::istringstream words(colon == std::string::npos ? std::string() : line.substr(colon + 1));
    std::set<std::string> out;
    for (std::string w; words >> w;) out.insert(w);
    return out;
  }
  return {};
}

inline int openblas_core_class(const std::string& core) {
  static const std::set<std::string> avx512 = {"SkylakeX", "Cooperlake", "SapphireRapids"};
  static const std::set<std::string> avx2 = {"Haswell", "Zen", "Skylake", "Excavator"};
  if (avx512.count(core)) return 3;
  return avx2.count(core) ? 2 : 1;
}

inline int cpu_class(const std::set<std::string>& f) {
  if (f.count("avx512f") && f.count("avx512bw") && f.count("avx512vl") && f.count("avx512dq") && f.count("avx512cd")) {
    return 3;
  }
  return f.count("avx2") && f.count("fma") ? 2 : 1;
}

// detected: openblas_get_corename() of the OpenBLAS that patchbay-main will load.
inline BlasCoreChoice choose_openblas_core(const std::string& detected, const std::set<std::string>& flags) {
  const int have = cpu_class(flags), got = openblas_core_class(detected);
  if (have <= got) return {"", "OpenBLAS chose core " + detected + ", the best this CPU's flags allow"};
  const std::string core = have == 3 ? "SkylakeX" : "Haswell";
  return {core, "OpenBLAS detected core " + detected + " (older kernels) on a CPU with " +
                    (have == 3 ? "AVX-512 F/BW/VL/DQ/CD" : "AVX2 and FMA") + ": patchbay set OPENBLAS_CORETYPE=" +
                    core + " (set OPENBLAS_CORETYPE yourself to choose another)"};
}

// The launcher's step (and the test binary's, so tests run on the product's kernels): when
// neither the user (OPENBLAS_CORETYPE) nor a parent patchbay (PATCHBAY_BLAS_CHOICE) has
// decided, ask the OpenBLAS that LibTorch links which core it detected, set
// OPENBLAS_CORETYPE when the CPU deserves better, and say why in PATCHBAY_BLAS_CHOICE.
// Returns true when it set OPENBLAS_CORETYPE (a process that has OpenBLAS loaded already
// must then re-execute itself for it to take effect).
inline bool apply_openblas_core_choice() {
  if (std::getenv("PATCHBAY_BLAS_CHOICE") != nullptr) return false;
  if (const char* set = std::getenv("OPENBLAS_CORETYPE")) {
    ::setenv("PATCHBAY_BLAS_CHOICE", (std::string("OPENBLAS_CORETYPE=") + set + " set by the user").c_str(), 1);
    return false;
  }
  void* blas = ::dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);  // Debian: libopenblas0-openmp
  if (blas == nullptr) return false;                                 // another BLAS: nothing to choose
  using CoreName = char* (*)();
  const auto corename = reinterpret_cast<CoreName>(::dlsym(blas, "openblas_get_corename"));
  if (corename == nullptr) return false;  // built for one core only (no DYNAMIC_ARCH)
  const std::string detected = corename();
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::stringstream text;
  text << cpuinfo.rdbuf();
  const auto choice = choose_openblas_core(detected, cpu_flags(text.str()));
  if (!choice.core.empty()) ::setenv("OPENBLAS_CORETYPE", choice.core.c_str(), 1);
  ::setenv("PATCHBAY_BLAS_CHOICE", choice.reason.c_str(), 1);
  return !choice.core.empty();
}

}  // namespace patchbay::cli
