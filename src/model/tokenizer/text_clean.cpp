// See text_clean.h for what is reproduced from Python/ftfy and what is not.
#include "model/tokenizer/text_clean.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace td {
namespace text {
namespace {

struct HtmlEntity {
  const char* name;
  const char* value;
};
struct WidthEntry {
  uint32_t cp;
  const char* value;
};
#include "model/tokenizer/text_clean_tables.inc"

using U32 = std::vector<uint32_t>;

// UTF-8 -> code points. Python strings never hold invalid bytes; ours may, so each invalid byte becomes U+FFFD
// (like bytes.decode('utf-8', 'replace')).
U32 decode_utf8(const std::string& s) {
  U32 out;
  out.reserve(s.size());
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) {
      out.push_back(c);
      i++;
      continue;
    }
    int len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
    if (c >= 0xF5) len = 0;
    uint32_t cp = len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    bool ok = len > 0 && i + len <= n;
    for (int k = 1; ok && k < len; k++) {
      unsigned b = p[i + k];
      if ((b & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (b & 0x3F);
    }
    if (ok && len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
    if (ok && len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ok = false;
    if (!ok) {
      out.push_back(0xFFFD);
      i++;
      continue;
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

void append_utf8(std::string& o, uint32_t cp) {
  if (cp < 0x80) {
    o += char(cp);
  } else if (cp < 0x800) {
    o += char(0xC0 | (cp >> 6));
    o += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    o += char(0xE0 | (cp >> 12));
    o += char(0x80 | ((cp >> 6) & 0x3F));
    o += char(0x80 | (cp & 0x3F));
  } else {
    o += char(0xF0 | (cp >> 18));
    o += char(0x80 | ((cp >> 12) & 0x3F));
    o += char(0x80 | ((cp >> 6) & 0x3F));
    o += char(0x80 | (cp & 0x3F));
  }
}

std::string encode_utf8(const U32& s, size_t b = 0, size_t e = std::string::npos) {
  std::string o;
  e = std::min(e, s.size());
  for (size_t i = b; i < e; i++) append_utf8(o, s[i]);
  return o;
}

void append(U32& o, const char* utf8) {
  U32 v = decode_utf8(utf8);
  o.insert(o.end(), v.begin(), v.end());
}

// Windows-1252 bytes 0x80..0x9F; the five undefined bytes map to the C1 control of the same value ("sloppy"
// decoding, as ftfy and html.unescape's _invalid_charrefs do).
const uint16_t kCp1252High[32] = {0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                  0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
                                  0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                  0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

// Code point -> byte under Latin-1 or sloppy Windows-1252; -1 if neither encodes it.
int single_byte(uint32_t cp) {
  if (cp < 0x100) return int(cp);
  for (int k = 0; k < 32; k++)
    if (kCp1252High[k] == cp) return 0x80 + k;
  return -1;
}

const HtmlEntity* find_entity(const HtmlEntity* table, size_t n, const std::string& name) {
  const HtmlEntity* end = table + n;
  const HtmlEntity* it =
      std::lower_bound(table, end, name, [](const HtmlEntity& e, const std::string& k) { return std::strcmp(e.name, k.c_str()) < 0; });
  return it != end && name == it->name ? it : nullptr;
}
const HtmlEntity* find_html5(const std::string& name) {
  return find_entity(kHtmlEntities, sizeof(kHtmlEntities) / sizeof(kHtmlEntities[0]), name);
}

bool is_ascii_alnum(uint32_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_hex(uint32_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Python html._replace_charref for a numeric reference (digits already parsed, saturated above 0x10FFFF).
void numeric_charref(U32& out, uint64_t num) {
  if (num == 0x00) return out.push_back(0xFFFD);
  if (num == 0x0D) return out.push_back(0x0D);
  if (num >= 0x80 && num <= 0x9F) return out.push_back(kCp1252High[num - 0x80]);
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return out.push_back(0xFFFD);
  bool invalid = (num >= 0x1 && num <= 0x8) || (num >= 0xE && num <= 0x1F) || num == 0x7F || num == 0xB ||
                 (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE;
  if (invalid) return;
  out.push_back(uint32_t(num));
}

// Python's html.unescape on code points: the pattern
//   &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
U32 html_unescape_u32(const U32& s) {
  U32 out;
  out.reserve(s.size());
  size_t n = s.size(), i = 0;
  while (i < n) {
    if (s[i] != '&' || i + 1 >= n) {
      out.push_back(s[i++]);
      continue;
    }
    size_t j = i + 1;
    if (s[j] == '#') {
      bool hex = j + 1 < n && (s[j + 1] == 'x' || s[j + 1] == 'X');
      size_t d = j + (hex ? 2 : 1), e = d;
      while (e < n && (hex ? is_hex(s[e]) : (s[e] >= '0' && s[e] <= '9'))) e++;
      if (e == d) {  // '&#' without digits: no match; '#' is outside the named-entity class too
        out.push_back(s[i++]);
        continue;
      }
      uint64_t num = 0;
      for (size_t k = d; k < e; k++) {
        uint32_t c = s[k];
        uint32_t v = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
        num = num * (hex ? 16 : 10) + v;
        if (num > 0x10FFFF) num = 0x110000;  // saturate: anything past the range decodes the same (U+FFFD)
      }
      if (e < n && s[e] == ';') e++;
      numeric_charref(out, num);
      i = e;
      continue;
    }
    auto in_class = [](uint32_t c) { return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' && c != ';'; };
    size_t e = j;
    while (e < n && e - j < 32 && in_class(s[e])) e++;
    if (e == j) {
      out.push_back(s[i++]);
      continue;
    }
    if (e < n && s[e] == ';') e++;
    std::string name = encode_utf8(s, j, e);
    if (const HtmlEntity* ent = find_html5(name)) {
      append(out, ent->value);
      i = e;
      continue;
    }
    // Longest prefix that is a (semicolon-less, legacy) entity, as html.unescape does; lengths len-1 .. 2.
    bool done = false;
    for (size_t x = e - j - 1; x >= 2 && !done; x--) {
      std::string pre = encode_utf8(s, j, j + x);
      if (const HtmlEntity* ent = find_html5(pre)) {
        append(out, ent->value);
        out.insert(out.end(), s.begin() + j + x, s.begin() + e);
        done = true;
      }
    }
    if (!done) out.insert(out.end(), s.begin() + i, s.begin() + e);
    i = e;
  }
  return out;
}

// ftfy.fixes.unescape_html: only '&#?[0-9A-Za-z]{1,24};' is touched; names must end in ';' (plus ftfy's all-caps
// variants), numeric references only when html.unescape consumes the ';'.
U32 ftfy_unescape_html(const U32& s) {
  U32 out;
  out.reserve(s.size());
  size_t n = s.size(), i = 0;
  while (i < n) {
    if (s[i] != '&') {
      out.push_back(s[i++]);
      continue;
    }
    size_t j = i + 1;
    bool hash = j < n && s[j] == '#';
    if (hash) j++;
    size_t e = j;
    while (e < n && is_ascii_alnum(s[e])) e++;
    size_t run = e - j;
    if (run < 1 || run > 24 || e >= n || s[e] != ';') {
      out.push_back(s[i++]);
      continue;
    }
    e++;  // the ';'
    if (!hash) {
      std::string name = encode_utf8(s, j, e);
      const HtmlEntity* ent = find_html5(name);
      if (!ent) ent = find_entity(kHtmlUpperEntities, sizeof(kHtmlUpperEntities) / sizeof(kHtmlUpperEntities[0]), name);
      if (ent)
        append(out, ent->value);
      else
        out.insert(out.end(), s.begin() + i, s.begin() + e);
    } else {
      U32 tok(s.begin() + i, s.begin() + e);
      U32 r = html_unescape_u32(tok);
      if (std::find(r.begin(), r.end(), uint32_t(';')) != r.end())
        out.insert(out.end(), tok.begin(), tok.end());
      else
        out.insert(out.end(), r.begin(), r.end());
    }
    i = e;
  }
  return out;
}

// Length of the UTF-8 sequence a lead byte announces (2..4), or 0.
int utf8_lead_len(int b) { return b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 0; }
bool is_cont(int b) { return b >= 0x80 && b <= 0xBF; }

// Decodes `len` single-byte-encoded code points at s[i] as one UTF-8 sequence; false if they are not a valid one.
bool decode_group(const U32& s, size_t i, int len, uint32_t* cp) {
  std::string bytes;
  for (int k = 0; k < len; k++) {
    int b = single_byte(s[i + k]);
    if (b < 0 || (k == 0 ? utf8_lead_len(b) != len : !is_cont(b))) return false;
    bytes += char(b);
  }
  U32 d = decode_utf8(bytes);
  if (d.size() != 1 || d[0] == 0xFFFD) return false;
  *cp = d[0];
  return true;
}

// Length of a UTF-8-looking group at s[i] (0 if none).
int group_at(const U32& s, size_t i, uint32_t* cp) {
  int b = single_byte(s[i]);
  int len = b < 0 ? 0 : utf8_lead_len(b);
  if (len == 0 || i + len > s.size()) return 0;
  return decode_group(s, i, len, cp) ? len : 0;
}

// The Latin-1/Windows-1252 part of ftfy's fix_encoding (see the header).
U32 fix_mojibake(const U32& s) {
  bool ascii = true, looks_bad = false;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] >= 0x80) ascii = false;
    uint32_t cp;
    if (!looks_bad && group_at(s, i, &cp)) looks_bad = true;
  }
  if (ascii || !looks_bad) return s;
  // Whole line re-encoded, when every character has a byte and the bytes are valid UTF-8.
  std::string bytes;
  bool encodable = true;
  for (uint32_t c : s) {
    int b = single_byte(c);
    if (b < 0) {
      encodable = false;
      break;
    }
    bytes += char(b);
  }
  if (encodable) {
    U32 d = decode_utf8(bytes);
    if (std::find(d.begin(), d.end(), uint32_t(0xFFFD)) == d.end() ||
        std::count(d.begin(), d.end(), uint32_t(0xFFFD)) == std::count(s.begin(), s.end(), uint32_t(0xFFFD)))
      return d;
  }
  // decode_inconsistent_utf8: runs of groups not preceded by a continuation-like character.
  U32 out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp;
    int prev = i > 0 ? single_byte(s[i - 1]) : -1;
    int len = (prev >= 0 && is_cont(prev)) ? 0 : group_at(s, i, &cp);
    if (len == 0) {
      out.push_back(s[i++]);
      continue;
    }
    while (len > 0) {
      out.push_back(cp);
      i += len;
      len = i < s.size() ? group_at(s, i, &cp) : 0;
    }
  }
  return out;
}

const uint32_t kLigatures[][4] = {
    {0x132, 'I', 'J', 0},      {0x133, 'i', 'j', 0},      {0x149, 0x2BC, 'n', 0},    {0x1C4, 'D', 0x17D, 0},
    {0x1C5, 'D', 0x17E, 0},    {0x1C6, 'd', 0x17E, 0},    {0x1C7, 'L', 'J', 0},      {0x1C8, 'L', 'j', 0},
    {0x1C9, 'l', 'j', 0},      {0x1CA, 'N', 'J', 0},      {0x1CB, 'N', 'j', 0},      {0x1CC, 'n', 'j', 0},
    {0x1F1, 'D', 'Z', 0},      {0x1F2, 'D', 'z', 0},      {0x1F3, 'd', 'z', 0},      {0xFB00, 'f', 'f', 0},
    {0xFB01, 'f', 'i', 0},     {0xFB02, 'f', 'l', 0},     {0xFB03, 'f', 'f', 'i'},   {0xFB04, 'f', 'f', 'l'},
    {0xFB05, 0x17F, 't', 0},   {0xFB06, 's', 't', 0},
};

// One pass of the character-level fixers, in ftfy's order.
U32 char_fixes(const U32& in) {
  U32 s;
  s.reserve(in.size());
  // fix_c1_controls
  for (uint32_t c : in) s.push_back(c >= 0x80 && c <= 0x9F ? kCp1252High[c - 0x80] : c);
  // fix_latin_ligatures, fix_character_width, uncurl_quotes
  U32 t;
  t.reserve(s.size());
  for (uint32_t c : s) {
    bool done = false;
    for (const auto& l : kLigatures) {
      if (l[0] == c) {
        for (int k = 1; k < 4 && l[k]; k++) t.push_back(l[k]);
        done = true;
        break;
      }
    }
    if (!done && (c == 0x3000 || (c >= 0xFF01 && c <= 0xFFEF))) {
      for (const WidthEntry& w : kWidthMap) {
        if (w.cp == c) {
          append(t, w.value);
          done = true;
          break;
        }
      }
    }
    if (!done) t.push_back(c);
  }
  for (uint32_t& c : t) {
    if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
    else if (c >= 0x201C && c <= 0x201F) c = '"';
  }
  // fix_line_breaks
  U32 u;
  u.reserve(t.size());
  for (size_t i = 0; i < t.size(); i++) {
    uint32_t c = t[i];
    if (c == '\r' && i + 1 < t.size() && t[i + 1] == '\n') continue;
    u.push_back(c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85 ? '\n' : c);
  }
  // remove_terminal_escapes: \033\[[0-9;]*[a-zA-Z]
  U32 v;
  v.reserve(u.size());
  for (size_t i = 0; i < u.size(); i++) {
    if (u[i] == 0x1B && i + 1 < u.size() && u[i + 1] == '[') {
      size_t e = i + 2;
      while (e < u.size() && ((u[e] >= '0' && u[e] <= '9') || u[e] == ';')) e++;
      if (e < u.size() && ((u[e] | 0x20) >= 'a' && (u[e] | 0x20) <= 'z')) {
        i = e;
        continue;
      }
    }
    v.push_back(u[i]);
  }
  // remove_control_chars
  U32 w;
  w.reserve(v.size());
  for (uint32_t c : v) {
    bool drop = c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
                c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
    if (!drop) w.push_back(c);
  }
  return w;
}

bool is_regex_space(uint32_t c) {  // the `regex` module's \s (Unicode White_Space)
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
bool is_py_space(uint32_t c) { return is_regex_space(c) || (c >= 0x1C && c <= 0x1F); }  // str.isspace / str.strip

U32 py_strip(const U32& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_py_space(s[b])) b++;
  while (e > b && is_py_space(s[e - 1])) e--;
  return U32(s.begin() + b, s.begin() + e);
}

U32 ftfy_u32(const U32& text) {
  // fix_text works line by line ('\n' kept with its line); once a line holds '<', unescape_html stays off for the
  // rest of the text (ftfy replaces its config).
  U32 out;
  bool unescape = true;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = pos;
    while (end < text.size() && text[end] != '\n') end++;
    if (end < text.size()) end++;
    U32 seg(text.begin() + pos, text.begin() + end);
    if (std::find(seg.begin(), seg.end(), uint32_t('<')) != seg.end()) unescape = false;
    for (int iter = 0; iter < 16; iter++) {
      U32 orig = seg;
      if (unescape) seg = ftfy_unescape_html(seg);
      for (int k = 0; k < 8; k++) {
        U32 f = fix_mojibake(seg);
        if (f == seg) break;
        seg.swap(f);
      }
      seg = char_fixes(seg);
      if (seg == orig) break;
    }
    out.insert(out.end(), seg.begin(), seg.end());
    pos = end;
  }
  return out;
}

U32 whitespace_u32(const U32& s) {
  U32 o;
  o.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (is_regex_space(s[i])) {
      while (i < s.size() && is_regex_space(s[i])) i++;
      o.push_back(' ');
    } else {
      o.push_back(s[i++]);
    }
  }
  return py_strip(o);
}

}  // namespace

std::string html_unescape(const std::string& utf8) { return encode_utf8(html_unescape_u32(decode_utf8(utf8))); }
std::string ftfy_fix_text(const std::string& utf8) { return encode_utf8(ftfy_u32(decode_utf8(utf8))); }
std::string whitespace_clean(const std::string& utf8) { return encode_utf8(whitespace_u32(decode_utf8(utf8))); }

std::string clean_prompt(const std::string& utf8) {
  U32 s = ftfy_u32(decode_utf8(utf8));
  s = html_unescape_u32(html_unescape_u32(s));
  s = py_strip(s);
  return encode_utf8(whitespace_u32(s));
}

}  // namespace text
}  // namespace td
