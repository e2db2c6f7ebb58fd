// A thin RAII layer over the HDF5 C API, for the results store, the feature cache and the
// weights files (internal to the core).
//
// Only what patchbay writes: groups, scalar attributes (string / double / int64), 1-D
// datasets of doubles, int64s and strings, N-D double arrays, N-D numeric datasets of any
// HDF5 type (the weights files: float32, int64), dimension scales, and object copies
// between files. Strings are variable-length UTF-8 (h5py: .asstr()).
// Every failure throws patchbay::Error("results.hdf5", "<what> '<name>' in <file>: ...");
// HDF5's own error printing is turned off.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace patchbay::h5 {

// Owns one hid_t (file, group, dataset, attribute, space, type, plist).
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, const std::string& what);  // throws when id < 0
  Handle(Handle&& other) noexcept : id_(other.id_) { other.id_ = -1; }
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle();
  hid_t id() const { return id_; }
  explicit operator bool() const { return id_ >= 0; }
  // Closes now; false when closing failed (for a file: its last writes failed, a full disk).
  bool close();

 private:
  hid_t id_ = -1;
};

// Silences HDF5's automatic error stack printing (once per process).
void quiet();

Handle create_file(const std::filesystem::path& path);       // truncates
// A file that lives in memory (HDF5's core driver, no backing store) until file_image takes
// its bytes: HDF5 itself then never meets a full disk. Its 1.10 H5Ocopy has crashed (a
// segfault in H5T_close_real), not failed, when the disk filled in the middle of a copy.
Handle create_memory_file(const std::string& name);
// The complete image of an open file, flushed first: what the file on disk would hold.
std::vector<unsigned char> file_image(hid_t file);
Handle open_file_read(const std::filesystem::path& path);
void flush(hid_t file);

bool exists(hid_t parent, const std::string& path);
Handle create_group(hid_t parent, const std::string& name);
Handle open_group(hid_t parent, const std::string& name);
std::vector<std::string> children(hid_t group);   // link names, in name order

void write_attr(hid_t obj, const std::string& name, const std::string& value);
void write_attr(hid_t obj, const std::string& name, const char* value);
void write_attr(hid_t obj, const std::string& name, double value);
void write_attr(hid_t obj, const std::string& name, int64_t value);
std::optional<std::string> read_attr_string(hid_t obj, const std::string& name);
std::optional<double> read_attr_double(hid_t obj, const std::string& name);  // any numeric type
std::vector<std::string> attr_names(hid_t obj);

void write_doubles(hid_t parent, const std::string& name, const std::vector<double>& values);
void write_int64s(hid_t parent, const std::string& name, const std::vector<int64_t>& values);
void write_strings(hid_t parent, const std::string& name, const std::vector<std::string>& values);
// Row-major doubles of shape `dims`.
void write_array(hid_t parent, const std::string& name, const std::vector<double>& values,
                 const std::vector<hsize_t>& dims);
std::vector<double> read_doubles(hid_t parent, const std::string& name);
std::vector<std::string> read_strings(hid_t parent, const std::string& name);

// N-D numeric datasets (rank 0: a scalar). `file_type` is what the file stores (e.g.
// H5T_IEEE_F32LE), `mem_type` what `data` holds (e.g. H5T_NATIVE_FLOAT), row-major of shape
// `dims`. Returns the new dataset, for its attributes.
Handle write_nd(hid_t parent, const std::string& name, hid_t file_type, hid_t mem_type,
                const void* data, const std::vector<hsize_t>& dims);
// The shape of a dataset (empty for a scalar), and its type class (H5T_FLOAT, H5T_INTEGER...).
std::vector<hsize_t> shape_of(hid_t dataset);
H5T_class_t type_class(hid_t dataset);
// Reads the whole dataset converted to `mem_type` into `out` (room for every element).
void read_nd(hid_t dataset, hid_t mem_type, void* out);
// True when `name` under `parent` is a dataset (not a group or a named type).
bool is_dataset(hid_t parent, const std::string& name);

// Marks dataset `scale` (1-D) as a dimension scale named `label` and attaches it to
// dimension `dim` of dataset `data` (h5py: ds.dims[dim][0]; xarray reads the pairs).
void attach_scale(hid_t data, hid_t scale, unsigned dim, const std::string& label);
Handle open_dataset(hid_t parent, const std::string& name);

// Copies object `src_path` of file `src` to `dst_path` under `dst` (deep copy).
void copy(hid_t src, const std::string& src_path, hid_t dst, const std::string& dst_path);

}  // namespace patchbay::h5
