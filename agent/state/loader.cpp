#include "agent/state/loader.h"

#include <algorithm>
#include <set>
#include <tuple>
#include <variant>

#include "agent/core/atomic_file.h"
#include "agent/state/validate.h"
#include "agent/state/yaml_document.h"
#include "agent/state/yaml_mapping.h"

namespace nodewarden::state {

namespace {

// Without aliases a document has fewer nodes than bytes. Aliases may share a
// mapping or a content between resources, but nesting them multiplies the
// work at each level of the schema, so nodes are bounded by the document's
// size and strings by what the largest document could hold (twice, for
// escapes that grow: "\L" is three bytes of UTF-8).
MappingLimits limitsFor(size_t documentBytes) {
  return MappingLimits{.maxNodes = 4 * documentBytes + 4096, .maxBytes = 2 * kMaxDocumentBytes};
}

// apiVersion and kind name the schema; anything else is another document type
// that happens to be YAML.
void checkHeader(const v1::NodeState& state, const SourceMap& sources,
                 const std::set<std::string, std::less<>>& failed,
                 std::vector<Diagnostic>& errors) {
  auto check = [&](std::string path, const std::string& value, std::string_view expected,
                   const std::string& what) {
    if (failed.contains(path) || value == expected) return;
    std::string message =
        value.empty() ? "required; write " + path + ": " + std::string(expected)
                      : "\"" + value + "\" is not " + what + "; expected " + std::string(expected);
    errors.push_back(sources.diagnostic(std::move(path), std::move(message)));
  };
  check("apiVersion", state.api_version(), kApiVersion, "a supported version");
  check("kind", state.kind(), kKind, "a kind this agent reads");
}

// A field that could not be mapped is left at its default, which validation
// would report again in other words ("required"); only the first report of a
// problem is useful.
bool isUnder(std::string_view path, const std::set<std::string, std::less<>>& failed) {
  for (; !path.empty(); path = parentPath(path)) {
    if (failed.contains(path)) return true;
  }
  return false;
}

void sortAndBound(std::vector<Diagnostic>& errors) {
  std::stable_sort(errors.begin(), errors.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  if (errors.size() <= kMaxDiagnostics) return;
  Diagnostic more{
      .file = errors.front().file,
      .message = std::to_string(errors.size() - kMaxDiagnostics) + " more errors not shown"};
  errors.resize(kMaxDiagnostics);
  errors.push_back(std::move(more));
}

LoadResult failure(Diagnostic diagnostic) {
  LoadResult result;
  result.errors.push_back(std::move(diagnostic));
  return result;
}

// What the document is called in the messages about it as a whole: a state
// file, or the agent's configuration through loadMessage().
struct DocumentWording {
  std::string sizeLimit;    // "a state is limited to"
  std::string oneDocument;  // "a state file holds one NodeState"
  std::string whenEmpty;    // what the document should start with
};

// A parsed document ready for mapping, or the one diagnostic that stops it.
struct Document {
  std::optional<YamlDocument> yaml;
  const YamlNode* root = nullptr;  // the first document's, in `yaml`
  std::vector<Diagnostic> errors;  // problems of the document as a whole
  std::optional<Diagnostic> fatal;
};

Document parse(std::string_view text, const std::string& name, const DocumentWording& wording) {
  Document document;
  if (text.size() > kMaxDocumentBytes) {
    document.fatal = Diagnostic{.file = name,
                                .message = "the document is " + std::to_string(text.size()) +
                                           " bytes; " + wording.sizeLimit + " 16 MiB (" +
                                           std::to_string(kMaxDocumentBytes) + " bytes)"};
    return document;
  }
  auto parsed = YamlDocument::parse(text, name);
  if (auto* error = std::get_if<Diagnostic>(&parsed)) {
    document.fatal = std::move(*error);
    return document;
  }
  const YamlDocument& yaml = document.yaml.emplace(std::move(std::get<YamlDocument>(parsed)));
  const auto roots = yaml.documents();
  if (roots.empty() || roots.front()->isNull()) {
    document.fatal =
        Diagnostic{.file = name, .message = "the document is empty; " + wording.whenEmpty};
    return document;
  }
  document.root = roots.front();
  if (roots.size() > 1) {
    const Position at = roots[1]->position();
    document.errors.push_back({.file = name,
                               .line = at.line,
                               .column = at.column,
                               .message = "a second document; " + wording.oneDocument});
  }
  return document;
}

}  // namespace

LoadResult loadString(std::string_view yaml, const std::string& name) {
  const DocumentWording wording{
      .sizeLimit = "a state is limited to",
      .oneDocument = "a state file holds one " + std::string(kKind),
      .whenEmpty = "a state starts with apiVersion: " + std::string(kApiVersion) +
                   " and kind: " + std::string(kKind)};
  Document document = parse(yaml, name, wording);
  if (document.fatal) return failure(std::move(*document.fatal));

  const YamlNode& root = *document.root;
  SourceMap sources(name);
  sources.add("", root.position());
  v1::NodeState state;
  MappingOutcome mapping = mapYaml(root, state, limitsFor(yaml.size()), sources);
  std::vector<Diagnostic> errors = std::move(mapping.errors);
  errors.insert(errors.end(), document.errors.begin(), document.errors.end());
  std::set<std::string, std::less<>> failed;
  for (const auto& error : errors) {
    if (!error.path.empty()) failed.insert(error.path);
  }
  if (mapping.complete && root.isMapping()) {
    checkHeader(state, sources, failed, errors);
    for (auto& problem : validate(state, sources)) {
      if (!isUnder(problem.path, failed)) errors.push_back(std::move(problem));
    }
  }

  LoadResult result;
  if (errors.empty()) {
    result.state = std::move(state);
  } else {
    sortAndBound(errors);
    result.errors = std::move(errors);
  }
  return result;
}

std::vector<Diagnostic> loadMessage(std::string_view yaml, const std::string& name,
                                    google::protobuf::Message& message) {
  const DocumentWording wording{.sizeLimit = "the limit is",
                                .oneDocument = "the file holds one",
                                .whenEmpty = "expected a mapping of settings"};
  Document document = parse(yaml, name, wording);
  if (document.fatal) return {std::move(*document.fatal)};
  SourceMap sources(name);
  sources.add("", document.root->position());
  MappingOutcome mapping = mapYaml(*document.root, message, limitsFor(yaml.size()), sources);
  std::vector<Diagnostic> errors = std::move(mapping.errors);
  errors.insert(errors.end(), document.errors.begin(), document.errors.end());
  sortAndBound(errors);
  return errors;
}

LoadResult loadFile(const std::string& path) {
  auto text = core::readFile(path, kMaxDocumentBytes);
  if (!text) return failure({.message = text.status().message()});
  return loadString(*text, path);
}

}  // namespace nodewarden::state
