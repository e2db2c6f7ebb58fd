# patchbay_add_plugin(<name>
#     SOURCES <file>...          plugin sources
#     REGISTER <function>        void <function>(patchbay::Registrar&), defined in SOURCES
#     [VERSION <x.y.z>]          defaults to the project version
#     [LINK <target>...])        extra libraries
#
# Builds the sources once (an OBJECT library) and makes two things of them:
#   patchbay_plugin_<name>         a MODULE (lib<name>.so) with one exported C entry point,
#                                  loaded by the host through Boost.DLL;
#   patchbay_plugin_<name>_static  a static library without the entry point, so a test can
#                                  link the same code and call <function> directly.
# The entry point is generated (plugin_entry.cpp.in), so plugin authors never write it and
# plugin sources compile with exactly the flags of everything else (one shared PCH).
set(PATCHBAY_PLUGIN_HELPER_DIR "${CMAKE_CURRENT_LIST_DIR}")

function(patchbay_add_plugin name)
  cmake_parse_arguments(ARG "" "REGISTER;VERSION" "SOURCES;LINK" ${ARGN})
  if(NOT ARG_SOURCES OR NOT ARG_REGISTER)
    message(FATAL_ERROR "patchbay_add_plugin(${name}): SOURCES and REGISTER are required")
  endif()
  if(NOT ARG_VERSION)
    set(ARG_VERSION "${PROJECT_VERSION}")
  endif()
  if(TARGET patchbay::core)
    set(core patchbay::core)
  else()
    set(core patchbay_core)
  endif()

  set(objs patchbay_plugin_${name}_objs)
  add_library(${objs} OBJECT ${ARG_SOURCES})
  set_target_properties(${objs} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(${objs} PUBLIC ${core} ${ARG_LINK})
  if(COMMAND patchbay_use_pch)
    patchbay_use_pch(${objs})
  endif()

  add_library(patchbay_plugin_${name}_static STATIC $<TARGET_OBJECTS:${objs}>)
  target_link_libraries(patchbay_plugin_${name}_static PUBLIC ${core} ${ARG_LINK})

  set(PLUGIN_NAME "${name}")
  set(PLUGIN_VERSION "${ARG_VERSION}")
  set(PLUGIN_REGISTER "${ARG_REGISTER}")
  set(entry "${CMAKE_CURRENT_BINARY_DIR}/${name}_plugin_entry.cpp")
  configure_file("${PATCHBAY_PLUGIN_HELPER_DIR}/plugin_entry.cpp.in" "${entry}" @ONLY)

  set(module patchbay_plugin_${name})
  add_library(${module} MODULE $<TARGET_OBJECTS:${objs}> "${entry}")
  target_link_libraries(${module} PRIVATE ${core} ${ARG_LINK})
  set_target_properties(${module} PROPERTIES OUTPUT_NAME "${name}" PREFIX "lib")
  if(DEFINED PATCHBAY_PLUGIN_OUTPUT_DIR)
    set_target_properties(${module} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${PATCHBAY_PLUGIN_OUTPUT_DIR}")
  endif()
  # nodelete: the library is never unmapped (unloading LibTorch users crashes at exit);
  # no-undefined: a missing symbol fails the link, not the user's run.
  target_link_options(${module} PRIVATE -Wl,-z,nodelete -Wl,--no-undefined)
  # In-tree plugins are installed with the host (see PatchbayInstall.cmake).
  if(PATCHBAY_INSTALL_PLUGINS)
    set_property(GLOBAL APPEND PROPERTY PATCHBAY_INSTALLED_PLUGINS ${module})
  endif()
endfunction()
