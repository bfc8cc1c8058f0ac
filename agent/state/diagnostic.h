#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace nodewarden::state {

// One problem found in a desired state, with where it is: the file, the 1-based
// line and column (0 when unknown, as for a state that came from the server),
// and the field path ("files[2].mode").
struct Diagnostic {
  std::string file;
  int line = 0;
  int column = 0;
  std::string path;
  std::string message;

  // "file:line:col: path: message", leaving out the parts that are empty or 0.
  std::string toString() const;
};

// A 1-based line and column in a document; 0 when unknown.
struct Position {
  int line = 0;
  int column = 0;
};

// Where each field of a loaded state was written, by field path. The loader
// fills it while mapping YAML so that checks on the proto afterwards can still
// point at the document; a state with no document has an empty map and its
// diagnostics carry only field paths.
class SourceMap final {
 public:
  explicit SourceMap(std::string file = {}) : file_(std::move(file)) {}

  const std::string& file() const { return file_; }
  void add(std::string path, Position position);

  // The position of `path` or, when it was not written (a missing required
  // field), of its nearest ancestor that was.
  Position find(std::string_view path) const;

  // "node.yaml:8:11" when `path` has a position, otherwise the path itself.
  std::string describe(std::string_view path) const;

  Diagnostic diagnostic(std::string path, std::string message) const;

 private:
  std::string file_;
  std::map<std::string, Position, std::less<>> positions_;
};

// The path one level up: "files[2].mode" → "files[2]" → "files" → "".
std::string_view parentPath(std::string_view path);

}  // namespace nodewarden::state
