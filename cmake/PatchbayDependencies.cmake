# Every dependency comes from Debian's packages (./setup.sh installs them).
find_package(Torch REQUIRED)                       # libtorch-dev
find_package(Boost 1.74 REQUIRED COMPONENTS program_options filesystem)  # Boost.DLL is header-only
find_package(tomlplusplus REQUIRED)                # libtomlplusplus-dev
find_package(fmt REQUIRED)                         # libfmt-dev
find_package(spdlog REQUIRED)                      # libspdlog-dev
find_package(nlohmann_json 3 REQUIRED)             # nlohmann-json3-dev
find_package(HDF5 REQUIRED COMPONENTS C CXX HL)       # libhdf5-dev
# Audio decoding and resampling. Debian 12's libsndfile1-dev ships no CMake config (only
# sndfile.pc), and libsoxr-dev only soxr.pc: both come through pkg-config.
find_package(PkgConfig REQUIRED)                   # pkg-config
pkg_check_modules(SNDFILE REQUIRED IMPORTED_TARGET sndfile)  # libsndfile1-dev
pkg_check_modules(SOXR REQUIRED IMPORTED_TARGET soxr)        # libsoxr-dev
pkg_check_modules(STB REQUIRED IMPORTED_TARGET stb)          # libstb-dev (PNG images)
pkg_check_modules(ESPEAK REQUIRED IMPORTED_TARGET espeak-ng)  # libespeak-ng-dev (keywords voices)
if(PATCHBAY_BUILD_TESTS)
  find_package(doctest REQUIRED)                   # doctest-dev
endif()
