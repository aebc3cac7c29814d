// Prompt-embedding cache: hit/miss by key fields, atomic entries, corrupt entries are misses.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "core/error.h"
#include "io/embedding_cache.h"
#include "test_util.h"

namespace {

TEST(T5Cache, StoreLookupAndKeyFields) {
  std::string dir = std::string(TD_BINARY_DIR) + "/t5_cache_test/sub";
  std::system(("rm -rf " + std::string(TD_BINARY_DIR) + "/t5_cache_test").c_str());
  td::EmbeddingCache cache(dir);
  td::EmbeddingCacheKey k{"/w/t5.pth|123|456", "A cat, \"quoted\" \xE2\x9C\x93 \\n", false};
  std::vector<int32_t> ids = {5, 9, 1}, got_ids;
  td::Tensor emb = td::test::randn({3, 16}, 1), got;
  EXPECT_FALSE(cache.lookup(k, &got_ids, &got));
  ASSERT_TRUE(cache.store(k, ids, emb));
  ASSERT_TRUE(cache.lookup(k, &got_ids, &got));
  EXPECT_EQ(got_ids, ids);
  EXPECT_EQ(td::test::max_abs_diff(got, emb), 0.0);
  td::EmbeddingCacheKey k2 = k;
  k2.int8 = true;
  EXPECT_FALSE(cache.lookup(k2, &got_ids, &got));
  k2 = k;
  k2.cleaned_prompt += " ";
  EXPECT_FALSE(cache.lookup(k2, &got_ids, &got));
  k2 = k;
  k2.encoder_identity = "/w/t5.pth|123|457";
  EXPECT_FALSE(cache.lookup(k2, &got_ids, &got));
  EXPECT_NE(td::EmbeddingCache::key_hash(k), td::EmbeddingCache::key_hash(k2));
  // A corrupt entry is a miss, not an error.
  { std::ofstream f(cache.entry_path(k), std::ios::binary | std::ios::trunc); f << "garbage"; }
  EXPECT_FALSE(cache.lookup(k, &got_ids, &got));
}

TEST(T5Cache, IdentityChangesWithTheFile) {
  std::string p = std::string(TD_BINARY_DIR) + "/t5_ident.bin";
  { std::ofstream f(p); f << "abc"; }
  std::string a = td::file_identity(p);
  { std::ofstream f(p, std::ios::app); f << "d"; }
  EXPECT_NE(a, td::file_identity(p));
  std::remove(p.c_str());
  EXPECT_THROW(td::file_identity(p), td::Error);
}

TEST(T5Cache, DefaultDirFollowsXdg) {
  const char* old = std::getenv("XDG_CACHE_HOME");
  std::string saved = old ? old : "";
  const char* old2 = std::getenv("TURBODIFF_CACHE_DIR");
  std::string saved2 = old2 ? old2 : "";
  unsetenv("TURBODIFF_CACHE_DIR");
  setenv("XDG_CACHE_HOME", "/tmp/xdgtest", 1);
  EXPECT_EQ(td::default_cache_dir(), "/tmp/xdgtest/turbodiff");
  setenv("TURBODIFF_CACHE_DIR", "/tmp/over", 1);
  EXPECT_EQ(td::default_cache_dir(), "/tmp/over");
  if (old) setenv("XDG_CACHE_HOME", saved.c_str(), 1); else unsetenv("XDG_CACHE_HOME");
  if (old2) setenv("TURBODIFF_CACHE_DIR", saved2.c_str(), 1); else unsetenv("TURBODIFF_CACHE_DIR");
}

}  // namespace
