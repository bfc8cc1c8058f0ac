#include "tests/unit/converge/converge_test_support.h"

#include <openssl/evp.h>

#include <cstdio>

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>

#include "agent/core/atomic_file.h"
#include "agent/state/loader.h"

namespace nodewarden::converge::test {

std::string sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned length = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr), 1);
  std::string hex;
  for (unsigned i = 0; i < length; ++i) {
    char byte[3];
    std::snprintf(byte, sizeof(byte), "%02x", digest[i]);
    hex += byte;
  }
  return hex;
}

namespace {

constexpr std::string_view kHeader = "apiVersion: nodewarden.io/v1\nkind: NodeState\n";

std::string makeRoot() {
  std::string templ = (std::filesystem::temp_directory_path() / "nodewarden-converge-XXXXXX");
  if (::mkdtemp(templ.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << templ << ": " << std::strerror(errno);
    return {};
  }
  return templ;
}

}  // namespace

RootedSystemd::RootedSystemd(systemd::FakeSystemdManager& fake, std::string unitDirectory)
    : fake_(fake), unitDirectory_(std::move(unitDirectory)) {}

void RootedSystemd::noticeUnitFile(const std::string& unit) {
  const bool exists = ::access((unitDirectory_ + "/" + unit).c_str(), F_OK) == 0;
  auto [it, first] = fileSeen_.try_emplace(unit, exists);
  if (first || it->second == exists) return;
  it->second = exists;
  fake_.setUnitFile(unit, exists);
}

void RootedSystemd::noticeUnitFiles() {
  for (const auto& [unit, seen] : fileSeen_) noticeUnitFile(unit);
}

core::Result<systemd::UnitStatus> RootedSystemd::unitStatus(const std::string& unit) {
  noticeUnitFile(unit);
  return fake_.unitStatus(unit);
}

core::Status RootedSystemd::daemonReload() {
  noticeUnitFiles();
  return fake_.daemonReload();
}

core::Status RootedSystemd::enableUnitFiles(const std::vector<std::string>& units) {
  noticeUnitFiles();
  return fake_.enableUnitFiles(units);
}

core::Status RootedSystemd::disableUnitFiles(const std::vector<std::string>& units) {
  noticeUnitFiles();
  return fake_.disableUnitFiles(units);
}

core::Status RootedSystemd::resetFailed(const std::string& unit) { return fake_.resetFailed(unit); }

void RootedSystemd::runJob(systemd::JobKind kind, const std::string& unit,
                           systemd::JobCallback done) {
  if (onJob_) onJob_(unit);
  fake_.runJob(kind, unit, std::move(done));
}

ConvergeTest::ConvergeTest()
    : root_(makeRoot()),
      systemd_(fake_, root_ + "/etc/systemd/system"),
      planner_(systemd_, root_),
      executor_(systemd_, clock_) {}

ConvergeTest::~ConvergeTest() {
  if (!root_.empty()) std::filesystem::remove_all(root_);
}

v1::NodeState ConvergeTest::load(std::string_view body) {
  state::LoadResult loaded =
      state::loadString(std::string(kHeader) + std::string(body), "node.yaml");
  for (const auto& error : loaded.errors) ADD_FAILURE() << error.toString();
  return loaded.state.value_or(v1::NodeState());
}

Plan ConvergeTest::plan(std::string_view body) {
  core::Result<Plan> planned = planner_.plan(load(body));
  if (!planned) {
    ADD_FAILURE() << "plan: " << planned.status().message();
    return Plan();
  }
  return std::move(planned).value();
}

Plan ConvergeTest::plan(std::string_view body, const Providers& providers) {
  core::Result<Plan> planned = Planner(systemd_, root_, providers).plan(load(body));
  if (!planned) {
    ADD_FAILURE() << "plan: " << planned.status().message();
    return Plan();
  }
  return std::move(planned).value();
}

Report ConvergeTest::apply(Plan plan) {
  std::optional<Report> report;
  executor_.apply(std::move(plan), [&report](Report done) { report = std::move(done); });
  fake_.completeJobs();
  if (!report) {
    ADD_FAILURE() << "the executor did not report once every job had finished";
    return Report();
  }
  return std::move(*report);
}

Report ConvergeTest::converge(std::string_view body) { return apply(plan(body)); }

std::string ConvergeTest::read(const std::string& nodePath) const {
  auto content = core::readFile(hostPath(nodePath), 1 << 20);
  if (!content) {
    ADD_FAILURE() << content.status().message();
    return {};
  }
  return *content;
}

void ConvergeTest::write(const std::string& nodePath, std::string_view content, mode_t mode) const {
  std::filesystem::create_directories(std::filesystem::path(hostPath(nodePath)).parent_path());
  core::Status written = core::writeFileAtomic(hostPath(nodePath), content, {.mode = mode});
  ASSERT_TRUE(written) << written.message();
}

void ConvergeTest::makeDirectory(const std::string& nodePath) const {
  std::filesystem::create_directories(hostPath(nodePath));
}

bool ConvergeTest::exists(const std::string& nodePath) const {
  struct stat st;
  return ::lstat(hostPath(nodePath).c_str(), &st) == 0;
}

struct stat ConvergeTest::statOf(const std::string& nodePath) const {
  struct stat st {};
  if (::lstat(hostPath(nodePath).c_str(), &st) < 0) {
    ADD_FAILURE() << "lstat " << nodePath << ": " << std::strerror(errno);
  }
  return st;
}

std::map<std::string, std::string> ConvergeTest::snapshot() const {
  std::map<std::string, std::string> entries;
  auto add = [&](const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) {
      ADD_FAILURE() << "lstat " << path << ": " << std::strerror(errno);
      return;
    }
    auto nanoseconds = [](const timespec& t) {
      return std::to_string(t.tv_sec) + "." + std::to_string(t.tv_nsec);
    };
    entries[path.substr(root_.size())] =
        "inode " + std::to_string(st.st_ino) + ", mode " + std::to_string(st.st_mode) + ", mtime " +
        nanoseconds(st.st_mtim) + ", ctime " + nanoseconds(st.st_ctim);
  };
  add(root_);
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root_)) {
    add(entry.path().string());
  }
  return entries;
}

void ConvergeTest::setActiveState(const std::string& unit, const std::string& activeState) {
  systemd::UnitStatus status = fake_.unit(unit);
  status.activeState = activeState;
  status.subState = activeState == "active" ? "running" : "dead";
  fake_.setUnit(unit, std::move(status));
}

std::string yamlQuoted(std::string_view text) {
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '\n') {
      quoted += "\\n";
    } else {
      if (c == '"' || c == '\\') quoted += '\\';
      quoted += c;
    }
  }
  return quoted + "\"";
}

std::vector<std::string> actions(const std::vector<Change>& changes) {
  std::vector<std::string> out;
  for (const Change& change : changes) out.push_back(change.action + " " + change.resource);
  return out;
}

const Change& findChange(const std::vector<Change>& changes, const std::string& action,
                         const std::string& resource) {
  for (const Change& change : changes) {
    if (change.action == action && change.resource == resource) return change;
  }
  ADD_FAILURE() << "no change \"" << action << " " << resource << "\"";
  static const Change kNone;
  return kNone;
}

}  // namespace nodewarden::converge::test
