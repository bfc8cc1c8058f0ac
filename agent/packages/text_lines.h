#pragma once

#include <cstddef>
#include <string_view>

namespace nodewarden::packages {

// Walks a text one line at a time without copying it; lines are views into the text.
class TextLines final {
 public:
  explicit TextLines(std::string_view text) : text_(text) {}

  // The next line without its '\n'; false at the end of the text.
  bool next(std::string_view& line) {
    if (pos_ >= text_.size()) return false;
    const std::size_t end = text_.find('\n', pos_);
    const std::size_t stop = end == std::string_view::npos ? text_.size() : end;
    line = text_.substr(pos_, stop - pos_);
    pos_ = stop + 1;
    ++number_;
    return true;
  }

  // 1-based number of the line next() returned last.
  std::size_t number() const { return number_; }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
  std::size_t number_ = 0;
};

inline bool isBlank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// The view without leading and trailing spaces, tabs and carriage returns.
inline std::string_view trimBlanks(std::string_view text) {
  while (!text.empty() && isBlank(text.front())) text.remove_prefix(1);
  while (!text.empty() && isBlank(text.back())) text.remove_suffix(1);
  return text;
}

}  // namespace nodewarden::packages
