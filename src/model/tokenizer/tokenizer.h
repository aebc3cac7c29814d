// The umT5 tokenizer: Wan's cleaning (text_clean.h), then SentencePiece (libsentencepiece, the model's own
// encoder, so ids are identical to the reference spiece.model encoding), then '</s>' appended, as
// HF T5Tokenizer(add_special_tokens=True, truncation=True, max_length=512) does: no BOS, pad id 0, and a prompt
// longer than max_length keeps its first max_length-1 pieces plus '</s>'.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace td {

struct TokenizedPrompt {
  std::string cleaned;         // the prompt after Wan's cleaning (what the ids encode)
  std::vector<int32_t> ids;    // real tokens including the final '</s>'
  bool truncated = false;
};

class T5Tokenizer {
 public:
  static constexpr int kMaxLength = 512;  // Wan's text_len
  static constexpr int kPadId = 0;

  // Loads a SentencePiece model (spiece.model); td::Error naming `model_path` if it is missing or invalid, or
  // has no '</s>' piece.
  explicit T5Tokenizer(const std::string& model_path);
  ~T5Tokenizer();
  T5Tokenizer(const T5Tokenizer&) = delete;
  T5Tokenizer& operator=(const T5Tokenizer&) = delete;

  const std::string& path() const { return path_; }
  int vocab_size() const;  // pieces in the SentencePiece model
  int eos_id() const { return eos_id_; }

  // SentencePiece ids for `text` as given (no cleaning, no '</s>').
  std::vector<int32_t> encode_raw(const std::string& text) const;
  // Clean, encode, append '</s>', truncate to max_length (with a warning).
  TokenizedPrompt tokenize(const std::string& prompt, int max_length = kMaxLength) const;

  // The encoder's embedding table must hold every id this tokenizer can produce, and a table much larger than the
  // vocabulary means the tokenizer belongs to another model (umT5 pads 256,300 pieces to 256,384 rows; the
  // English T5 tokenizer has 32,100). td::Error naming both files otherwise.
  void check_embedding_rows(int64_t rows, const std::string& weights_name) const;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string path_;
  int eos_id_ = 1;
};

}  // namespace td
