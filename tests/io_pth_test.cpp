// Checkpoint loaders: torch.save .pth (fixtures written by real PyTorch, see scripts/fixtures/make_io_fixtures.py),
// hostile and broken inputs, and sharded safetensors.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/key_names.h"
#include "io/mapped_file.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "io/zip_reader.h"
#include "test_util.h"

namespace td {
namespace {

std::string fixture(const std::string& name) { return std::string(TD_SOURCE_DIR) + "/tests/fixtures/io/" + name; }

std::string temp_path(const std::string& name) {
  return std::string(TD_BINARY_DIR) + "/io_pth_test_" + std::to_string(::getpid()) + "_" + name;
}

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<unsigned char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::vector<unsigned char>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

// Same dtype, shape and bytes.
void expect_identical(const Tensor& a, const Tensor& b, const std::string& name) {
  ASSERT_EQ(a.dtype(), b.dtype()) << name;
  ASSERT_EQ(a.shape(), b.shape()) << name;
  Tensor x = a.contiguous(), y = b.contiguous();
  ASSERT_EQ(x.nbytes(), y.nbytes()) << name;
  EXPECT_EQ(0, std::memcmp(x.data(), y.data(), x.nbytes())) << name;
}

void expect_same_as_expected(const TensorMap& m, const std::string& expected_file, const std::string& prefix = "") {
  TensorMap ref = load_safetensors(fixture(expected_file));
  ASSERT_EQ(m.size(), ref.size());
  for (auto& kv : ref.all()) {
    const Tensor* t = m.find(prefix + kv.first);
    ASSERT_NE(t, nullptr) << prefix + kv.first;
    expect_identical(*t, kv.second, kv.first);
  }
}

// Runs `f`, expects a td::Error whose message contains every string in `needles`.
template <typename F>
void expect_error(F&& f, std::vector<std::string> needles) {
  try {
    f();
    ADD_FAILURE() << "no td::Error thrown; expected one mentioning '" << needles[0] << "'";
  } catch (const Error& e) {
    for (auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

// ---- real torch.save files ----

TEST(Pth, LoadsTorchSaveStateDictExactly) {
  TensorMap m = load_pth(fixture("state_dict.pth"));
  expect_same_as_expected(m, "expected.safetensors");
  EXPECT_EQ(m.get("scalar").dim(), 0);
  EXPECT_EQ(m.get("fp8_e4m3").dtype(), DType::F8E4M3);
  EXPECT_EQ(m.get("empty").shape(), (Shape{0, 3}));
  // Values spot-check independent of the reference file: shared_t = (arange(40)*0.5-3)[3:23].view(4,5).t()
  Tensor st = m.get("shared_t").contiguous();
  ASSERT_EQ(st.shape(), (Shape{5, 4}));
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 4; j++) EXPECT_EQ(st.ptr<float>()[i * 4 + j], (3 + j * 5 + i) * 0.5f - 3.0f);
  EXPECT_EQ(m.get("shared_slice").ptr<float>()[0], 10 * 0.5f - 3.0f);
  EXPECT_EQ(m.get("steps_i64").ptr<int64_t>()[2], int64_t(1) << 50);
}

TEST(Pth, ContiguousTensorsBorrowTheMappedFile) {
  TensorMap m = load_pth(fixture("state_dict.pth"));
  const Tensor& w = m.get("blocks.0.self_attn.q.weight");
  // Borrowed: no allocator release, and the storage keeps the MappedFile alive.
  EXPECT_FALSE(bool(w.storage()->release));
  auto file = std::static_pointer_cast<MappedFile>(w.storage()->keepalive);
  ASSERT_NE(file, nullptr);
  const unsigned char* p = static_cast<const unsigned char*>(w.data());
  EXPECT_GE(p, file->data());
  EXPECT_LT(p, file->data() + file->size());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);  // torch.save aligns storages to 64 bytes
  // The offset slice of a shared storage is a zero-copy view too; the transposed one is a contiguous copy.
  EXPECT_EQ(m.get("shared_slice").storage()->keepalive, w.storage()->keepalive);
  EXPECT_TRUE(m.get("shared_t").is_contiguous());
}

TEST(Pth, Protocol4DeflateAndZip64Variants) {
  for (const char* f : {"proto4.pth", "deflate.pth", "zip64.pth"}) {
    SCOPED_TRACE(f);
    expect_same_as_expected(load_pth(fixture(f)), "expected.safetensors");
  }
  // zip64.pth really has zip64 records and deflate.pth really is compressed.
  ZipArchive z64(MappedFile::open(fixture("zip64.pth")));
  EXPECT_GT(z64.entries().size(), 5u);
  ZipArchive zd(MappedFile::open(fixture("deflate.pth")));
  bool any_deflated = false;
  for (auto& e : zd.entries()) any_deflated |= e.method == 8;
  EXPECT_TRUE(any_deflated);
}

TEST(Pth, NestedDictIsFlattenedAndNonTensorsSkipped) {
  TensorMap m = load_checkpoint(fixture("nested.pth"));  // dispatch by content
  expect_same_as_expected(m, "small.safetensors", "net.");
  TensorMap n = normalize_dit_keys(m);
  EXPECT_TRUE(n.has("blocks.0.self_attn.q.weight"));
  EXPECT_TRUE(n.has("head.modulation"));
}

TEST(Pth, TrainingCheckpointPicksItsStateDict) {
  expect_same_as_expected(load_pth(fixture("train_ckpt.pth")), "small.safetensors");
}

TEST(Pth, LegacyFormatIsRefusedWithAdvice) {
  expect_error([] { load_pth(fixture("legacy.pth")); }, {"legacy.pth", "legacy torch.save format", "torch >= 1.6"});
  expect_error([] { load_checkpoint(fixture("legacy.pth")); }, {"legacy"});
}

TEST(Pth, MaliciousPicklesAreRefusedWithoutRunningAnything) {
  std::remove("/tmp/td_pwned");
  expect_error([] { load_checkpoint(fixture("evil_system.pth")); }, {"evil_system.pth", "posix.system", "refusing"});
  expect_error([] { load_checkpoint(fixture("evil_eval.pth")); }, {"evil_eval.pth", "builtins.eval"});
  std::ifstream f("/tmp/td_pwned");
  EXPECT_FALSE(bool(f));
}

TEST(Pth, TruncatedFilesGiveErrors) {
  std::vector<unsigned char> full = read_bytes(fixture("state_dict.pth"));
  ASSERT_GT(full.size(), 1000u);
  std::string path = temp_path("trunc.pth");
  int errors = 0, tried = 0;
  for (size_t n = 0; n < full.size(); n += (n < 64 ? 1 : 37)) {
    write_bytes(path, std::vector<unsigned char>(full.begin(), full.begin() + long(n)));
    tried++;
    try {
      load_checkpoint(path);
    } catch (const Error& e) {
      errors++;
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  std::remove(path.c_str());
  EXPECT_EQ(errors, tried);  // cutting anything off loses the end-of-central-directory record
}

TEST(Pth, CorruptedPickleBytesAreCaughtByTheCrc) {
  std::vector<unsigned char> b = read_bytes(fixture("state_dict.pth"));
  ZipArchive z(MappedFile::open(fixture("state_dict.pth")));
  const ZipEntry* pkl = z.find("state_dict/data.pkl");
  ASSERT_NE(pkl, nullptr);
  b[pkl->data_offset + pkl->size / 2] ^= 0x5a;
  std::string path = temp_path("corrupt.pth");
  write_bytes(path, b);
  expect_error([&] { load_pth(path); }, {path, "data.pkl"});
  std::remove(path.c_str());
}

TEST(Pth, MissingOrShortStorageEntries) {
  expect_error([] { load_pth(fixture("short_storage.pth")); },
               {"short_storage.pth", "state_dict/data/0", "holds 48 bytes but the pickle needs 96"});
  expect_error([] { load_pth(fixture("missing_storage.pth")); },
               {"missing_storage.pth", "storage '0'", "no entry 'state_dict/data/0'"});
}

TEST(Pth, MissingOrShortStorages) {
  // The real pickle against resolvers that report a missing archive entry or a short one.
  ZipArchive z(MappedFile::open(fixture("state_dict.pth")));
  std::vector<unsigned char> pkl(z.find("state_dict/data.pkl")->size);
  z.read(*z.find("state_dict/data.pkl"), pkl.data());
  const std::string src = "x.pth";
  StorageResolver none = [&](const std::string& key, size_t) -> PickleStorage {
    fail(src, cat("the archive has no entry 'state_dict/data/", key, "'"));
  };
  expect_error([&] { parse_state_dict_pickle(pkl.data(), pkl.size(), src, none); }, {"x.pth", "has no entry"});
  StorageResolver tiny = [&](const std::string&, size_t) -> PickleStorage {
    static const unsigned char zero[4] = {0, 0, 0, 0};
    return PickleStorage{zero, 4, nullptr};
  };
  expect_error([&] { parse_state_dict_pickle(pkl.data(), pkl.size(), src, tiny); }, {"x.pth", "holds 4 bytes"});
}

// ---- hand-made pickles (assembled, never unpickled by Python) ----

struct PickleWriter {
  std::vector<unsigned char> b;
  PickleWriter() {
    b.push_back(0x80);  // PROTO 2
    b.push_back(0x02);
  }
  PickleWriter& op(unsigned char c) {
    b.push_back(c);
    return *this;
  }
  PickleWriter& str(const std::string& s) {
    op('X');
    for (int i = 0; i < 4; i++) b.push_back(uint8_t(s.size() >> (8 * i)));
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  PickleWriter& global(const std::string& m, const std::string& n) {
    op('c');
    b.insert(b.end(), m.begin(), m.end());
    b.push_back('\n');
    b.insert(b.end(), n.begin(), n.end());
    b.push_back('\n');
    return *this;
  }
  PickleWriter& integer(int32_t v) {
    op('J');
    for (int i = 0; i < 4; i++) b.push_back(uint8_t(uint32_t(v) >> (8 * i)));
    return *this;
  }
  PickleWriter& ints(const std::vector<int32_t>& v) {
    op('(');
    for (int32_t x : v) integer(x);
    return op('t');
  }
};

// {'w': _rebuild_tensor_v2(('storage', torch.<type>, '0', 'cpu', numel), offset, size, stride, False, OrderedDict())}
std::vector<unsigned char> tensor_pickle(const std::string& type, int32_t numel, int32_t offset,
                                         const std::vector<int32_t>& size, const std::vector<int32_t>& stride) {
  PickleWriter w;
  w.op('}').str("w").global("torch._utils", "_rebuild_tensor_v2").op('(');
  w.op('(').str("storage").global("torch", type).str("0").str("cpu").integer(numel).op('t').op('Q');
  w.integer(offset).ints(size).ints(stride).op(0x89).global("collections", "OrderedDict").op(')').op('R');
  w.op('t').op('R').op('s').op('.');
  return w.b;
}

TensorMap parse(const std::vector<unsigned char>& p, size_t storage_bytes = 4096) {
  static std::vector<unsigned char> zeros(1 << 16, 0);
  StorageResolver r = [&](const std::string& key, size_t nbytes) -> PickleStorage {
    if (nbytes > zeros.size()) fail("test", "storage too large");
    return PickleStorage{zeros.data(), std::min(storage_bytes, zeros.size()), nullptr};
  };
  return parse_state_dict_pickle(p.data(), p.size(), "hand.pkl", r);
}

TEST(Unpickler, HandMadeTensorPickleWorks) {
  TensorMap m = parse(tensor_pickle("FloatStorage", 12, 2, {2, 5}, {5, 1}));
  ASSERT_TRUE(m.has("w"));
  EXPECT_EQ(m.get("w").shape(), (Shape{2, 5}));
  EXPECT_EQ(m.source, "hand.pkl");
}

TEST(Unpickler, DangerousGlobalsAndOpcodesAreRefused) {
  PickleWriter sys;
  sys.op('}').str("x").global("os", "system").str("echo hi").op(0x85).op('R').op('s').op('.');
  expect_error([&] { parse(sys.b); }, {"hand.pkl", "os.system"});

  PickleWriter ev;
  ev.op('}').str("x").global("builtins", "eval").str("1+1").op(0x85).op('R').op('s').op('.');
  expect_error([&] { parse(ev.b); }, {"builtins.eval"});

  PickleWriter sg;  // protocol-4 spelling
  sg.op('}').str("x").str("subprocess").str("check_output").op(0x93).op('.');
  expect_error([&] { parse(sg.b); }, {"subprocess.check_output"});

  PickleWriter inst;
  inst.op('(').op('i');
  inst.b.insert(inst.b.end(), {'o', 's', '\n', 's', 'y', 's', 't', 'e', 'm', '\n', '.'});
  expect_error([&] { parse(inst.b); }, {"INST"});

  PickleWriter newobj;
  newobj.global("collections", "OrderedDict").op(')').op(0x81).op('.');
  expect_error([&] { parse(newobj.b); }, {"NEWOBJ"});

  PickleWriter rebuild_other;  // an allowed module with a disallowed function
  rebuild_other.global("torch._utils", "_rebuild_qtensor").op('.');
  expect_error([&] { parse(rebuild_other.b); }, {"_rebuild_qtensor"});

  PickleWriter build_on_tensorlike;  // BUILD on something other than a dict
  build_on_tensorlike.op(']').op('}').op('b').op('.');
  expect_error([&] { parse(build_on_tensorlike.b); }, {"BUILD"});
}

TEST(Unpickler, UnsupportedStorageType) {
  expect_error([] { parse(tensor_pickle("ComplexFloatStorage", 4, 0, {4}, {1})); },
               {"hand.pkl", "unsupported storage type 'torch.ComplexFloatStorage'"});
  expect_error([] { parse(tensor_pickle("QInt8Storage", 4, 0, {4}, {1})); }, {"QInt8Storage"});
}

TEST(Unpickler, OutOfBoundsViewsAreRefused) {
  expect_error([] { parse(tensor_pickle("FloatStorage", 4, 3, {2}, {1})); }, {"reaches element 4", "holds 4"});
  expect_error([] { parse(tensor_pickle("FloatStorage", 4, 5, {0}, {1})); }, {"storage offset 5"});
  expect_error([] { parse(tensor_pickle("FloatStorage", 16, 0, {4, 4}, {5, 1})); }, {"reaches element"});
  expect_error([] { parse(tensor_pickle("FloatStorage", 16, 0, {4, -1}, {1, 1})); }, {"negative"});
  expect_error([] { parse(tensor_pickle("FloatStorage", 16, 0, {4, 4}, {4})); }, {"differ in rank"});
  expect_error([] { parse(tensor_pickle("FloatStorage", 16, 0, {1 << 30, 1 << 30}, {1, 1})); }, {"storage '0'"});
  expect_error([] { parse(tensor_pickle("FloatStorage", -1, 0, {1}, {1})); }, {"bad size"});
  // A stride-0 view that would expand a 4-element storage to 2^40 elements is refused before allocating.
  expect_error([] { parse(tensor_pickle("FloatStorage", 4, 0, {1 << 20, 1 << 20}, {0, 0})); }, {"would need"});
  // The resolver returns fewer bytes than the pickle declares.
  expect_error([] { parse(tensor_pickle("FloatStorage", 64, 0, {64}, {1}), 100); }, {"holds 100 bytes"});
}

TEST(Unpickler, MalformedStructure) {
  PickleWriter self_ref;  // d = {}; d['a'] = d
  self_ref.op('}').op('q').op(0).str("a").op('h').op(0).op('s').op('.');
  expect_error([&] { parse(self_ref.b); }, {"nested too deeply"});
  PickleWriter underflow;
  underflow.op('s').op('.');
  expect_error([&] { parse(underflow.b); }, {"underflow"});
  PickleWriter memo;
  memo.op('h').op(7).op('.');
  expect_error([&] { parse(memo.b); }, {"memo entry 7"});
  PickleWriter not_dict;
  not_dict.op(']').op('.');
  expect_error([&] { parse(not_dict.b); }, {"not a state dict"});
  PickleWriter no_stop;
  no_stop.op('}');
  expect_error([&] { parse(no_stop.b); }, {"truncated"});
}

TEST(Unpickler, EveryTruncationAndManyByteFlipsFailCleanly) {
  ZipArchive z(MappedFile::open(fixture("state_dict.pth")));
  std::vector<unsigned char> pkl(z.find("state_dict/data.pkl")->size);
  z.read(*z.find("state_dict/data.pkl"), pkl.data());
  EXPECT_EQ(parse(pkl).size(), 13u);
  for (size_t n = 0; n < pkl.size(); n++) {
    std::vector<unsigned char> cut(pkl.begin(), pkl.begin() + long(n));
    EXPECT_THROW(parse(cut), Error) << "truncated at " << n;
  }
  // Random corruption must either parse or raise td::Error (never crash or throw anything else).
  std::mt19937 rng(7);
  int errors = 0;
  for (int it = 0; it < 2000; it++) {
    std::vector<unsigned char> c = pkl;
    int flips = 1 + int(rng() % 3);
    for (int k = 0; k < flips; k++) c[rng() % c.size()] = uint8_t(rng());
    try {
      parse(c);
    } catch (const Error&) {
      errors++;
    }
  }
  EXPECT_GT(errors, 100);
}

// ---- safetensors: sharded index ----

TEST(Safetensors, ShardedIndexLoadsAllShards) {
  std::string dir = temp_path("shards");
  ASSERT_EQ(0, system(("mkdir -p '" + dir + "'").c_str()));
  Tensor a = test::randn({3, 4}, 1), b = test::randn({5}, 2), c = test::randint8({2, 2}, 3);
  save_safetensors(dir + "/model-00001-of-00002.safetensors", {{"a", a}, {"b", b}});
  save_safetensors(dir + "/model-00002-of-00002.safetensors", {{"c", c}});
  nlohmann::json idx;
  idx["metadata"] = {{"total_size", 0}};
  idx["weight_map"] = {{"a", "model-00001-of-00002.safetensors"},
                       {"b", "model-00001-of-00002.safetensors"},
                       {"c", "model-00002-of-00002.safetensors"}};
  std::ofstream(dir + "/model.safetensors.index.json") << idx.dump();
  TensorMap m = load_checkpoint(dir + "/model.safetensors.index.json");
  ASSERT_EQ(m.size(), 3u);
  expect_identical(m.get("a"), a, "a");
  expect_identical(m.get("b"), b, "b");
  expect_identical(m.get("c"), c, "c");

  idx["weight_map"]["d"] = "model-00002-of-00002.safetensors";
  std::ofstream(dir + "/bad.safetensors.index.json") << idx.dump();
  expect_error([&] { load_checkpoint(dir + "/bad.safetensors.index.json"); }, {"model-00002-of-00002", "'d'"});
  ASSERT_EQ(0, system(("rm -rf '" + dir + "'").c_str()));
}

TEST(Safetensors, TorchWrittenFileMatchesPth) {
  // safetensors.torch.save_file output read by our loader equals the .pth read by our loader.
  expect_same_as_expected(load_pth(fixture("nested.pth")), "small.safetensors", "net.");
  TensorMap s = load_checkpoint(fixture("small.safetensors"));
  EXPECT_EQ(s.get("head.modulation").dtype(), DType::BF16);
}

}  // namespace
}  // namespace td
