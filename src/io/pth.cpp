#include "io/pth.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "io/mapped_file.h"
#include "io/zip_reader.h"

namespace td {

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Values the restricted unpickler can build. They live in an arena owned by the unpickler and point at each other
// with raw pointers, so the cycles a hostile pickle can make (a dict put into itself) cannot leak or recurse on free.

enum class Kind { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor };

// The globals a state dict needs; everything else is refused when the GLOBAL opcode names it.
enum class Fn { OrderedDict, RebuildTensorV2, RebuildTensorV3, RebuildParameter, RebuildParameterWithState,
                StorageType, DTypeObj };

struct Value {
  Kind kind = Kind::None;
  int64_t i = 0;  // Int, Bool
  double f = 0;
  std::string s;  // Str, Bytes; Global: "module.name"
  std::vector<Value*> items;                       // Tuple, List
  std::vector<std::pair<Value*, Value*>> entries;  // Dict, in insertion order
  Fn fn = Fn::OrderedDict;                         // Global
  DType dtype = DType::F32;                        // Global StorageType / DTypeObj; Storage
  bool untyped = false;                            // Global StorageType / Storage: UntypedStorage (bytes)
  PickleStorage storage;                           // Storage
  Tensor tensor;                                   // Tensor
};

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "?";
}

struct StorageName {
  const char* name;
  DType dtype;
};
// torch.<X>Storage (legacy typed storages, still what torch 2.x writes for these dtypes).
const StorageName kStorageTypes[] = {
    {"FloatStorage", DType::F32}, {"DoubleStorage", DType::F64}, {"HalfStorage", DType::F16},
    {"BFloat16Storage", DType::BF16}, {"CharStorage", DType::I8}, {"ByteStorage", DType::U8},
    {"ShortStorage", DType::I16}, {"IntStorage", DType::I32}, {"LongStorage", DType::I64},
    {"BoolStorage", DType::Bool},
};
// torch.<dtype> objects (the dtype argument of _rebuild_tensor_v3, used with UntypedStorage, e.g. for fp8).
const StorageName kDTypes[] = {
    {"float32", DType::F32}, {"float", DType::F32}, {"float64", DType::F64}, {"double", DType::F64},
    {"float16", DType::F16}, {"half", DType::F16}, {"bfloat16", DType::BF16}, {"int8", DType::I8},
    {"uint8", DType::U8}, {"int16", DType::I16}, {"short", DType::I16}, {"int32", DType::I32},
    {"int", DType::I32}, {"int64", DType::I64}, {"long", DType::I64}, {"bool", DType::Bool},
    {"float8_e4m3fn", DType::F8E4M3}, {"float8_e5m2", DType::F8E5M2},
};

constexpr int64_t kMaxNumel = int64_t(1) << 48;
constexpr int kMaxDims = 32;
constexpr size_t kMaxMemo = size_t(1) << 24;
constexpr int kMaxNesting = 32;
constexpr size_t kMaxVisits = size_t(1) << 22;

class Unpickler {
 public:
  Unpickler(const unsigned char* data, size_t size, const std::string& source, const StorageResolver& resolve)
      : d_(data), n_(size), source_(source), resolve_(resolve) {}

  Value* run();

 private:
  // ---- input ----
  [[noreturn]] void bad(const std::string& msg) const { fail(source_, cat("pickle (byte ", op_pos_, "): ", msg)); }
  const unsigned char* take(size_t k) {
    if (k > n_ - pos_) bad("truncated pickle data");
    const unsigned char* p = d_ + pos_;
    pos_ += k;
    return p;
  }
  uint8_t u8() { return *take(1); }
  uint16_t u16() {
    const unsigned char* p = take(2);
    return uint16_t(p[0] | (p[1] << 8));
  }
  uint32_t u32() {
    const unsigned char* p = take(4);
    return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
  }
  uint64_t u64() {
    uint64_t lo = u32();
    return lo | (uint64_t(u32()) << 32);
  }
  std::string line() {
    size_t start = pos_;
    while (pos_ < n_ && d_[pos_] != '\n') pos_++;
    if (pos_ >= n_) bad("truncated pickle data (unterminated GLOBAL line)");
    std::string s(reinterpret_cast<const char*>(d_ + start), pos_ - start);
    pos_++;
    return s;
  }
  std::string bytes(uint64_t k) {
    if (k > n_ - pos_) bad(cat("string of ", k, " bytes runs past the end of the pickle"));
    return std::string(reinterpret_cast<const char*>(take(size_t(k))), size_t(k));
  }

  // ---- values and stack ----
  Value* make(Kind k) {
    arena_.push_back(std::make_unique<Value>());
    arena_.back()->kind = k;
    return arena_.back().get();
  }
  Value* make_int(int64_t v) {
    Value* x = make(Kind::Int);
    x->i = v;
    return x;
  }
  Value* make_str(std::string s, Kind k = Kind::Str) {
    Value* x = make(k);
    x->s = std::move(s);
    return x;
  }
  void push(Value* v) { stack_.push_back(v); }
  Value* pop() {
    if (stack_.size() <= stack_floor()) bad("stack underflow (malformed pickle)");
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value* top() {
    if (stack_.size() <= stack_floor()) bad("stack underflow (malformed pickle)");
    return stack_.back();
  }
  size_t stack_floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<Value*> pop_mark() {
    if (marks_.empty()) bad("MARK expected (malformed pickle)");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + long(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  void memo_put(uint64_t idx) {
    if (memo_.size() >= kMaxMemo && !memo_.count(idx)) bad("too many memo entries");
    memo_[idx] = top();
  }
  Value* memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) bad(cat("memo entry ", idx, " read before it was written"));
    return it->second;
  }
  Value* make_tuple(std::vector<Value*> items) {
    Value* t = make(Kind::Tuple);
    t->items = std::move(items);
    return t;
  }

  // ---- semantics ----
  Value* global(const std::string& module, const std::string& name);
  Value* call(Value* fn, Value* args);
  Value* persistent_load(Value* pid);
  Value* rebuild_tensor(const std::vector<Value*>& a, DType dt, bool untyped_ok, const char* what);
  int64_t as_int(Value* v, const char* what) {
    if (v->kind != Kind::Int && v->kind != Kind::Bool) bad(cat(what, " must be an int, got ", kind_name(v->kind)));
    return v->i;
  }
  Shape as_shape(Value* v, const char* what) {
    if (v->kind != Kind::Tuple && v->kind != Kind::List)
      bad(cat(what, " must be a tuple, got ", kind_name(v->kind)));
    if (v->items.size() > size_t(kMaxDims)) bad(cat(what, " has ", v->items.size(), " dims"));
    Shape s;
    for (Value* x : v->items) s.push_back(as_int(x, what));
    return s;
  }
  Value* dict_of(Value* v, const char* op) {
    if (v->kind != Kind::Dict) bad(cat(op, " on a ", kind_name(v->kind), ", expected a dict"));
    return v;
  }

  const unsigned char* d_;
  size_t n_, pos_ = 0, op_pos_ = 0;
  std::string source_;
  const StorageResolver& resolve_;
  std::vector<std::unique_ptr<Value>> arena_;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
  std::map<std::string, PickleStorage> storages_;  // key -> bytes, resolved once
};

Value* Unpickler::global(const std::string& module, const std::string& name) {
  Value* g = make(Kind::Global);
  g->s = module + "." + name;
  if (module == "collections" && name == "OrderedDict") {
    g->fn = Fn::OrderedDict;
    return g;
  }
  if (module == "torch._utils") {
    if (name == "_rebuild_tensor_v2") g->fn = Fn::RebuildTensorV2;
    else if (name == "_rebuild_tensor_v3") g->fn = Fn::RebuildTensorV3;
    else if (name == "_rebuild_parameter") g->fn = Fn::RebuildParameter;
    else if (name == "_rebuild_parameter_with_state") g->fn = Fn::RebuildParameterWithState;
    else bad(cat("global '", g->s, "' is not supported (only plain tensors and parameters can be loaded)"));
    return g;
  }
  if ((module == "torch" || module == "torch.storage") && name == "UntypedStorage") {
    g->fn = Fn::StorageType;
    g->untyped = true;
    g->dtype = DType::U8;
    return g;
  }
  if (module == "torch") {
    for (auto& st : kStorageTypes)
      if (name == st.name) {
        g->fn = Fn::StorageType;
        g->dtype = st.dtype;
        return g;
      }
    for (auto& dt : kDTypes)
      if (name == dt.name) {
        g->fn = Fn::DTypeObj;
        g->dtype = dt.dtype;
        return g;
      }
    if (name.size() > 7 && name.compare(name.size() - 7, 7, "Storage") == 0)
      bad(cat("unsupported storage type 'torch.", name, "' (supported: f32, f64, f16, bf16, int8/16/32/64, uint8, "
              "bool, and fp8 through UntypedStorage)"));
  }
  bad(cat("refusing to load: the pickle references global '", g->s,
          "', which a state dict never needs (it could execute code). Only collections.OrderedDict, "
          "torch._utils._rebuild_tensor_v2/_v3, _rebuild_parameter and torch storage/dtype types are allowed"));
}

Value* Unpickler::persistent_load(Value* pid) {
  // torch.save: ('storage', storage_type, key, location, numel); numel counts elements of the storage type
  // (bytes for UntypedStorage).
  if (pid->kind != Kind::Tuple || pid->items.size() != 5 || pid->items[0]->kind != Kind::Str ||
      pid->items[0]->s != "storage")
    bad("persistent id is not a ('storage', type, key, location, numel) tuple");
  Value* type = pid->items[1];
  if (type->kind != Kind::Global || type->fn != Fn::StorageType) bad("persistent id does not name a storage type");
  if (pid->items[2]->kind != Kind::Str) bad("storage key is not a string");
  const std::string& key = pid->items[2]->s;
  if (key.empty() || key.size() > 64) bad("bad storage key");
  for (char c : key)
    if (!(std::isalnum((unsigned char)c) || c == '_')) bad(cat("bad storage key '", key, "'"));
  int64_t numel = as_int(pid->items[4], "storage size");
  size_t isz = dtype_size(type->dtype);
  if (numel < 0 || numel > kMaxNumel) bad(cat("storage '", key, "' has a bad size ", numel));
  size_t nbytes = size_t(numel) * isz;
  auto it = storages_.find(key);
  if (it == storages_.end()) {
    PickleStorage st = resolve_(key, nbytes);
    if (st.bytes < nbytes || (nbytes && !st.data))
      fail(source_, cat("storage '", key, "' holds ", st.bytes, " bytes but the pickle declares ", nbytes));
    it = storages_.emplace(key, std::move(st)).first;
  } else if (it->second.bytes < nbytes) {
    bad(cat("storage '", key, "' is referenced with a larger size than it holds"));
  }
  Value* v = make(Kind::Storage);
  v->storage = it->second;
  v->storage.bytes = nbytes;  // views may only reach what this reference declares
  v->dtype = type->dtype;
  v->untyped = type->untyped;
  v->s = key;
  return v;
}

Value* Unpickler::rebuild_tensor(const std::vector<Value*>& a, DType dt, bool v3, const char* what) {
  // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, dtype (v3)][, metadata])
  Value* st = a[0];
  if (st->kind != Kind::Storage) bad(cat(what, ": first argument is a ", kind_name(st->kind), ", not a storage"));
  if (!v3) {
    if (st->untyped) bad(cat(what, ": UntypedStorage needs _rebuild_tensor_v3's dtype"));
    dt = st->dtype;
  } else if (!st->untyped && st->dtype != dt) {
    bad(cat(what, ": typed storage of ", dtype_name(st->dtype), " rebuilt as ", dtype_name(dt)));
  }
  int64_t offset = as_int(a[1], "storage offset");
  Shape size = as_shape(a[2], "tensor size");
  Shape stride = as_shape(a[3], "tensor stride");
  std::string subject = cat("storage '", st->s, "'");
  if (size.size() != stride.size())
    bad(cat(subject, ": size ", shape_str(size), " and stride ", shape_str(stride), " differ in rank"));
  const size_t isz = dtype_size(dt);
  const int64_t elems = int64_t(st->storage.bytes / isz);
  if (offset < 0 || offset > elems) bad(cat(subject, ": storage offset ", offset, " outside its ", elems, " elements"));
  int64_t numel = 1, last = offset;  // last = highest element index reached
  for (size_t k = 0; k < size.size(); k++) {
    if (size[k] < 0 || stride[k] < 0) bad(cat(subject, ": negative size or stride"));
    if (size[k] > 0 && numel > kMaxNumel / size[k]) bad(cat(subject, ": tensor size is absurdly large"));
    numel *= size[k];
  }
  if (numel > 0) {
    for (size_t k = 0; k < size.size(); k++) {
      if (stride[k] > 0 && size[k] - 1 > (kMaxNumel - last) / stride[k])
        bad(cat(subject, ": strides reach past any storage"));
      last += (size[k] - 1) * stride[k];
    }
    if (last >= elems)
      bad(cat(subject, ": tensor ", shape_str(size), " with offset ", offset, " and stride ", shape_str(stride),
              " reaches element ", last, " but the storage holds ", elems, " ", dtype_name(dt), " elements"));
  }
  Value* out = make(Kind::Tensor);
  if (numel == 0) {
    out->tensor = Tensor::empty(size, dt);
    return out;
  }
  const unsigned char* base = st->storage.data + size_t(offset) * isz;
  bool contiguous = true;
  int64_t expect = 1;
  for (size_t k = size.size(); k-- > 0;) {
    if (size[k] == 1) continue;  // any stride is fine for a size-1 dim
    if (stride[k] != expect) contiguous = false;
    expect *= size[k];
  }
  if (contiguous && reinterpret_cast<uintptr_t>(base) % isz == 0) {
    out->tensor = Tensor::borrow(const_cast<unsigned char*>(base), size, dt, Device::CPU, st->storage.keepalive);
    return out;
  }
  // Non-contiguous (or unaligned) tensors get their own contiguous copy, gathered row by row. Stride-0 (expanded)
  // views make the copy larger than the storage; bound that so a hostile file cannot ask for terabytes.
  if (size_t(numel) * isz > 16 * st->storage.bytes + (size_t(64) << 20))
    bad(cat(subject, ": tensor ", shape_str(size), " with stride ", shape_str(stride), " would need ",
            size_t(numel) * isz, " bytes copied out of a ", st->storage.bytes, "-byte storage"));
  Tensor t = Tensor::empty(size, dt);
  unsigned char* dst = static_cast<unsigned char*>(t.data());
  const int nd = int(size.size());
  const bool inner_unit = nd > 0 && stride[nd - 1] == 1;
  const int64_t row = inner_unit ? size[nd - 1] : 1;
  const int outer_dims = inner_unit ? nd - 1 : nd;
  std::vector<int64_t> idx(size_t(nd), 0);
  for (int64_t done = 0; done < numel; done += row) {
    int64_t src = 0;
    for (int k = 0; k < outer_dims; k++) src += idx[k] * stride[k];
    std::memcpy(dst + size_t(done) * isz, base + size_t(src) * isz, size_t(row) * isz);
    for (int k = outer_dims - 1; k >= 0; k--) {
      if (++idx[k] < size[k]) break;
      idx[k] = 0;
    }
  }
  out->tensor = std::move(t);
  return out;
}

Value* Unpickler::call(Value* fn, Value* args) {
  if (fn->kind != Kind::Global) bad(cat("REDUCE on a ", kind_name(fn->kind), ", which is not callable"));
  if (args->kind != Kind::Tuple) bad("REDUCE arguments are not a tuple");
  const std::vector<Value*>& a = args->items;
  switch (fn->fn) {
    case Fn::OrderedDict:
      if (!a.empty()) bad("OrderedDict called with arguments");
      return make(Kind::Dict);
    case Fn::RebuildTensorV2:
      if (a.size() < 6 || a.size() > 7) bad(cat("_rebuild_tensor_v2 takes 6 or 7 arguments, got ", a.size()));
      return rebuild_tensor(a, DType::F32, false, "_rebuild_tensor_v2");
    case Fn::RebuildTensorV3: {
      if (a.size() < 7 || a.size() > 8) bad(cat("_rebuild_tensor_v3 takes 7 or 8 arguments, got ", a.size()));
      if (a[6]->kind != Kind::Global || a[6]->fn != Fn::DTypeObj) bad("_rebuild_tensor_v3: argument 7 is not a dtype");
      return rebuild_tensor(a, a[6]->dtype, true, "_rebuild_tensor_v3");
    }
    case Fn::RebuildParameter:
    case Fn::RebuildParameterWithState:
      if (a.size() < 3 || a.size() > 4 || a[0]->kind != Kind::Tensor)
        bad(cat(fn->s, ": expected (tensor, requires_grad, hooks[, state])"));
      return a[0];
    case Fn::StorageType:
    case Fn::DTypeObj:
      break;
  }
  bad(cat("calling '", fn->s, "' is not supported"));
}

Value* Unpickler::run() {
  while (true) {
    op_pos_ = pos_;
    if (pos_ >= n_) bad("truncated pickle data (no STOP opcode)");
    const uint8_t op = u8();
    switch (op) {
      case 0x80:  // PROTO
        if (u8() > 5) bad("unknown pickle protocol");
        break;
      case 0x95:  // FRAME (protocol 4): a length hint only
        u64();
        break;
      case '.': {  // STOP
        if (stack_.empty()) bad("STOP with an empty stack");
        return stack_.back();
      }
      case '(': marks_.push_back(stack_.size()); break;
      case '}': push(make(Kind::Dict)); break;
      case ']': push(make(Kind::List)); break;
      case ')': push(make(Kind::Tuple)); break;
      case 'N': push(make(Kind::None)); break;
      case 0x88:
      case 0x89: {
        Value* b = make(Kind::Bool);
        b->i = op == 0x88;
        push(b);
        break;
      }
      case 'J': push(make_int(int32_t(u32()))); break;
      case 'K': push(make_int(u8())); break;
      case 'M': push(make_int(u16())); break;
      case 0x8a:    // LONG1
      case 0x8b: {  // LONG4
        uint64_t len = op == 0x8a ? u8() : u32();
        if (len > 8) bad("integer wider than 64 bits");
        const unsigned char* p = take(size_t(len));
        uint64_t v = 0;
        for (size_t k = 0; k < len; k++) v |= uint64_t(p[k]) << (8 * k);
        if (len > 0 && len < 8 && (p[len - 1] & 0x80)) v |= ~uint64_t(0) << (8 * len);  // sign-extend
        push(make_int(int64_t(v)));
        break;
      }
      case 'G': {  // BINFLOAT, big-endian
        const unsigned char* p = take(8);
        uint64_t u = 0;
        for (int k = 0; k < 8; k++) u = (u << 8) | p[k];
        Value* x = make(Kind::Float);
        std::memcpy(&x->f, &u, 8);
        push(x);
        break;
      }
      case 'X': push(make_str(bytes(u32()))); break;     // BINUNICODE
      case 0x8c: push(make_str(bytes(u8()))); break;     // SHORT_BINUNICODE
      case 0x8d: push(make_str(bytes(u64()))); break;    // BINUNICODE8
      case 'T': push(make_str(bytes(u32()))); break;     // BINSTRING (py2 str)
      case 'U': push(make_str(bytes(u8()))); break;      // SHORT_BINSTRING
      case 'B': push(make_str(bytes(u32()), Kind::Bytes)); break;  // BINBYTES
      case 'C': push(make_str(bytes(u8()), Kind::Bytes)); break;   // SHORT_BINBYTES
      case 'q': memo_put(u8()); break;                   // BINPUT
      case 'r': memo_put(u32()); break;                  // LONG_BINPUT
      case 0x94: memo_put(memo_.size()); break;          // MEMOIZE
      case 'h': push(memo_get(u8())); break;             // BINGET
      case 'j': push(memo_get(u32())); break;            // LONG_BINGET
      case 'c': {                                        // GLOBAL
        std::string module = line();
        std::string name = line();
        push(global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Value* name = pop();
        Value* module = pop();
        if (name->kind != Kind::Str || module->kind != Kind::Str) bad("STACK_GLOBAL needs two strings");
        push(global(module->s, name->s));
        break;
      }
      case 't': push(make_tuple(pop_mark())); break;
      case 0x85: {
        Value* a = pop();
        push(make_tuple({a}));
        break;
      }
      case 0x86: {
        Value* b = pop();
        Value* a = pop();
        push(make_tuple({a, b}));
        break;
      }
      case 0x87: {
        Value* c = pop();
        Value* b = pop();
        Value* a = pop();
        push(make_tuple({a, b, c}));
        break;
      }
      case 'l': {  // LIST
        Value* l = make(Kind::List);
        l->items = pop_mark();
        push(l);
        break;
      }
      case 'd': {  // DICT
        std::vector<Value*> kv = pop_mark();
        if (kv.size() % 2) bad("DICT with an odd number of items");
        Value* dct = make(Kind::Dict);
        for (size_t k = 0; k < kv.size(); k += 2) dct->entries.emplace_back(kv[k], kv[k + 1]);
        push(dct);
        break;
      }
      case 'a': {  // APPEND
        Value* v = pop();
        Value* l = top();
        if (l->kind != Kind::List) bad("APPEND to a non-list");
        l->items.push_back(v);
        break;
      }
      case 'e': {  // APPENDS
        std::vector<Value*> vs = pop_mark();
        Value* l = top();
        if (l->kind != Kind::List) bad("APPENDS to a non-list");
        l->items.insert(l->items.end(), vs.begin(), vs.end());
        break;
      }
      case 's': {  // SETITEM
        Value* v = pop();
        Value* k = pop();
        dict_of(top(), "SETITEM")->entries.emplace_back(k, v);
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<Value*> kv = pop_mark();
        if (kv.size() % 2) bad("SETITEMS with an odd number of items");
        Value* dct = dict_of(top(), "SETITEMS");
        for (size_t k = 0; k < kv.size(); k += 2) dct->entries.emplace_back(kv[k], kv[k + 1]);
        break;
      }
      case '0': pop(); break;         // POP
      case '1': pop_mark(); break;    // POP_MARK
      case '2': push(top()); break;   // DUP
      case 'Q': push(persistent_load(pop())); break;  // BINPERSID
      case 'R': {                                     // REDUCE
        Value* args = pop();
        Value* fn = pop();
        push(call(fn, args));
        break;
      }
      case 'b': {  // BUILD: only the attribute dict of an OrderedDict (its _metadata) is accepted, and ignored
        Value* state = pop();
        Value* obj = top();
        if (obj->kind != Kind::Dict) bad(cat("BUILD on a ", kind_name(obj->kind), " is not supported"));
        (void)state;
        break;
      }
      case 'i': bad("opcode INST is not allowed (it constructs arbitrary objects)");
      case 'o': bad("opcode OBJ is not allowed (it constructs arbitrary objects)");
      case 0x81: bad("opcode NEWOBJ is not allowed (it constructs arbitrary objects)");
      case 0x92: bad("opcode NEWOBJ_EX is not allowed (it constructs arbitrary objects)");
      case 'P': bad("opcode PERSID (text persistent id) is not used by torch.save");
      case 0x82:
      case 0x83:
      case 0x84: bad("extension-registry opcodes (EXT1/2/4) are not allowed");
      default: bad(cat("unsupported pickle opcode 0x", std::hex, int(op)));
    }
  }
}

std::string key_string(const Value* k) {
  if (k->kind == Kind::Str) return k->s;
  if (k->kind == Kind::Int) return std::to_string(k->i);
  return std::string();
}

void flatten(const Value* v, const std::string& prefix, int depth, size_t* visits, TensorMap* out,
             const std::string& source) {
  if (depth > kMaxNesting) fail(source, "pickle: dicts nested too deeply (or a dict contains itself)");
  for (auto& kv : v->entries) {
    if (++*visits > kMaxVisits) fail(source, "pickle: too many dict entries");
    std::string k = key_string(kv.first);
    if (k.empty()) continue;
    const Value* x = kv.second;
    if (x->kind == Kind::Tensor) {
      out->put(prefix + k, x->tensor);
    } else if (x->kind == Kind::Dict) {
      flatten(x, prefix + k + ".", depth + 1, visits, out, source);
    }  // other leaves (epoch counters, config strings, optimizer lists) are not weights
  }
}

}  // namespace

TensorMap parse_state_dict_pickle(const unsigned char* data, size_t size, const std::string& source,
                                  const StorageResolver& resolve) {
  TD_ASSERT(resolve, "parse_state_dict_pickle needs a storage resolver");
  Unpickler u(data, size, source, resolve);
  const Value* root = u.run();
  if (root->kind == Kind::Tensor) fail(source, "the file holds a single tensor, not a state dict");
  if (root->kind != Kind::Dict) fail(source, cat("the pickle holds a ", kind_name(root->kind), ", not a state dict"));
  // Training checkpoints keep the weights one level down next to optimizer state, counters and configs: when the
  // root has a "state_dict"/"model_state_dict" dict, that is the state dict. Other nestings ({"net": sd}) are
  // flattened with '.' and the wrapper prefix is left to the key normaliser.
  auto pick = [&](const Value* r) -> const Value* {
    for (const char* name : {"state_dict", "model_state_dict"})
      for (auto& kv : r->entries)
        if (kv.first->kind == Kind::Str && kv.first->s == name && kv.second->kind == Kind::Dict) {
          log_debug(source, ": using the checkpoint's '", name, "' entry as the state dict");
          return kv.second;
        }
    return r;
  };
  root = pick(root);
  TensorMap flat;
  size_t visits = 0;
  flatten(root, "", 0, &visits, &flat, source);
  flat.source = source;
  return flat;
}

TensorMap load_pth(const std::string& path) {
  auto file = MappedFile::open(path);
  const unsigned char* d = file->data();
  if (file->size() >= 2 && d[0] == 0x80 && d[1] <= 5)
    fail(path, "legacy torch.save format (torch < 1.6 or _use_new_zipfile_serialization=False) is not supported; "
               "re-save it with torch >= 1.6: torch.save(torch.load(f), f2)");
  if (file->size() < 4 || !(d[0] == 'P' && d[1] == 'K' && d[2] == 3 && d[3] == 4))
    fail(path, "not a PyTorch zip checkpoint (no zip signature)");
  ZipArchive zip(file);
  // torch.save names every entry "<archive>/..." where <archive> is the file's stem at save time: find it.
  const ZipEntry* pkl = nullptr;
  std::string prefix;
  for (auto& e : zip.entries()) {
    const std::string suffix = "/data.pkl";
    if (e.name.size() > suffix.size() && e.name.compare(e.name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        e.name.find('/') == e.name.size() - suffix.size()) {
      if (pkl) fail(path, cat("two pickles in one archive ('", pkl->name, "' and '", e.name, "')"));
      pkl = &e;
      prefix = e.name.substr(0, e.name.size() - suffix.size() + 1);
    }
  }
  if (!pkl) fail(path, "zip archive has no '<name>/data.pkl' entry; not written by torch.save");
  if (const ZipEntry* bo = zip.find(prefix + "byteorder")) {
    std::string order = zip.read_string(*bo, 16);
    if (order != "little") fail(path, cat("tensors were saved with byte order '", order, "'; only little is supported"));
  }
  if (pkl->size > (uint64_t(1) << 31)) fail(path, "data.pkl is larger than 2 GiB; not a state dict");
  std::vector<unsigned char> pickle(size_t(pkl->size));
  zip.read(*pkl, pickle.data());

  StorageResolver resolve = [&](const std::string& key, size_t nbytes) -> PickleStorage {
    const std::string name = prefix + "data/" + key;
    const ZipEntry* e = zip.find(name);
    if (!e) fail(path, cat("the pickle references storage '", key, "' but the archive has no entry '", name, "'"));
    if (e->size < nbytes)
      fail(path, cat("storage entry '", name, "' holds ", e->size, " bytes but the pickle needs ", nbytes,
                     " (truncated or corrupt file)"));
    PickleStorage st;
    st.bytes = size_t(e->size);
    if (e->stored()) {
      st.data = zip.stored_data(*e);  // zero-copy; tensors keep the mapping alive
      st.keepalive = file;
    } else {
      Tensor buf = Tensor::empty({int64_t(e->size)}, DType::U8);
      zip.read(*e, buf.data());
      st.data = static_cast<const unsigned char*>(buf.data());
      st.keepalive = buf.storage();
    }
    return st;
  };
  TensorMap m = parse_state_dict_pickle(pickle.data(), pickle.size(), path, resolve);
  log_debug(path, ": ", m.size(), " tensors from a torch.save archive");
  return m;
}

}  // namespace td
