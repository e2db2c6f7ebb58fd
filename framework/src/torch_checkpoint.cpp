#include "patchbay/torch_checkpoint.hpp"

#include <cstring>
#include <fstream>
#include <memory>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "patchbay/error.hpp"

namespace fs = std::filesystem;

namespace patchbay {
namespace {

// A Python value as far as a state dict needs one. Containers are shared: the pickle's memo
// and its SETITEM / APPEND mutate the object every reference sees.
struct Value;
using Ref = std::shared_ptr<Value>;
struct Value {
  enum class Kind { none, boolean, integer, real, text, bytes, tuple, list, dict, tensor, storage, global, opaque };
  Kind kind = Kind::none;
  int64_t integer = 0;
  double real = 0.0;
  std::string text;                        // text, bytes; global / opaque: "module.name"
  std::vector<Ref> items;                  // tuple, list
  std::vector<std::pair<Ref, Ref>> entries;  // dict, in insertion order
  at::Tensor tensor;                       // tensor; storage: its bytes as a 1-D tensor
};

Ref make(Value::Kind k) {
  auto v = std::make_shared<Value>();
  v->kind = k;
  return v;
}
Ref make_text(Value::Kind k, std::string s) {
  auto v = make(k);
  v->text = std::move(s);
  return v;
}

std::string kind_name(const Value& v) {
  switch (v.kind) {
    case Value::Kind::none: return "None";
    case Value::Kind::boolean: return "a bool";
    case Value::Kind::integer: return "an int";
    case Value::Kind::real: return "a float";
    case Value::Kind::text: return "a string";
    case Value::Kind::bytes: return "bytes";
    case Value::Kind::tuple: return "a tuple";
    case Value::Kind::list: return "a list";
    case Value::Kind::dict: return fmt::format("a dict of {}", v.entries.size());
    case Value::Kind::tensor: return "a tensor";
    case Value::Kind::storage: return "a storage";
    case Value::Kind::global: return "the class " + v.text;
    case Value::Kind::opaque: return "a " + v.text + " object";
  }
  return "?";
}

c10::ScalarType storage_dtype(const std::string& name) {  // "torch.FloatStorage"
  static const std::map<std::string, c10::ScalarType> types = {
      {"torch.FloatStorage", at::kFloat},     {"torch.DoubleStorage", at::kDouble},
      {"torch.HalfStorage", at::kHalf},       {"torch.BFloat16Storage", at::kBFloat16},
      {"torch.LongStorage", at::kLong},       {"torch.IntStorage", at::kInt},
      {"torch.ShortStorage", at::kShort},     {"torch.CharStorage", at::kChar},
      {"torch.ByteStorage", at::kByte},       {"torch.BoolStorage", at::kBool},
      {"torch.UntypedStorage", at::kByte}};
  const auto it = types.find(name);
  return it == types.end() ? at::ScalarType::Undefined : it->second;
}

// The state-dict subset of Python's pickle protocols 2-5 (Lib/pickletools.py documents each
// opcode), over one checkpoint's data.pkl.
class Unpickler {
 public:
  Unpickler(caffe2::serialize::PyTorchStreamReader& zip, std::string bytes, std::string where)
      : zip_(zip), in_(std::move(bytes)), where_(std::move(where)) {}

  Ref run() {
    while (true) {
      const uint8_t op = byte();
      if (op == '.') break;  // STOP
      step(op);
    }
    if (stack_.size() != 1) fail("the pickle ends with an unbalanced stack");
    return stack_.back();
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("weights.unreadable", fmt::format("'{}' is not a checkpoint patchbay can read: {} (at byte {} of "
                                                  "its pickle)", where_, what, pos_));
  }
  uint8_t byte() {
    if (pos_ >= in_.size()) fail("the pickle is truncated");
    return static_cast<uint8_t>(in_[pos_++]);
  }
  std::string take(size_t n) {
    if (n > in_.size() - pos_) fail("the pickle is truncated");
    std::string s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  uint64_t little(size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(byte()) << (8 * i);
    return v;
  }
  std::string line() {
    const size_t end = in_.find('\n', pos_);
    if (end == std::string::npos) fail("the pickle is truncated");
    std::string s = in_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }
  Ref pop() {
    if (stack_.empty() || stack_.size() <= (marks_.empty() ? 0 : marks_.back())) fail("the pickle pops an empty stack");
    Ref v = stack_.back();
    stack_.pop_back();
    return v;
  }
  std::vector<Ref> pop_to_mark() {
    if (marks_.empty()) fail("the pickle closes a mark it never opened");
    std::vector<Ref> items(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  Ref& top() {
    if (stack_.empty()) fail("the pickle reads an empty stack");
    return stack_.back();
  }
  Ref tuple(std::vector<Ref> items) {
    auto t = make(Value::Kind::tuple);
    t->items = std::move(items);
    return t;
  }
  void memo_put(uint64_t key) { memo_[key] = top(); }
  Ref memo_get(uint64_t key) {
    const auto it = memo_.find(key);
    if (it == memo_.end()) fail(fmt::format("the pickle refers to memo {} it never stored", key));
    return it->second;
  }
  void set_items(Ref& dict, const std::vector<Ref>& kv) {
    if (dict->kind != Value::Kind::dict) return;  // an object's state: not needed
    for (size_t i = 0; i + 1 < kv.size(); i += 2) dict->entries.emplace_back(kv[i], kv[i + 1]);
  }
  void append(Ref& list, const std::vector<Ref>& items) {
    if (list->kind == Value::Kind::list) list->items.insert(list->items.end(), items.begin(), items.end());
  }

  void step(uint8_t op);
  Ref call(const Ref& callable, const Ref& args);
  Ref persistent(const Ref& pid);
  Ref rebuild_tensor(const std::vector<Ref>& args);

  caffe2::serialize::PyTorchStreamReader& zip_;
  std::string in_;
  std::string where_;
  size_t pos_ = 0;
  std::vector<Ref> stack_;
  std::vector<size_t> marks_;
  std::map<uint64_t, Ref> memo_;
  std::map<std::string, Ref> storages_;  // record key -> storage (tensors share them)
};

void Unpickler::step(uint8_t op) {
  using K = Value::Kind;
  switch (op) {
    case 0x80: byte(); break;            // PROTO
    case 0x95: little(8); break;         // FRAME: a length hint
    case '(': marks_.push_back(stack_.size()); break;  // MARK
    case 'N': stack_.push_back(make(K::none)); break;
    case 0x88: case 0x89: {              // NEWTRUE, NEWFALSE
      auto v = make(K::boolean);
      v->integer = op == 0x88;
      stack_.push_back(v);
      break;
    }
    case 'J': case 'K': case 'M': {      // BININT (int32), BININT1, BININT2
      auto v = make(K::integer);
      v->integer = op == 'J' ? static_cast<int32_t>(little(4)) : static_cast<int64_t>(little(op == 'K' ? 1 : 2));
      stack_.push_back(v);
      break;
    }
    case 0x8a: {                         // LONG1: little-endian two's complement
      const size_t n = byte();
      if (n > 8) fail("an integer wider than 64 bits");
      uint64_t u = little(n);
      if (n > 0 && n < 8 && (u >> (8 * n - 1)) & 1) u |= ~uint64_t{0} << (8 * n);
      auto v = make(K::integer);
      v->integer = static_cast<int64_t>(u);
      stack_.push_back(v);
      break;
    }
    case 'G': {                          // BINFLOAT: big-endian double
      uint64_t u = 0;
      for (int i = 0; i < 8; ++i) u = (u << 8) | byte();
      auto v = make(K::real);
      std::memcpy(&v->real, &u, sizeof u);
      stack_.push_back(v);
      break;
    }
    case 'X': stack_.push_back(make_text(K::text, take(little(4)))); break;     // BINUNICODE
    case 0x8c: stack_.push_back(make_text(K::text, take(byte()))); break;      // SHORT_BINUNICODE
    case 0x8d: stack_.push_back(make_text(K::text, take(little(8)))); break;   // BINUNICODE8
    case 'T': stack_.push_back(make_text(K::text, take(little(4)))); break;     // BINSTRING
    case 'U': stack_.push_back(make_text(K::text, take(byte()))); break;       // SHORT_BINSTRING
    case 'B': stack_.push_back(make_text(K::bytes, take(little(4)))); break;    // BINBYTES
    case 'C': stack_.push_back(make_text(K::bytes, take(byte()))); break;      // SHORT_BINBYTES
    case ')': stack_.push_back(tuple({})); break;                             // EMPTY_TUPLE
    case 't': stack_.push_back(tuple(pop_to_mark())); break;                  // TUPLE
    case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
      std::vector<Ref> items(op - 0x84);
      for (size_t i = items.size(); i-- > 0;) items[i] = pop();
      stack_.push_back(tuple(std::move(items)));
      break;
    }
    case ']': stack_.push_back(make(K::list)); break;   // EMPTY_LIST
    case 'l': {                                          // LIST
      auto l = make(K::list);
      l->items = pop_to_mark();
      stack_.push_back(l);
      break;
    }
    case '}': stack_.push_back(make(K::dict)); break;   // EMPTY_DICT
    case 'd': {                                          // DICT
      auto d = make(K::dict);
      set_items(d, pop_to_mark());
      stack_.push_back(d);
      break;
    }
    case 'a': {  // APPEND
      Ref v = pop();
      append(top(), {v});
      break;
    }
    case 'e': {  // APPENDS
      auto items = pop_to_mark();
      append(top(), items);
      break;
    }
    case 's': {  // SETITEM
      Ref v = pop(), k = pop();
      set_items(top(), {k, v});
      break;
    }
    case 'u': {  // SETITEMS
      auto kv = pop_to_mark();
      set_items(top(), kv);
      break;
    }
    case 'q': memo_put(byte()); break;       // BINPUT
    case 'r': memo_put(little(4)); break;    // LONG_BINPUT
    case 0x94: memo_put(memo_.size()); break;  // MEMOIZE
    case 'h': stack_.push_back(memo_get(byte())); break;     // BINGET
    case 'j': stack_.push_back(memo_get(little(4))); break;  // LONG_BINGET
    case 'c': {                                              // GLOBAL
      std::string module = line();
      stack_.push_back(make_text(K::global, module + "." + line()));
      break;
    }
    case 0x93: {  // STACK_GLOBAL
      Ref name = pop(), module = pop();
      stack_.push_back(make_text(K::global, module->text + "." + name->text));
      break;
    }
    case 'R': {  // REDUCE
      Ref args = pop(), callable = pop();
      stack_.push_back(call(callable, args));
      break;
    }
    case 0x81: {  // NEWOBJ
      pop();  // its arguments
      Ref cls = pop();
      stack_.push_back(make_text(K::opaque, cls->text));
      break;
    }
    case 'b': pop(); break;  // BUILD: an object's state (OrderedDict's _metadata); not needed
    case 'Q': {              // BINPERSID
      Ref pid = pop();
      stack_.push_back(persistent(pid));
      break;
    }
    default: fail(fmt::format("opcode 0x{:02x}, which a state dict does not use", op));
  }
}

// What calling a class or function would give; only the state dict's own are evaluated.
Ref Unpickler::call(const Ref& callable, const Ref& args) {
  using K = Value::Kind;
  const std::string& name = callable->text;
  if (callable->kind != K::global) return make_text(K::opaque, "result");
  if (name == "collections.OrderedDict") return make(K::dict);
  if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
    return rebuild_tensor(args->items);
  }
  if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") {
    if (args->items.empty() || args->items[0]->kind != K::tensor) fail("a parameter without its tensor");
    return args->items[0];
  }
  if (name == "torch._tensor._rebuild_from_type_v2") {  // (function, type, args, state)
    if (args->items.size() < 3) fail("_rebuild_from_type_v2 with too few arguments");
    return call(args->items[0], args->items[2]);
  }
  return make_text(K::opaque, name);
}

// ('storage', storage class, key, location, numel): the record data/<key>, read once.
Ref Unpickler::persistent(const Ref& pid) {
  using K = Value::Kind;
  if (pid->kind != K::tuple || pid->items.size() < 5 || pid->items[0]->text != "storage") {
    fail("a persistent id that is not a tensor storage");
  }
  const std::string& key = pid->items[2]->text;
  if (const auto it = storages_.find(key); it != storages_.end()) return it->second;
  const c10::ScalarType dtype = storage_dtype(pid->items[1]->text);
  if (dtype == at::ScalarType::Undefined) fail(fmt::format("a storage of type {}", pid->items[1]->text));
  const std::string record = "data/" + key;
  if (!zip_.hasRecord(record)) fail(fmt::format("the storage record '{}' is missing", record));
  auto [data, size] = zip_.getRecord(record);
  const size_t element = c10::elementSize(dtype);
  at::Tensor bytes = at::empty({static_cast<int64_t>(size / element)}, at::TensorOptions().dtype(dtype));
  if (size > 0) std::memcpy(bytes.data_ptr(), data.get(), size - size % element);
  auto v = make(K::storage);
  v->tensor = bytes;
  storages_[key] = v;
  return v;
}

std::vector<int64_t> ints_of(const Ref& t) {
  std::vector<int64_t> out;
  for (const auto& i : t->items) out.push_back(i->integer);
  return out;
}

// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata]):
// a contiguous copy of the view, so no tensor keeps a whole shared storage alive.
Ref Unpickler::rebuild_tensor(const std::vector<Ref>& args) {
  if (args.size() < 4 || args[0]->kind != Value::Kind::storage) fail("a tensor without its storage");
  const at::Tensor& storage = args[0]->tensor;
  const auto sizes = ints_of(args[2]), strides = ints_of(args[3]);
  const int64_t offset = args[1]->integer;
  int64_t last = offset;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == 0) last = -1;
    if (last >= 0) last += (sizes[d] - 1) * strides[d];
  }
  if (sizes.size() != strides.size() || (last >= 0 && last >= storage.numel())) fail("a tensor that reaches past its storage");
  auto v = make(Value::Kind::tensor);
  v->tensor = storage.as_strided(sizes, strides, offset).clone(at::MemoryFormat::Contiguous);
  return v;
}

// The state dict: the top-level dict when it holds tensors, else the first of the usual keys
// that does. "Mostly tensors" tolerates the odd int an old training loop left in one.
const Value* find_state_dict(const Value& top, std::string& nested_under) {
  if (top.kind != Value::Kind::dict) return nullptr;
  const auto tensors = [](const Value& d) {
    size_t n = 0;
    for (const auto& [k, v] : d.entries) n += v->kind == Value::Kind::tensor;
    return n;
  };
  if (tensors(top) > 0 && 2 * tensors(top) >= top.entries.size()) return &top;
  for (const char* key : {"state_dict", "model", "model_state_dict", "module", "net", "network"}) {
    for (const auto& [k, v] : top.entries) {
      if (k->text == key && v->kind == Value::Kind::dict && tensors(*v) > 0) {
        nested_under = key;
        return v.get();
      }
    }
  }
  return nullptr;
}

std::string describe_top(const Value& top, const std::string& file) {
  if (top.kind == Value::Kind::opaque) {
    return fmt::format("'{}' holds a pickled Python object ({}), not a state dict: in Python, save "
                       "model.state_dict() instead (torch.save(model.state_dict(), path))", file, top.text);
  }
  if (top.kind != Value::Kind::dict) {
    return fmt::format("'{}' holds {}, not a state dict (a dict of name -> tensor)", file, kind_name(top));
  }
  std::vector<std::string> keys;
  for (const auto& [k, v] : top.entries) {
    if (keys.size() == 12) {
      keys.push_back("...");
      break;
    }
    keys.push_back(fmt::format("'{}' ({})", k->text, kind_name(*v)));
  }
  return fmt::format("'{}' holds a dict with no tensors at its top nor under 'state_dict', 'model', "
                     "'model_state_dict', 'module', 'net' or 'network': its keys are {}; save the state dict "
                     "alone (torch.save(model.state_dict(), path))", file, fmt::join(keys, ", "));
}

}  // namespace

bool looks_like_torch_checkpoint(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "PK\x03\x04", 4) == 0;
}

TorchCheckpoint read_torch_checkpoint(const fs::path& file) {
  if (!fs::exists(file)) {
    throw Error("weights.not_found", fmt::format("checkpoint '{}' does not exist", file.string()));
  }
  if (!looks_like_torch_checkpoint(file)) {
    throw Error("weights.unreadable",
                fmt::format("'{}' is not a zip checkpoint of torch.save (PyTorch >= 1.6); a checkpoint in the "
                            "legacy format loads after re-saving it in Python: torch.save(torch.load(path, "
                            "map_location='cpu'), 'new.pth')", file.string()));
  }
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> zip;
  std::string pickle;
  try {
    zip = std::make_unique<caffe2::serialize::PyTorchStreamReader>(file.string());
    if (zip->hasRecord("byteorder")) {
      auto [order, n] = zip->getRecord("byteorder");
      if (std::string(static_cast<const char*>(order.get()), n) != "little") {
        throw Error("weights.unreadable", fmt::format("'{}' was saved on a big-endian machine", file.string()));
      }
    }
    if (!zip->hasRecord("data.pkl")) {
      throw Error("weights.unreadable",
                  fmt::format("'{}' is a zip file without data.pkl: not a torch.save checkpoint (a TorchScript "
                              "archive holds code, not a state dict; save model.state_dict() instead)",
                              file.string()));
    }
    auto [data, size] = zip->getRecord("data.pkl");
    pickle.assign(static_cast<const char*>(data.get()), size);
  } catch (const c10::Error& e) {  // LibTorch's message, without its stack trace
    throw Error("weights.unreadable", fmt::format("cannot read '{}' as a torch.save checkpoint: {}", file.string(),
                                                  e.what_without_backtrace()));
  }
  Ref top;
  try {
    top = Unpickler(*zip, std::move(pickle), file.string()).run();
  } catch (const c10::Error& e) {
    throw Error("weights.unreadable", fmt::format("cannot read a tensor of '{}': {}", file.string(),
                                                  e.what_without_backtrace()));
  }
  TorchCheckpoint out;
  const Value* state = find_state_dict(*top, out.nested_under);
  if (!state) throw Error("weights.unreadable", describe_top(*top, file.string()));
  bool all_prefixed = true;
  for (const auto& [k, v] : state->entries) {
    if (v->kind != Value::Kind::tensor) continue;
    all_prefixed = all_prefixed && k->text.rfind("module.", 0) == 0;
  }
  if (all_prefixed) out.removed_prefix = "module.";
  for (const auto& [k, v] : state->entries) {
    if (v->kind != Value::Kind::tensor) continue;  // an int an old training loop left in it
    std::string name = k->text.substr(out.removed_prefix.size());
    if (!out.tensors.emplace(name, v->tensor).second) {
      throw Error("weights.unreadable", fmt::format("'{}' holds the tensor '{}' twice", file.string(), name));
    }
  }
  return out;
}

}  // namespace patchbay
