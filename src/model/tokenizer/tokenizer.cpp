#include "model/tokenizer/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/log.h"
#include "model/tokenizer/text_clean.h"

namespace td {

T5Tokenizer::T5Tokenizer(const std::string& model_path) : sp_(new sentencepiece::SentencePieceProcessor), path_(model_path) {
  struct stat st;
  TD_CHECK(!model_path.empty(), "--tokenizer", "no tokenizer file given (the umT5 spiece.model)");
  TD_CHECK(::stat(model_path.c_str(), &st) == 0, model_path, "tokenizer file not found");
  TD_CHECK(S_ISREG(st.st_mode), model_path, "tokenizer path is not a regular file");
  auto status = sp_->Load(model_path);
  TD_CHECK(status.ok(), model_path, "not a SentencePiece model: ", status.ToString());
  eos_id_ = sp_->eos_id();
  if (eos_id_ < 0) eos_id_ = sp_->PieceToId("</s>");
  TD_CHECK(eos_id_ >= 0 && eos_id_ != sp_->unk_id(), model_path, "the SentencePiece model has no '</s>' piece");
}

T5Tokenizer::~T5Tokenizer() = default;

int T5Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }

std::vector<int32_t> T5Tokenizer::encode_raw(const std::string& text) const {
  std::vector<int> ids;
  auto status = sp_->Encode(text, &ids);
  TD_CHECK(status.ok(), path_, "SentencePiece failed to encode the prompt: ", status.ToString());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

TokenizedPrompt T5Tokenizer::tokenize(const std::string& prompt, int max_length) const {
  TD_CHECK(max_length >= 1, "tokenizer", "max_length must be >= 1, got ", max_length);
  TokenizedPrompt out;
  out.cleaned = text::clean_prompt(prompt);
  out.ids = encode_raw(out.cleaned);
  if (int64_t(out.ids.size()) + 1 > max_length) {
    log_warn("prompt is ", out.ids.size() + 1, " tokens long; truncated to ", max_length,
             " (the text encoder's limit), as the reference implementation does");
    out.ids.resize(size_t(max_length - 1));
    out.truncated = true;
  }
  out.ids.push_back(eos_id_);
  return out;
}

void T5Tokenizer::check_embedding_rows(int64_t rows, const std::string& weights_name) const {
  int64_t v = vocab_size();
  TD_CHECK(v <= rows, path_, "tokenizer has ", v, " pieces but the embedding table of ", weights_name, " has only ",
           rows, " rows: tokenizer and encoder do not belong together");
  // Models pad their tables to a multiple of 64/128 plus sentinel ids; 1024 spare rows is far beyond that.
  TD_CHECK(rows - v <= 1024, path_, "tokenizer has ", v, " pieces but the embedding table of ", weights_name, " has ",
           rows, " rows: tokenizer and encoder do not belong together");
}

}  // namespace td
