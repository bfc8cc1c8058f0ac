#include "agent/state/diagnostic.h"

namespace nodewarden::state {

// Map keys are written `labels["a.b"]`, so a quoted key is cut as a whole even
// when it holds dots.
std::string_view parentPath(std::string_view path) {
  if (path.ends_with("\"]")) {
    auto open = path.rfind("[\"");
    return open == std::string_view::npos ? std::string_view() : path.substr(0, open);
  }
  auto cut = path.find_last_of(".[");
  return cut == std::string_view::npos ? std::string_view() : path.substr(0, cut);
}

std::string Diagnostic::toString() const {
  std::string out = file;
  if (line > 0) {
    out += (out.empty() ? "" : ":") + std::to_string(line);
    if (column > 0) out += ":" + std::to_string(column);
  }
  if (!path.empty()) out += (out.empty() ? "" : ": ") + path;
  if (!message.empty()) out += (out.empty() ? "" : ": ") + message;
  return out;
}

void SourceMap::add(std::string path, Position position) {
  positions_.insert_or_assign(std::move(path), position);
}

Position SourceMap::find(std::string_view path) const {
  while (true) {
    if (auto it = positions_.find(path); it != positions_.end()) return it->second;
    if (path.empty()) return {};
    path = parentPath(path);
  }
}

std::string SourceMap::describe(std::string_view path) const {
  auto it = positions_.find(path);
  if (it == positions_.end() || it->second.line == 0) return std::string(path);
  Diagnostic where{.file = file_, .line = it->second.line, .column = it->second.column};
  return where.toString();
}

Diagnostic SourceMap::diagnostic(std::string path, std::string message) const {
  Position position = find(path);
  return Diagnostic{.file = file_,
                    .line = position.line,
                    .column = position.column,
                    .path = std::move(path),
                    .message = std::move(message)};
}

}  // namespace nodewarden::state
