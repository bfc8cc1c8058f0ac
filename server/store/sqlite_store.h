#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "server/store/store.h"

namespace nodewarden::server {

// The SQLite handle and its prepared statements (sqlite_store.cpp).
class SqliteConnection;

// The Store in one SQLite file, in WAL mode so that readers run beside the
// writer. One connection serves every thread, one call at a time; its
// statements are prepared once and kept.
class SqliteStore final : public Store {
 public:
  // The schema version this code reads and writes (PRAGMA user_version).
  static constexpr int kSchemaVersion = 1;

  // Opens the store at `path`, creating the file (0600) and its missing parent
  // directories (0700), and creating or migrating the schema. A file that is
  // not a nodewarden store, or has a newer schema, is refused. ":memory:"
  // opens a store that lives as long as the object, for tests.
  static core::Result<std::unique_ptr<SqliteStore>> open(const std::string& path);

  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // "wal" for a file, "memory" for ":memory:": what PRAGMA journal_mode reports.
  core::Result<std::string> journalMode();

  core::Status putToken(const TokenRecord& token) override;
  core::Result<std::vector<TokenRecord>> tokens() override;
  core::Result<std::optional<TokenRecord>> token(const std::string& id) override;
  core::Status deleteToken(const std::string& id) override;

  core::Result<NodeRecord> enroll(const Enrollment& enrollment, Time now) override;
  core::Result<std::optional<NodeRecord>> node(const std::string& name) override;
  core::Result<std::vector<NodeRecord>> nodes() override;
  core::Status revokeNode(const std::string& name) override;
  core::Result<bool> isRevokedSerial(const std::string& serial) override;

  core::Status recordHello(const std::string& node, const std::string& facts, Time now) override;
  core::Status touch(const std::string& node, Time now) override;
  core::Status restartSequence(const std::string& node, uint64_t lastSequence) override;
  core::Status setDesiredVersion(const std::string& node, const std::string& version) override;

  core::Result<bool> recordReport(const std::string& node, uint64_t sequence,
                                  const std::string& report, const std::string& appliedVersion,
                                  const std::string& result, Time now) override;
  core::Result<bool> recordHealth(const std::string& node, uint64_t sequence,
                                  const std::string& conditions,
                                  const std::vector<std::pair<Time, std::string>>& events,
                                  Time now) override;
  core::Result<bool> recordUsage(const std::string& node, uint64_t sequence,
                                 const std::string& usage, Time now) override;
  core::Result<bool> recordDropped(const std::string& node, uint64_t sequence, uint64_t count,
                                   Time now) override;

  core::Result<std::vector<std::string>> events(const std::string& node, size_t limit) override;

  core::Result<int64_t> putState(const std::string& group, const std::string& node,
                                 const std::string& document, Time now) override;
  core::Result<std::optional<StateRecord>> groupState(const std::string& group) override;
  core::Result<std::optional<StateRecord>> nodeState(const std::string& node) override;
  core::Result<std::vector<StateRecord>> states() override;

  core::Result<bool> raiseAlert(const AlertRecord& alert) override;
  core::Result<bool> resolveAlert(const std::string& node, const std::string& kind,
                                  Time now) override;
  core::Result<std::vector<AlertRecord>> alerts(bool includeResolved) override;

 private:
  explicit SqliteStore(std::unique_ptr<SqliteConnection> connection);

  std::mutex mutex_;
  std::unique_ptr<SqliteConnection> connection_;  // used only with mutex_ held
};

}  // namespace nodewarden::server
