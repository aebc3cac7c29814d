// Prompt cleaning exactly as Wan's HuggingfaceTokenizer(clean='whitespace') does before tokenizing
// (wan/modules/tokenizers.py): whitespace_clean(basic_clean(text)) =
//   ftfy.fix_text(text) -> html.unescape(html.unescape(.)) -> strip -> regex \s+ -> ' ' -> strip.
//
// html.unescape and the whitespace rules are reproduced exactly (Python 3 semantics, regex-module \s). ftfy.fix_text
// is reproduced for the parts that matter for prompts; the implemented subset, run per line and repeated until the
// line stops changing as ftfy does:
//   - unescape_html ("auto": off from the first line containing '<' on): HTML5 entities that end in ';', ftfy's
//     all-caps variants (&EACUTE;), numeric references;
//   - fix_encoding, narrowed to the common case: UTF-8 that was decoded as Latin-1/Windows-1252 ("cafÃ©"). The whole
//     line is re-decoded when it looks like mojibake and re-encodes to valid UTF-8; otherwise each embedded
//     UTF-8-looking run is decoded on its own (ftfy's decode_inconsistent_utf8). Other single-byte codecs (cp1250,
//     cp1251, MacRoman, cp437), restore_byte_a0, replace_lossy_sequences and ftfy's 'badness' scoring are not done;
//   - fix_c1_controls, fix_latin_ligatures, fix_character_width (fullwidth ASCII, halfwidth katakana/hangul,
//     U+3000), uncurl_quotes, fix_line_breaks, remove_terminal_escapes, remove_control_chars;
//   - not done: fix_surrogates (UTF-8 input cannot hold surrogates; invalid UTF-8 bytes become U+FFFD) and the final
//     NFC normalization. NFC is left out on purpose: the SentencePiece model normalizes with NFKC itself
//     (nmt_nfkc), and NFKC(NFC(x)) == NFKC(x), so token ids are unaffected.
#pragma once

#include <string>

namespace td {
namespace text {

// The full Wan 'whitespace' cleaning. Input and output are UTF-8.
std::string clean_prompt(const std::string& utf8);

// The pieces, exposed for tests.
std::string html_unescape(const std::string& utf8);  // Python's html.unescape
std::string ftfy_fix_text(const std::string& utf8);  // the ftfy subset described above
std::string whitespace_clean(const std::string& utf8);  // re.sub(r'\s+', ' ', s).strip()

}  // namespace text
}  // namespace td
