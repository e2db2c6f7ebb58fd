// PATCHBAY_API marks what the core library exports. Everything is built with hidden
// visibility, so only marked classes and functions are visible to the host and plugins;
// exception classes must be marked so their typeinfo is shared and `catch` works across
// the plugin boundary.
#pragma once
#define PATCHBAY_API __attribute__((visibility("default")))
