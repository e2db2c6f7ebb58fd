// A shared library that is not a patchbay plugin: no entry point.
extern "C" __attribute__((visibility("default"))) int not_a_plugin(void) { return 42; }
