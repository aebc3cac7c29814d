// umT5 tokenizer: Wan's prompt cleaning against Python (ftfy + html + regex) on a corpus, ids against
// SentencePiece's own encoder (fixture ids from the Python binding, and Debian's spm_train/spm_encode at test time).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "core/error.h"
#include "model/tokenizer/text_clean.h"
#include "model/tokenizer/tokenizer.h"

namespace {

const std::string kFix = std::string(TD_SOURCE_DIR) + "/tests/fixtures/t5/";

nlohmann::json corpus() {
  std::ifstream f(kFix + "corpus.json");
  EXPECT_TRUE(f.good());
  nlohmann::json j;
  f >> j;
  return j;
}

TEST(Tokenizer, CleaningMatchesPythonOnCorpus) {
  auto c = corpus();
  ASSERT_GT(c.size(), 20u);
  for (const auto& e : c) {
    std::string prompt = e["prompt"], want = e["cleaned"];
    EXPECT_EQ(td::text::clean_prompt(prompt), want) << "prompt: " << prompt;
  }
}

TEST(Tokenizer, IdsMatchSentencePieceOnCorpus) {
  td::T5Tokenizer tok(kFix + "spm_tiny.model");
  EXPECT_EQ(tok.eos_id(), 1);
  for (const auto& e : corpus()) {
    std::string prompt = e["prompt"];
    std::vector<int32_t> want = e["ids"].get<std::vector<int32_t>>();
    td::TokenizedPrompt t = tok.tokenize(prompt);
    EXPECT_EQ(t.ids, want) << "prompt: " << prompt;
    EXPECT_EQ(t.ids.back(), 1);
    EXPECT_LE(t.ids.size(), 512u);
    EXPECT_EQ(t.truncated, want.size() == 512u && prompt.size() > 1000);
  }
}

TEST(Tokenizer, EmptyPromptIsJustEos) {
  td::T5Tokenizer tok(kFix + "spm_tiny.model");
  EXPECT_EQ(tok.tokenize("").ids, std::vector<int32_t>({1}));
  EXPECT_EQ(tok.tokenize(" \t\n ").ids, std::vector<int32_t>({1}));
}

TEST(Tokenizer, TruncatesAt512WithEos) {
  td::T5Tokenizer tok(kFix + "spm_tiny.model");
  std::string p;
  for (int i = 0; i < 2000; i++) p += "cat ";
  auto t = tok.tokenize(p);
  EXPECT_EQ(t.ids.size(), 512u);
  EXPECT_TRUE(t.truncated);
  EXPECT_EQ(t.ids.back(), 1);
  auto t2 = tok.tokenize(p, 16);
  EXPECT_EQ(t2.ids.size(), 16u);
  EXPECT_EQ(t2.ids.back(), 1);
}

TEST(Tokenizer, HtmlUnescapeEdgeCases) {
  using td::text::html_unescape;
  EXPECT_EQ(html_unescape("&amp;amp;"), "&amp;");
  EXPECT_EQ(html_unescape("&ampxyz"), "&xyz");
  EXPECT_EQ(html_unescape("&notit;"), "\xC2\xAC" "it;");
  EXPECT_EQ(html_unescape("&#128;"), "\xE2\x82\xAC");
  EXPECT_EQ(html_unescape("&#x41;&#66"), "AB");
  EXPECT_EQ(html_unescape("&#1;x"), "x");
  EXPECT_EQ(html_unescape("& &# &#x; &;"), "& &# &#x; &;");
  EXPECT_EQ(html_unescape("&unknownentity;"), "&unknownentity;");
}

TEST(Tokenizer, InvalidUtf8BecomesReplacementChar) {
  EXPECT_EQ(td::text::clean_prompt(std::string("a\xFF" "b")), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(td::text::clean_prompt(std::string("\xC3")), "\xEF\xBF\xBD");
}

TEST(Tokenizer, MissingOrBadModelFileIsAnError) {
  EXPECT_THROW(td::T5Tokenizer(kFix + "does_not_exist.model"), td::Error);
  EXPECT_THROW(td::T5Tokenizer(""), td::Error);
  EXPECT_THROW(td::T5Tokenizer(kFix + "corpus.json"), td::Error);
  try {
    td::T5Tokenizer t(kFix + "nope.model");
  } catch (const td::Error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.model"), std::string::npos);
  }
}

TEST(Tokenizer, VocabularyMustMatchEmbeddingTable) {
  td::T5Tokenizer tok(kFix + "spm_tiny.model");
  EXPECT_NO_THROW(tok.check_embedding_rows(256, "tiny"));
  EXPECT_THROW(tok.check_embedding_rows(100, "tiny"), td::Error);     // ids would overflow the table
  EXPECT_THROW(tok.check_embedding_rows(256384, "xxl"), td::Error);   // a tokenizer of another model
}

// Trains a fresh unigram model with Debian's spm_train and compares our ids with spm_encode's.
TEST(Tokenizer, FreshSpmTrainModelMatchesSpmEncode) {
  if (std::system("command -v spm_train >/dev/null 2>&1 && command -v spm_encode >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "Debian's sentencepiece tools are not installed";
  std::string dir = std::string(TD_BINARY_DIR) + "/t5_spm_test";
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  std::vector<std::string> lines;
  for (const auto& e : corpus()) lines.push_back(e["cleaned"]);
  {
    std::ofstream f(dir + "/train.txt");
    for (int rep = 0; rep < 3; rep++)
      for (const auto& l : lines)
        if (!l.empty() && l.size() < 2000) f << l << "\n";
    f << "Un chat marche sur l'herbe. 一只猫在草地上行走 Кошка идёт по траве 🐱\n";
  }
  std::string cmd = "spm_train --input=" + dir + "/train.txt --model_prefix=" + dir +
                    "/m --model_type=unigram --vocab_size=150 --character_coverage=1.0 --pad_id=0 --eos_id=1 "
                    "--unk_id=2 --bos_id=-1 --hard_vocab_limit=false --minloglevel=2 --num_threads=1 >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  {
    std::ofstream f(dir + "/in.txt");
    for (const auto& l : lines)
      if (!l.empty() && l.find('\n') == std::string::npos) f << l << "\n";
  }
  ASSERT_EQ(std::system(("spm_encode --model=" + dir + "/m.model --output_format=id < " + dir + "/in.txt > " + dir +
                         "/out.txt").c_str()),
            0);
  td::T5Tokenizer tok(dir + "/m.model");
  std::ifstream in(dir + "/in.txt"), out(dir + "/out.txt");
  std::string line, ids_line;
  int n = 0;
  while (std::getline(in, line) && std::getline(out, ids_line)) {
    std::vector<int32_t> want;
    std::istringstream is(ids_line);
    int v;
    while (is >> v) want.push_back(v);
    EXPECT_EQ(tok.encode_raw(line), want) << line;
    n++;
  }
  EXPECT_GT(n, 15);
}

}  // namespace
