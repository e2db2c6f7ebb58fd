# Every dependency comes from Debian's packages (./setup.sh installs them).
find_package(Torch REQUIRED)                       # libtorch-dev
find_package(Boost 1.74 REQUIRED COMPONENTS program_options filesystem)  # Boost.DLL is header-only
find_package(tomlplusplus REQUIRED)                # libtomlplusplus-dev
find_package(fmt REQUIRED)                         # libfmt-dev
find_package(spdlog REQUIRED)                      # libspdlog-dev
find_package(nlohmann_json 3 REQUIRED)             # nlohmann-json3-dev
find_package(HDF5 REQUIRED COMPONENTS C CXX)       # libhdf5-dev
if(PATCHBAY_BUILD_TESTS)
  find_package(doctest REQUIRED)                   # doctest-dev
endif()
