# Compiler flags, ccache, RPATH and the OpenBLAS choice, applied to every target.

# ccache as launcher when present. With a precompiled header, ccache only hits when told
# that PCH defines and header timestamps are safe to ignore (docs/platform.md).
find_program(PATCHBAY_CCACHE ccache)
if(PATCHBAY_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER
      "${CMAKE_COMMAND}" -E env
      "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
      "${PATCHBAY_CCACHE}")
endif()

add_compile_options(-Wall -Wextra -Winvalid-pch -Wnon-virtual-dtor -Woverloaded-virtual
                    # One copy of each inline static per process even across plugins that
                    # were loaded with RTLD_LOCAL; STB_GNU_UNIQUE symbols also block unloading.
                    -fno-gnu-unique)
option(PATCHBAY_WERROR "Treat warnings as errors" OFF)
if(PATCHBAY_WERROR)
  add_compile_options(-Werror)
endif()

# OpenBLAS: Debian's LibTorch calls the system BLAS through libblas.so.3. The default
# alternative is OpenBLAS's pthreads build, whose thread pool fights LibTorch's OpenMP pool
# on small machines (2 threads slower than 1). We point every binary at the OpenMP build by
# an old-style DT_RPATH, which, unlike RUNPATH, also applies to libtorch's own dependencies.
set(PATCHBAY_OPENBLAS_OPENMP_DIR "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp"
    CACHE PATH "Folder holding the OpenMP build of OpenBLAS (libblas.so.3)")
if(NOT EXISTS "${PATCHBAY_OPENBLAS_OPENMP_DIR}/libblas.so.3")
  message(WARNING "OpenBLAS OpenMP build not found in ${PATCHBAY_OPENBLAS_OPENMP_DIR}; "
                  "install libopenblas0-openmp (./setup.sh does) or matrix products will be slow.")
endif()
add_link_options(-Wl,--disable-new-dtags)

# $ORIGIN RPATH: the build tree runs without install. Executables sit in build/ (or
# build/tests), libraries in build/lib, plugins in build/plugins.
set(CMAKE_BUILD_RPATH "\$ORIGIN/lib;\$ORIGIN/../lib;${PATCHBAY_OPENBLAS_OPENMP_DIR}")
set(CMAKE_INSTALL_RPATH
    "\$ORIGIN/../${CMAKE_INSTALL_LIBDIR};\$ORIGIN/../..;${PATCHBAY_OPENBLAS_OPENMP_DIR}")
