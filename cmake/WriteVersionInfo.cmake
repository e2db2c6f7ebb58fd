# Writes generated/version_info.hpp at build time (run by the patchbay_version_info target),
# so `patchbay --version` and every results file name the commit the binary was built from,
# with "-dirty" when the working tree had uncommitted changes. configure_file leaves the file
# untouched when nothing changed, so an unchanged revision rebuilds nothing.
#   cmake -DSOURCE_DIR=... -DTEMPLATE=... -DOUTPUT=... -DPROJECT_VERSION=... -P WriteVersionInfo.cmake
set(PATCHBAY_GIT_REVISION "unknown")
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND "${GIT_EXECUTABLE}" rev-parse --short HEAD
                  WORKING_DIRECTORY "${SOURCE_DIR}" OUTPUT_VARIABLE rev
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
  if(rc EQUAL 0 AND rev)
    set(PATCHBAY_GIT_REVISION "${rev}")
    # Tracked files changed since that commit (untracked files, e.g. results/, do not count).
    execute_process(COMMAND "${GIT_EXECUTABLE}" diff --quiet HEAD --
                    WORKING_DIRECTORY "${SOURCE_DIR}" RESULT_VARIABLE dirty ERROR_QUIET)
    if(NOT dirty EQUAL 0)
      set(PATCHBAY_GIT_REVISION "${rev}-dirty")
    endif()
  endif()
endif()
configure_file("${TEMPLATE}" "${OUTPUT}" @ONLY)
