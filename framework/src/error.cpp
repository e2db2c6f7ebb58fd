#include "patchbay/error.hpp"

namespace patchbay {

Error::Error(std::string id, const std::string& message)
    : std::runtime_error(message), id_(std::move(id)) {}

// Out-of-line destructors anchor each class's vtable and typeinfo in the core library, so
// the host and every plugin agree on one type and `catch (const ConfigError&)` works across
// the plugin boundary.
Error::~Error() = default;
ConfigError::~ConfigError() = default;
PluginError::~PluginError() = default;
ShapeError::~ShapeError() = default;
DataError::~DataError() = default;

}  // namespace patchbay
