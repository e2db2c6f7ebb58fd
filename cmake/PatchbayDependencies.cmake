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
pkg_check_modules(FLUIDSYNTH REQUIRED IMPORTED_TARGET fluidsynth)  # libfluidsynth-dev (instruments)
# LibTorch's distributed package (c10d, ProcessGroupGloo) is inside libtorch_cpu.so, but its
# headers include Gloo's: only framework/src/distributed.cpp needs them (one run on several
# processes). Header-only use: nothing links libgloo directly.
find_path(GLOO_INCLUDE_DIR gloo/algorithm.h)         # libgloo-dev
if(NOT GLOO_INCLUDE_DIR)
  message(FATAL_ERROR "Gloo's headers (gloo/algorithm.h) were not found: install libgloo-dev "
                      "(./setup.sh does), which LibTorch's c10d headers include")
endif()
# The General MIDI soundfont the instruments dataset renders with (fluid-soundfont-gm); read at
# run time, so a missing file is only a warning here. --soundfont / dataset.soundfont override it.
set(PATCHBAY_SOUNDFONT "/usr/share/sounds/sf2/FluidR3_GM.sf2" CACHE FILEPATH
    "default soundfont of the built-in instruments dataset")
if(NOT EXISTS "${PATCHBAY_SOUNDFONT}")
  message(WARNING "PATCHBAY_SOUNDFONT '${PATCHBAY_SOUNDFONT}' does not exist: install "
                  "fluid-soundfont-gm (./setup.sh) before generating the instruments dataset")
endif()
if(PATCHBAY_BUILD_TESTS)
  find_package(doctest REQUIRED)                   # doctest-dev
endif()
