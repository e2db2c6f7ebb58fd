// Command-line reading shared by the benchmark programs (`--name value` pairs).
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>

namespace patchbay::bench {

// The value after argv[i] (advancing i past it); exits with status 2, naming the option,
// when the command line ends first.
inline std::string next_value(int argc, char** argv, int& i) {
  if (i + 1 >= argc) {
    std::fprintf(stderr, "%s needs a value\n", argv[i]);
    std::exit(2);
  }
  return argv[++i];
}

}  // namespace patchbay::bench
