# `cmake --install build --prefix P` gives P/bin/patchbay, P/lib/libpatchbay_core.so,
# P/lib/patchbay/plugins/*.so, P/include/patchbay/*.hpp and a CMake package
# (P/lib/cmake/patchbay) with which a plugin builds out of tree:
#
#   find_package(patchbay REQUIRED)
#   patchbay_add_plugin(myplugin SOURCES my.cpp REGISTER register_myplugin)
include(CMakePackageConfigHelpers)

set_target_properties(patchbay_core PROPERTIES EXPORT_NAME core)
install(TARGETS patchbay_core EXPORT patchbayTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/framework/include/patchbay
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS patchbay patchbay_main RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
get_property(plugin_targets GLOBAL PROPERTY PATCHBAY_INSTALLED_PLUGINS)
install(TARGETS ${plugin_targets} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/patchbay/plugins)

set(config_dir ${CMAKE_INSTALL_LIBDIR}/cmake/patchbay)
install(EXPORT patchbayTargets NAMESPACE patchbay:: DESTINATION ${config_dir})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/patchbayConfig.cmake.in
                              ${CMAKE_BINARY_DIR}/patchbayConfig.cmake INSTALL_DESTINATION ${config_dir})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/patchbayConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/patchbayConfig.cmake ${CMAKE_BINARY_DIR}/patchbayConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/PatchbayPlugin.cmake
              ${PROJECT_SOURCE_DIR}/cmake/plugin_entry.cpp.in
        DESTINATION ${config_dir})
