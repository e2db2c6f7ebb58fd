#include "h5.hpp"

#include <hdf5_hl.h>

#include <mutex>

#include <fmt/format.h>

#include "patchbay/error.hpp"

namespace patchbay::h5 {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw Error("results.hdf5", fmt::format("HDF5 could not {}", what));
}

hid_t check(hid_t id, const std::string& what) {
  if (id < 0) fail(what);
  return id;
}

void check_status(herr_t status, const std::string& what) {
  if (status < 0) fail(what);
}

Handle string_type() {
  Handle t(H5Tcopy(H5T_C_S1), "make a string type");
  check_status(H5Tset_size(t.id(), H5T_VARIABLE), "size a string type");
  check_status(H5Tset_cset(t.id(), H5T_CSET_UTF8), "set UTF-8");
  return t;
}

Handle scalar_space() { return Handle(H5Screate(H5S_SCALAR), "make a scalar space"); }

Handle vector_space(hsize_t n) { return Handle(H5Screate_simple(1, &n, nullptr), "make a 1-D space"); }

// Replaces an existing attribute (attributes cannot be overwritten with another type).
Handle new_attr(hid_t obj, const std::string& name, hid_t type, hid_t space) {
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  return Handle(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                "create attribute '" + name + "'");
}

}  // namespace

Handle::Handle(hid_t id, const std::string& what) : id_(check(id, what)) {}

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    this->~Handle();
    id_ = other.id_;
    other.id_ = -1;
  }
  return *this;
}

// No HDF5 shutdown at process exit. A file whose close failed (a full disk while HDF5
// completed its metadata) stays in HDF5's table, and closing it again at exit crashed the
// process (H5F__close_cb, issue "faults" #1) after patchbay had reported the full disk and
// kept the last good file. Every file patchbay writes is closed, and checked, before it is
// published; nothing is left for an exit-time close to do. Runs when the core library is
// loaded, before any other HDF5 call, as H5dont_atexit requires.
const bool kNoHdf5Atexit = H5dont_atexit() >= 0;

Handle::~Handle() { close(); }

bool Handle::close() {
  const bool ok = id_ < 0 || H5Idec_ref(id_) >= 0;
  id_ = -1;
  return ok;
}

void quiet() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

Handle create_file(const std::filesystem::path& path) {
  quiet();
  return Handle(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                "create file '" + path.string() + "'");
}

Handle create_memory_file(const std::string& name) {
  quiet();
  Handle access(H5Pcreate(H5P_FILE_ACCESS), "make file access properties");
  check_status(H5Pset_fapl_core(access.id(), 1 << 20, /*backing_store=*/0), "choose the in-memory file driver");
  return Handle(H5Fcreate(name.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access.id()),
                "create in-memory file '" + name + "'");
}

std::vector<unsigned char> file_image(hid_t file) {
  flush(file);
  const ssize_t size = H5Fget_file_image(file, nullptr, 0);
  if (size < 0) fail("measure a file image");
  std::vector<unsigned char> bytes(static_cast<size_t>(size));
  if (H5Fget_file_image(file, bytes.data(), bytes.size()) != size) fail("copy a file image");
  return bytes;
}

Handle open_file_read(const std::filesystem::path& path) {
  quiet();
  return Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "open file '" + path.string() + "'");
}

void flush(hid_t file) { check_status(H5Fflush(file, H5F_SCOPE_GLOBAL), "flush a file"); }

bool exists(hid_t parent, const std::string& path) {
  // H5Lexists needs every intermediate link to exist: walk the path.
  size_t start = 0;
  while (true) {
    const size_t slash = path.find('/', start);
    const std::string prefix = path.substr(0, slash);
    if (H5Lexists(parent, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

Handle create_group(hid_t parent, const std::string& name) {
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE), "make a property list");
  H5Pset_create_intermediate_group(lcpl.id(), 1);
  return Handle(H5Gcreate2(parent, name.c_str(), lcpl.id(), H5P_DEFAULT, H5P_DEFAULT),
                "create group '" + name + "'");
}

Handle open_group(hid_t parent, const std::string& name) {
  return Handle(H5Gopen2(parent, name.c_str(), H5P_DEFAULT), "open group '" + name + "'");
}

std::vector<std::string> children(hid_t group) {
  std::vector<std::string> names;
  H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, nullptr,
             [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
               static_cast<std::vector<std::string>*>(data)->push_back(name);
               return 0;
             },
             &names);
  return names;
}

void write_attr(hid_t obj, const std::string& name, const std::string& value) {
  auto type = string_type();
  auto space = scalar_space();
  auto attr = new_attr(obj, name, type.id(), space.id());
  const char* ptr = value.c_str();
  check_status(H5Awrite(attr.id(), type.id(), &ptr), "write attribute '" + name + "'");
}

void write_attr(hid_t obj, const std::string& name, const char* value) {
  write_attr(obj, name, std::string(value));
}

void write_attr(hid_t obj, const std::string& name, double value) {
  auto space = scalar_space();
  auto attr = new_attr(obj, name, H5T_IEEE_F64LE, space.id());
  check_status(H5Awrite(attr.id(), H5T_NATIVE_DOUBLE, &value), "write attribute '" + name + "'");
}

void write_attr(hid_t obj, const std::string& name, int64_t value) {
  auto space = scalar_space();
  auto attr = new_attr(obj, name, H5T_STD_I64LE, space.id());
  check_status(H5Awrite(attr.id(), H5T_NATIVE_INT64, &value), "write attribute '" + name + "'");
}

std::optional<std::string> read_attr_string(hid_t obj, const std::string& name) {
  if (H5Aexists(obj, name.c_str()) <= 0) return std::nullopt;
  Handle attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "open attribute '" + name + "'");
  Handle ftype(H5Aget_type(attr.id()), "type of attribute '" + name + "'");
  if (H5Tget_class(ftype.id()) != H5T_STRING) return std::nullopt;
  if (H5Tis_variable_str(ftype.id()) > 0) {
    auto type = string_type();
    char* ptr = nullptr;
    check_status(H5Aread(attr.id(), type.id(), &ptr), "read attribute '" + name + "'");
    std::string out = ptr ? ptr : "";
    H5free_memory(ptr);
    return out;
  }
  const size_t size = H5Tget_size(ftype.id());
  std::string out(size, '\0');
  check_status(H5Aread(attr.id(), ftype.id(), out.data()), "read attribute '" + name + "'");
  out.resize(out.find('\0') == std::string::npos ? size : out.find('\0'));
  return out;
}

std::optional<double> read_attr_double(hid_t obj, const std::string& name) {
  if (H5Aexists(obj, name.c_str()) <= 0) return std::nullopt;
  Handle attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "open attribute '" + name + "'");
  Handle ftype(H5Aget_type(attr.id()), "type of attribute '" + name + "'");
  const auto cls = H5Tget_class(ftype.id());
  if (cls != H5T_INTEGER && cls != H5T_FLOAT) return std::nullopt;
  double value = 0;
  check_status(H5Aread(attr.id(), H5T_NATIVE_DOUBLE, &value), "read attribute '" + name + "'");
  return value;
}

std::vector<std::string> attr_names(hid_t obj) {
  std::vector<std::string> names;
  H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, nullptr,
              [](hid_t, const char* name, const H5A_info_t*, void* data) -> herr_t {
                static_cast<std::vector<std::string>*>(data)->push_back(name);
                return 0;
              },
              &names);
  return names;
}

namespace {

template <typename T>
void write_vector(hid_t parent, const std::string& name, const std::vector<T>& values,
                  hid_t file_type, hid_t mem_type) {
  auto space = vector_space(values.size());
  Handle ds(H5Dcreate2(parent, name.c_str(), file_type, space.id(), H5P_DEFAULT, H5P_DEFAULT,
                       H5P_DEFAULT),
            "create dataset '" + name + "'");
  if (!values.empty()) {
    check_status(H5Dwrite(ds.id(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
                 "write dataset '" + name + "'");
  }
}

}  // namespace

void write_doubles(hid_t parent, const std::string& name, const std::vector<double>& values) {
  write_vector(parent, name, values, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE);
}

void write_int64s(hid_t parent, const std::string& name, const std::vector<int64_t>& values) {
  write_vector(parent, name, values, H5T_STD_I64LE, H5T_NATIVE_INT64);
}

void write_strings(hid_t parent, const std::string& name, const std::vector<std::string>& values) {
  std::vector<const char*> ptrs;
  ptrs.reserve(values.size());
  for (const auto& v : values) ptrs.push_back(v.c_str());
  auto type = string_type();
  write_vector(parent, name, ptrs, type.id(), type.id());
}

void write_array(hid_t parent, const std::string& name, const std::vector<double>& values,
                 const std::vector<hsize_t>& dims) {
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
               "make a space for '" + name + "'");
  Handle ds(H5Dcreate2(parent, name.c_str(), H5T_IEEE_F64LE, space.id(), H5P_DEFAULT, H5P_DEFAULT,
                       H5P_DEFAULT),
            "create dataset '" + name + "'");
  if (!values.empty()) {
    check_status(H5Dwrite(ds.id(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
                 "write dataset '" + name + "'");
  }
}

Handle open_dataset(hid_t parent, const std::string& name) {
  return Handle(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), "open dataset '" + name + "'");
}

std::vector<double> read_doubles(hid_t parent, const std::string& name) {
  auto ds = open_dataset(parent, name);
  Handle space(H5Dget_space(ds.id()), "space of '" + name + "'");
  const hssize_t n = H5Sget_simple_extent_npoints(space.id());
  std::vector<double> out(static_cast<size_t>(std::max<hssize_t>(n, 0)));
  if (!out.empty()) {
    check_status(H5Dread(ds.id(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()),
                 "read dataset '" + name + "'");
  }
  return out;
}

std::vector<std::string> read_strings(hid_t parent, const std::string& name) {
  auto ds = open_dataset(parent, name);
  Handle space(H5Dget_space(ds.id()), "space of '" + name + "'");
  const hssize_t n = H5Sget_simple_extent_npoints(space.id());
  std::vector<char*> ptrs(static_cast<size_t>(std::max<hssize_t>(n, 0)), nullptr);
  std::vector<std::string> out;
  if (ptrs.empty()) return out;
  auto type = string_type();
  check_status(H5Dread(ds.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()),
               "read dataset '" + name + "'");
  for (char* p : ptrs) out.emplace_back(p ? p : "");
  H5Dvlen_reclaim(type.id(), space.id(), H5P_DEFAULT, ptrs.data());
  return out;
}

Handle write_nd(hid_t parent, const std::string& name, hid_t file_type, hid_t mem_type,
                const void* data, const std::vector<hsize_t>& dims) {
  Handle space(dims.empty() ? H5Screate(H5S_SCALAR)
                            : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
               "make a space for '" + name + "'");
  Handle ds(H5Dcreate2(parent, name.c_str(), file_type, space.id(), H5P_DEFAULT, H5P_DEFAULT,
                       H5P_DEFAULT),
            "create dataset '" + name + "'");
  if (H5Sget_simple_extent_npoints(space.id()) > 0) {
    check_status(H5Dwrite(ds.id(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data),
                 "write dataset '" + name + "'");
  }
  return ds;
}

std::vector<hsize_t> shape_of(hid_t dataset) {
  Handle space(H5Dget_space(dataset), "get a dataset's space");
  const int rank = H5Sget_simple_extent_ndims(space.id());
  if (rank < 0) fail("get a dataset's rank");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0) check(H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr), "get a dataset's shape");
  return dims;
}

H5T_class_t type_class(hid_t dataset) {
  Handle type(H5Dget_type(dataset), "get a dataset's type");
  return H5Tget_class(type.id());
}

void read_nd(hid_t dataset, hid_t mem_type, void* out) {
  Handle space(H5Dget_space(dataset), "get a dataset's space");
  if (H5Sget_simple_extent_npoints(space.id()) <= 0) return;
  check_status(H5Dread(dataset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out), "read a dataset");
}

bool is_dataset(hid_t parent, const std::string& name) {
  if (H5Oexists_by_name(parent, name.c_str(), H5P_DEFAULT) <= 0) return false;
  const hid_t obj = H5Oopen(parent, name.c_str(), H5P_DEFAULT);
  if (obj < 0) return false;
  Handle owner(obj, "open '" + name + "'");
  return H5Iget_type(obj) == H5I_DATASET;
}

void attach_scale(hid_t data, hid_t scale, unsigned dim, const std::string& label) {
  if (H5DSis_scale(scale) <= 0) check_status(H5DSset_scale(scale, label.c_str()), "make scale '" + label + "'");
  check_status(H5DSattach_scale(data, scale, dim), "attach scale '" + label + "'");
  H5DSset_label(data, dim, label.c_str());
}

void copy(hid_t src, const std::string& src_path, hid_t dst, const std::string& dst_path) {
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE), "make a property list");
  H5Pset_create_intermediate_group(lcpl.id(), 1);
  check_status(H5Ocopy(src, src_path.c_str(), dst, dst_path.c_str(), H5P_DEFAULT, lcpl.id()),
               "copy '" + src_path + "' to '" + dst_path + "'");
}

}  // namespace patchbay::h5
