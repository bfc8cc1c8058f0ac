#include "server/store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/paths.h"
#include "agent/core/unique_fd.h"

namespace nodewarden::server {

using core::Result;
using core::Status;

class SqliteConnection final {
 public:
  struct DatabaseDeleter {
    // close_v2 rather than close: it cannot fail with statements still open.
    void operator()(sqlite3* database) const { sqlite3_close_v2(database); }
  };
  struct StatementDeleter {
    void operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }
  };

  std::unique_ptr<sqlite3, DatabaseDeleter> db;
  // By SQL text. Declared after db: finalized before it is closed.
  std::map<std::string, std::unique_ptr<sqlite3_stmt, StatementDeleter>, std::less<>> statements;
};

namespace {

constexpr std::string_view kInMemory = ":memory:";
// Long enough to ride out a checkpoint, or a backup taken by another process.
constexpr int kBusyTimeoutMs = 5000;
// "NWSV": marks the file as a nodewarden store, so that another program's
// database is refused rather than written into.
constexpr int32_t kApplicationId = 0x4e575356;

// Entry i takes the schema from version i to i + 1. Times are nanoseconds since
// the Unix epoch; labels a JSON object; blobs are the server's protobuf bytes.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE tokens (
  id TEXT PRIMARY KEY NOT NULL,
  secret TEXT NOT NULL,
  group_name TEXT NOT NULL,
  labels TEXT NOT NULL,
  description TEXT NOT NULL,
  created INTEGER NOT NULL,
  expires INTEGER NOT NULL,
  usage_limit INTEGER NOT NULL,
  uses INTEGER NOT NULL
);
CREATE TABLE nodes (
  name TEXT PRIMARY KEY NOT NULL,
  group_name TEXT NOT NULL,
  labels TEXT NOT NULL,
  enrolled INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  certificate_serial TEXT NOT NULL,
  certificate_expires INTEGER NOT NULL,
  key_pin TEXT NOT NULL DEFAULT '',
  revoked INTEGER NOT NULL DEFAULT 0,
  desired_version TEXT NOT NULL DEFAULT '',
  applied_version TEXT NOT NULL DEFAULT '',
  last_result TEXT NOT NULL DEFAULT '',
  facts BLOB NOT NULL DEFAULT x'',
  conditions BLOB NOT NULL DEFAULT x'',
  usage BLOB NOT NULL DEFAULT x'',
  last_report BLOB NOT NULL DEFAULT x'',
  last_sequence INTEGER NOT NULL DEFAULT 0,
  dropped INTEGER NOT NULL DEFAULT 0
);
-- Every RPC checks its client certificate's serial.
CREATE INDEX nodes_by_serial ON nodes (certificate_serial);
CREATE TABLE events (
  id INTEGER PRIMARY KEY,
  node TEXT NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
  at INTEGER NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX events_by_node ON events (node, id);
-- A group's state has node '', a node's override group_name ''.
CREATE TABLE states (
  group_name TEXT NOT NULL,
  node TEXT NOT NULL,
  revision INTEGER NOT NULL,
  document BLOB NOT NULL,
  updated INTEGER NOT NULL,
  PRIMARY KEY (group_name, node)
);
CREATE TABLE alerts (
  id INTEGER PRIMARY KEY,
  node TEXT NOT NULL,
  group_name TEXT NOT NULL,
  kind TEXT NOT NULL,
  message TEXT NOT NULL,
  since INTEGER NOT NULL,
  resolved INTEGER
);
CREATE UNIQUE INDEX alerts_unresolved ON alerts (node, kind) WHERE resolved IS NULL;
)sql",
};
static_assert(std::size(kMigrations) == SqliteStore::kSchemaVersion);

constexpr std::string_view kTokenColumns =
    "id, secret, group_name, labels, description, created, expires, usage_limit, uses";
constexpr std::string_view kNodeColumns =
    "name, group_name, labels, enrolled, last_seen, certificate_serial, certificate_expires, "
    "revoked, desired_version, applied_version, last_result, facts, conditions, usage, "
    "last_report, last_sequence, dropped, key_pin";
constexpr std::string_view kStateColumns = "group_name, node, revision, document, updated";
constexpr std::string_view kAlertColumns = "id, node, group_name, kind, message, since, resolved";

std::string select(std::string_view columns, std::string_view rest) {
  std::string sql = "SELECT ";
  sql += columns;
  sql += ' ';
  sql += rest;
  return sql;
}

// Nanoseconds: a time_point round-trips exactly, Time::max() included.
int64_t toStored(Time time) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
}

Time fromStored(int64_t nanoseconds) {
  return Time(std::chrono::duration_cast<Time::duration>(std::chrono::nanoseconds(nanoseconds)));
}

std::string utcText(Time time) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::string withWhat(std::string_view what, std::string_view message) {
  std::string text(what);
  text += ": ";
  text += message;
  return text;
}

Status sqliteError(sqlite3* db, int rc, std::string_view what) {
  // The connection's message has the detail ("UNIQUE constraint failed:
  // tokens.id") when it is about this error.
  const char* message =
      db != nullptr && sqlite3_errcode(db) == rc ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const int primary = rc & 0xff;
  // Another process held the database past the busy timeout: worth a retry.
  const auto code = primary == SQLITE_BUSY || primary == SQLITE_LOCKED ? Status::Code::kTimeout
                                                                       : Status::Code::kInternal;
  return Status::error(code, withWhat(what, message));
}

Result<std::string> labelsText(const Labels& labels, std::string_view what) {
  try {
    return nlohmann::json(labels).dump();
  } catch (const nlohmann::json::exception& e) {
    return Status::invalidArgument(withWhat(what, std::string("labels: ") + e.what()));
  }
}

Result<Labels> parseLabels(const std::string& text, std::string_view what) {
  const auto json = nlohmann::json::parse(text, nullptr, false);
  if (!json.is_object()) {
    return Status::internal(withWhat(what, "stored labels are not a JSON object: " + text));
  }
  Labels labels;
  for (auto it = json.begin(); it != json.end(); ++it) {
    if (!it.value().is_string()) {
      return Status::internal(withWhat(what, "stored label " + it.key() + " is not a string"));
    }
    labels.emplace(it.key(), it.value().get<std::string>());
  }
  return labels;
}

// A cached statement in use: binds its parameters in order, steps, reads
// columns, and is reset for its next use when it goes out of scope.
class Statement final {
 public:
  Statement(sqlite3* db, sqlite3_stmt* statement, std::string_view what)
      : db_(db), statement_(statement), what_(what) {}
  Statement(Statement&& other) noexcept
      : db_(other.db_),
        statement_(std::exchange(other.statement_, nullptr)),
        what_(other.what_),
        next_(other.next_),
        bindError_(other.bindError_) {}
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement& operator=(Statement&&) = delete;
  ~Statement() {
    if (statement_ == nullptr) return;
    // Releases its read lock and the bound copies until the next use.
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
  }

  // Values are copied (SQLITE_TRANSIENT): a temporary may be bound.
  Statement& bindText(std::string_view value) {
    return bound(sqlite3_bind_text64(statement_, next_++, nonNull(value), value.size(),
                                     SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  Statement& bindBlob(std::string_view value) {
    return bound(
        sqlite3_bind_blob64(statement_, next_++, nonNull(value), value.size(), SQLITE_TRANSIENT));
  }
  Statement& bindInt(int64_t value) {
    return bound(sqlite3_bind_int64(statement_, next_++, value));
  }
  Statement& bindTime(Time value) { return bindInt(toStored(value)); }
  Statement& bindNull() { return bound(sqlite3_bind_null(statement_, next_++)); }

  // True with a row to read, false when done.
  Result<bool> step() {
    if (bindError_ != SQLITE_OK) return sqliteError(db_, bindError_, what_);
    const int rc = sqlite3_step(statement_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return sqliteError(db_, rc, what_);
  }

  // Steps to the end, for statements whose rows nobody reads.
  Status run() {
    for (;;) {
      auto row = step();
      if (!row) return row.status();
      if (!*row) return Status::ok();
    }
  }

  // Rows the last INSERT, UPDATE or DELETE changed.
  int changes() const { return sqlite3_changes(db_); }
  std::string_view what() const { return what_; }

  bool isNull(int column) const { return sqlite3_column_type(statement_, column) == SQLITE_NULL; }
  int64_t integer(int column) const { return sqlite3_column_int64(statement_, column); }
  Time time(int column) const { return fromStored(integer(column)); }
  std::string text(int column) const {
    const auto* data = sqlite3_column_text(statement_, column);
    const int size = sqlite3_column_bytes(statement_, column);
    return data == nullptr ? std::string()
                           : std::string(reinterpret_cast<const char*>(data), size_t(size));
  }
  std::string blob(int column) const {
    const auto* data = static_cast<const char*>(sqlite3_column_blob(statement_, column));
    const int size = sqlite3_column_bytes(statement_, column);
    return data == nullptr ? std::string() : std::string(data, size_t(size));
  }

 private:
  // SQLite binds NULL for a null pointer, even with a size of 0.
  static const char* nonNull(std::string_view value) {
    return value.data() == nullptr ? "" : value.data();
  }
  Statement& bound(int rc) {
    if (rc != SQLITE_OK && bindError_ == SQLITE_OK) bindError_ = rc;
    return *this;
  }

  sqlite3* db_;
  sqlite3_stmt* statement_;
  std::string_view what_;
  int next_ = 1;
  int bindError_ = SQLITE_OK;
};

// The cached statement for `sql`, prepared on its first use. `what` names the
// operation in errors and must outlive the statement. A statement is used by
// one caller at a time: nobody asks for one it still holds.
Result<Statement> prepare(SqliteConnection& connection, std::string_view sql,
                          std::string_view what) {
  sqlite3* db = connection.db.get();
  auto it = connection.statements.find(sql);
  if (it == connection.statements.end()) {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v3(db, sql.data(), int(sql.size()), SQLITE_PREPARE_PERSISTENT,
                                      &raw, nullptr);
    std::unique_ptr<sqlite3_stmt, SqliteConnection::StatementDeleter> statement(raw);
    if (rc != SQLITE_OK) return sqliteError(db, rc, what);
    it = connection.statements.emplace(std::string(sql), std::move(statement)).first;
  }
  return Statement(db, it->second.get(), what);
}

Status execute(SqliteConnection& connection, std::string_view sql, std::string_view what) {
  auto statement = prepare(connection, sql, what);
  if (!statement) return statement.status();
  return statement->run();
}

// Runs SQL used once (schema, settings): not worth a cached statement.
Status executeScript(SqliteConnection& connection, const std::string& sql, std::string_view what) {
  sqlite3* db = connection.db.get();
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? Status::ok() : sqliteError(db, rc, what);
}

// The first column of the one row `sql` returns.
Result<int64_t> queryInteger(SqliteConnection& connection, std::string_view sql,
                             std::string_view what) {
  auto statement = prepare(connection, sql, what);
  if (!statement) return statement.status();
  auto row = statement->step();
  if (!row) return row.status();
  if (!*row) return Status::internal(withWhat(what, "no result"));
  return statement->integer(0);
}

Result<std::string> queryText(SqliteConnection& connection, std::string_view sql,
                              std::string_view what) {
  auto statement = prepare(connection, sql, what);
  if (!statement) return statement.status();
  auto row = statement->step();
  if (!row) return row.status();
  if (!*row) return Status::internal(withWhat(what, "no result"));
  return statement->text(0);
}

// BEGIN IMMEDIATE takes the write lock up front, so a transaction that reads
// before it writes never fails half-way to upgrade its lock. Rolled back unless
// committed.
class Transaction final {
 public:
  explicit Transaction(SqliteConnection& connection) : connection_(connection) {}
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    // SQLite has rolled back by itself after some errors (a full disk).
    if (open_ && sqlite3_get_autocommit(connection_.db.get()) == 0) {
      (void)execute(connection_, "ROLLBACK", "roll back");
    }
  }

  Status begin(std::string_view what) {
    Status status = execute(connection_, "BEGIN IMMEDIATE", what);
    open_ = status.isOk();
    return status;
  }
  Status commit(std::string_view what) {
    Status status = execute(connection_, "COMMIT", what);
    if (status.isOk()) open_ = false;
    return status;
  }

 private:
  SqliteConnection& connection_;
  bool open_ = false;
};

Result<TokenRecord> tokenFrom(const Statement& row) {
  auto labels = parseLabels(row.text(3), row.what());
  if (!labels) return labels.status();
  TokenRecord token;
  token.id = row.text(0);
  token.secret = row.text(1);
  token.group = row.text(2);
  token.labels = std::move(*labels);
  token.description = row.text(4);
  token.created = row.time(5);
  token.expires = row.time(6);
  token.usageLimit = uint32_t(row.integer(7));
  token.uses = uint32_t(row.integer(8));
  return token;
}

Result<NodeRecord> nodeFrom(const Statement& row) {
  auto labels = parseLabels(row.text(2), row.what());
  if (!labels) return labels.status();
  NodeRecord node;
  node.name = row.text(0);
  node.group = row.text(1);
  node.labels = std::move(*labels);
  node.enrolled = row.time(3);
  node.lastSeen = row.time(4);
  node.certificateSerial = row.text(5);
  node.certificateExpires = row.time(6);
  node.revoked = row.integer(7) != 0;
  node.desiredVersion = row.text(8);
  node.appliedVersion = row.text(9);
  node.lastResult = row.text(10);
  node.facts = row.blob(11);
  node.conditions = row.blob(12);
  node.usage = row.blob(13);
  node.lastReport = row.blob(14);
  node.lastSequence = uint64_t(row.integer(15));
  node.dropped = uint64_t(row.integer(16));
  node.keyPin = row.text(17);
  return node;
}

Result<StateRecord> stateFrom(const Statement& row) {
  StateRecord state;
  state.group = row.text(0);
  state.node = row.text(1);
  state.revision = row.integer(2);
  state.document = row.blob(3);
  state.updated = row.time(4);
  return state;
}

Result<AlertRecord> alertFrom(const Statement& row) {
  AlertRecord alert;
  alert.id = row.integer(0);
  alert.node = row.text(1);
  alert.group = row.text(2);
  alert.kind = row.text(3);
  alert.message = row.text(4);
  alert.since = row.time(5);
  if (!row.isNull(6)) alert.resolved = row.time(6);
  return alert;
}

// Every row of a bound statement, read by `read`.
template <typename Read>
auto readAll(Statement& statement, Read read)
    -> Result<std::vector<std::remove_cvref_t<decltype(*read(statement))>>> {
  std::vector<std::remove_cvref_t<decltype(*read(statement))>> records;
  for (;;) {
    auto row = statement.step();
    if (!row) return row.status();
    if (!*row) return records;
    auto record = read(statement);
    if (!record) return record.status();
    records.push_back(std::move(*record));
  }
}

// The first row of a bound statement, if any.
template <typename Read>
auto readOne(Statement& statement, Read read)
    -> Result<std::optional<std::remove_cvref_t<decltype(*read(statement))>>> {
  using Record = std::remove_cvref_t<decltype(*read(statement))>;
  auto row = statement.step();
  if (!row) return row.status();
  if (!*row) return std::optional<Record>();
  auto record = read(statement);
  if (!record) return record.status();
  return std::optional<Record>(std::move(*record));
}

Result<std::optional<TokenRecord>> readToken(SqliteConnection& connection, const std::string& id,
                                             std::string_view what) {
  static const std::string kSql = select(kTokenColumns, "FROM tokens WHERE id = ?");
  auto statement = prepare(connection, kSql, what);
  if (!statement) return statement.status();
  statement->bindText(id);
  return readOne(*statement, tokenFrom);
}

Result<std::optional<NodeRecord>> readNode(SqliteConnection& connection, const std::string& name,
                                           std::string_view what) {
  static const std::string kSql = select(kNodeColumns, "FROM nodes WHERE name = ?");
  auto statement = prepare(connection, kSql, what);
  if (!statement) return statement.status();
  statement->bindText(name);
  return readOne(*statement, nodeFrom);
}

Status unknownNode(const std::string& name) { return Status::notFound("unknown node " + name); }

// Runs an UPDATE of one node whose first parameters `bind` fills and whose
// last is the node's name; kNotFound when there is no such node.
template <typename Bind>
Status updateNode(SqliteConnection& connection, std::string_view sql, const std::string& node,
                  std::string_view what, Bind bind) {
  auto statement = prepare(connection, sql, what);
  if (!statement) return statement.status();
  bind(*statement);
  if (Status status = statement->bindText(node).run(); !status) return status;
  return statement->changes() > 0 ? Status::ok() : unknownNode(node);
}

// Takes the node's sequence to `sequence`, and lastSeen to `now`, when the
// sequence is new: true when it was, false for a resend, kNotFound for an
// unknown node. The caller holds a transaction.
Result<bool> advanceSequence(SqliteConnection& connection, const std::string& node,
                             uint64_t sequence, Time now, std::string_view what) {
  if (sequence > uint64_t(std::numeric_limits<int64_t>::max())) {
    return Status::invalidArgument(
        withWhat(what, "sequence " + std::to_string(sequence) + " is out of range"));
  }
  {
    auto statement = prepare(
        connection,
        "UPDATE nodes SET last_sequence = ?, last_seen = ? WHERE name = ? AND last_sequence < ?",
        what);
    if (!statement) return statement.status();
    statement->bindInt(int64_t(sequence)).bindTime(now).bindText(node).bindInt(int64_t(sequence));
    if (Status status = statement->run(); !status) return status;
    if (statement->changes() > 0) return true;
  }
  auto statement = prepare(connection, "SELECT 1 FROM nodes WHERE name = ?", what);
  if (!statement) return statement.status();
  auto row = statement->bindText(node).step();
  if (!row) return row.status();
  if (!*row) return unknownNode(node);
  return false;
}

// Creates `directory` and its missing parents, 0700: they lead to secrets.
Status makeDirectories(const std::string& directory) {
  struct stat st;
  if (::stat(directory.c_str(), &st) == 0) return Status::ok();
  if (errno != ENOENT) return Status::fromErrno(errno, "stat " + directory);
  const std::string parent = core::parentDirectory(directory);
  if (parent != directory) {
    if (Status status = makeDirectories(parent); !status) return status;
  }
  if (::mkdir(directory.c_str(), 0700) < 0 && errno != EEXIST) {
    return Status::fromErrno(errno, "create directory " + directory);
  }
  return Status::ok();
}

Status configure(SqliteConnection& connection, bool inMemory, std::string_view what) {
  sqlite3_busy_timeout(connection.db.get(), kBusyTimeoutMs);
  // The first statement to read the file: a file that is not a database fails here.
  auto mode = queryText(connection, "PRAGMA journal_mode = WAL", what);
  if (!mode) return mode.status();
  const std::string_view expected = inMemory ? "memory" : "wal";
  if (*mode != expected) {
    return Status::failedPrecondition(
        withWhat(what, "the journal mode is " + *mode + ", not " + std::string(expected)));
  }
  // In WAL mode NORMAL loses no integrity on a crash, only the last commits on
  // a power loss, and saves an fsync per transaction.
  return executeScript(connection, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;", what);
}

Status migrate(SqliteConnection& connection, const std::string& path) {
  const std::string what = "migrate store " + path;
  Transaction transaction(connection);
  if (Status status = transaction.begin(what); !status) return status;
  auto version = queryInteger(connection, "PRAGMA user_version", what);
  if (!version) return version.status();
  if (*version > SqliteStore::kSchemaVersion) {
    return Status::failedPrecondition(
        "store " + path + " has schema version " + std::to_string(*version) +
        ", newer than the version " + std::to_string(SqliteStore::kSchemaVersion) +
        " this nodewarden-server knows; run a newer nodewarden-server");
  }
  if (*version == 0) {
    auto tables = queryInteger(connection, "SELECT count(*) FROM sqlite_master", what);
    if (!tables) return tables.status();
    if (*tables > 0) {
      return Status::failedPrecondition("store " + path +
                                        " is not a nodewarden store: it has tables but no "
                                        "schema version");
    }
  } else {
    auto id = queryInteger(connection, "PRAGMA application_id", what);
    if (!id) return id.status();
    if (*id != kApplicationId) {
      return Status::failedPrecondition("store " + path +
                                        " is not a nodewarden store: its application_id is " +
                                        std::to_string(*id));
    }
  }
  if (*version == SqliteStore::kSchemaVersion) return Status::ok();
  for (int64_t from = *version; from < SqliteStore::kSchemaVersion; ++from) {
    const std::string step = what + " to version " + std::to_string(from + 1);
    if (Status status = executeScript(connection, kMigrations[from], step); !status) return status;
  }
  const std::string stamp =
      "PRAGMA application_id = " + std::to_string(kApplicationId) +
      "; PRAGMA user_version = " + std::to_string(SqliteStore::kSchemaVersion) + ";";
  if (Status status = executeScript(connection, stamp, what); !status) return status;
  return transaction.commit(what);
}

}  // namespace

SqliteStore::SqliteStore(std::unique_ptr<SqliteConnection> connection)
    : connection_(std::move(connection)) {}

SqliteStore::~SqliteStore() = default;

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path) {
  const std::string what = "open store " + path;
  const bool inMemory = path == kInMemory;
  if (!inMemory) {
    if (Status status = makeDirectories(core::parentDirectory(path)); !status) {
      return status.withContext(what);
    }
    // Created here, not by SQLite, which would follow the umask: the store
    // holds token secrets. Its -wal and -shm files take this file's mode.
    core::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.isValid()) return Status::fromErrno(errno, what);
  }

  auto connection = std::make_unique<SqliteConnection>();
  sqlite3* db = nullptr;
  // NOMUTEX: mutex_ serializes every use of the connection already.
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  connection->db.reset(db);
  if (rc != SQLITE_OK) return sqliteError(db, rc, what);
  if (Status status = configure(*connection, inMemory, what); !status) return status;
  if (Status status = migrate(*connection, path); !status) return status;
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(connection)));
}

Result<std::string> SqliteStore::journalMode() {
  std::lock_guard lock(mutex_);
  return queryText(*connection_, "PRAGMA journal_mode", "read journal mode");
}

Status SqliteStore::putToken(const TokenRecord& token) {
  const std::string what = "store token " + token.id;
  if (token.id.empty()) return Status::invalidArgument("store token: the token has no id");
  auto labels = labelsText(token.labels, what);
  if (!labels) return labels.status();
  std::lock_guard lock(mutex_);
  auto statement = prepare(*connection_,
                           "INSERT INTO tokens (id, secret, group_name, labels, description, "
                           "created, expires, usage_limit, uses) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                           "?) ON CONFLICT (id) DO NOTHING",
                           what);
  if (!statement) return statement.status();
  statement->bindText(token.id)
      .bindText(token.secret)
      .bindText(token.group)
      .bindText(*labels)
      .bindText(token.description)
      .bindTime(token.created)
      .bindTime(token.expires)
      .bindInt(token.usageLimit)
      .bindInt(token.uses);
  if (Status status = statement->run(); !status) return status;
  if (statement->changes() == 0) return Status::invalidArgument("token " + token.id + " exists");
  return Status::ok();
}

Result<std::vector<TokenRecord>> SqliteStore::tokens() {
  static const std::string kSql = select(kTokenColumns, "FROM tokens ORDER BY created, id");
  std::lock_guard lock(mutex_);
  auto statement = prepare(*connection_, kSql, "list tokens");
  if (!statement) return statement.status();
  return readAll(*statement, tokenFrom);
}

Result<std::optional<TokenRecord>> SqliteStore::token(const std::string& id) {
  const std::string what = "read token " + id;
  std::lock_guard lock(mutex_);
  return readToken(*connection_, id, what);
}

Status SqliteStore::deleteToken(const std::string& id) {
  const std::string what = "delete token " + id;
  std::lock_guard lock(mutex_);
  auto statement = prepare(*connection_, "DELETE FROM tokens WHERE id = ?", what);
  if (!statement) return statement.status();
  if (Status status = statement->bindText(id).run(); !status) return status;
  if (statement->changes() == 0) return Status::notFound("unknown bootstrap token " + id);
  return Status::ok();
}

Result<NodeRecord> SqliteStore::enroll(const Enrollment& enrollment, Time now) {
  const std::string& name = enrollment.nodeName;
  const std::string what = "enroll node " + name;
  if (name.empty()) return Status::invalidArgument("enroll node: the node has no name");
  if (enrollment.certificateSerial.empty()) {
    return Status::invalidArgument(withWhat(what, "no certificate serial"));
  }
  std::lock_guard lock(mutex_);
  SqliteConnection& connection = *connection_;
  Transaction transaction(connection);
  if (Status status = transaction.begin(what); !status) return status;

  auto found = readToken(connection, enrollment.tokenId, what);
  if (!found) return found.status();
  if (!*found) return Status::notFound("unknown bootstrap token " + enrollment.tokenId);
  const TokenRecord& token = **found;
  if (now >= token.expires) {
    return Status::failedPrecondition("bootstrap token " + token.id + " expired at " +
                                      utcText(token.expires));
  }
  if (token.usageLimit > 0 && token.uses >= token.usageLimit) {
    return Status::failedPrecondition("bootstrap token " + token.id + " is used up (" +
                                      std::to_string(token.uses) + " of " +
                                      std::to_string(token.usageLimit) + " uses)");
  }
  auto existing = readNode(connection, name, what);
  if (!existing) return existing.status();
  if (*existing && (*existing)->revoked) {
    return Status::failedPrecondition("node " + name + " was revoked");
  }
  // A token lets a machine join, not take another's name: an enrolled node
  // enrolls again (a lost certificate) only with the key it has.
  if (*existing && !(*existing)->keyPin.empty() && (*existing)->keyPin != enrollment.keyPin) {
    return Status::failedPrecondition("node " + name +
                                      " is enrolled with another key; revoke it first, or "
                                      "enroll this machine under another name");
  }

  Labels labels = token.labels;
  for (const auto& [key, value] : enrollment.labels) labels[key] = value;
  auto labelsJson = labelsText(labels, what);
  if (!labelsJson) return labelsJson.status();

  {
    auto statement = prepare(connection, "UPDATE tokens SET uses = uses + 1 WHERE id = ?", what);
    if (!statement) return statement.status();
    if (Status status = statement->bindText(token.id).run(); !status) return status;
  }
  if (*existing) {
    // Re-enrollment: a new certificate; the sequence stays, so messages the
    // node spooled before are still recognised as applied.
    auto statement = prepare(connection,
                             "UPDATE nodes SET group_name = ?, labels = ?, certificate_serial = ?, "
                             "certificate_expires = ?, last_seen = ?, key_pin = ? WHERE name = ?",
                             what);
    if (!statement) return statement.status();
    statement->bindText(token.group)
        .bindText(*labelsJson)
        .bindText(enrollment.certificateSerial)
        .bindTime(enrollment.certificateExpires)
        .bindTime(now)
        .bindText(enrollment.keyPin)
        .bindText(name);
    if (Status status = statement->run(); !status) return status;
  } else {
    auto statement =
        prepare(connection,
                "INSERT INTO nodes (name, group_name, labels, enrolled, last_seen, "
                "certificate_serial, certificate_expires, key_pin) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                what);
    if (!statement) return statement.status();
    statement->bindText(name)
        .bindText(token.group)
        .bindText(*labelsJson)
        .bindTime(now)
        .bindTime(now)
        .bindText(enrollment.certificateSerial)
        .bindTime(enrollment.certificateExpires)
        .bindText(enrollment.keyPin);
    if (Status status = statement->run(); !status) return status;
  }

  auto node = readNode(connection, name, what);
  if (!node) return node.status();
  if (!*node) return Status::internal(withWhat(what, "the node is missing after writing it"));
  if (Status status = transaction.commit(what); !status) return status;
  return std::move(**node);
}

Result<std::optional<NodeRecord>> SqliteStore::node(const std::string& name) {
  const std::string what = "read node " + name;
  std::lock_guard lock(mutex_);
  return readNode(*connection_, name, what);
}

Result<std::vector<NodeRecord>> SqliteStore::nodes() {
  static const std::string kSql = select(kNodeColumns, "FROM nodes ORDER BY name");
  std::lock_guard lock(mutex_);
  auto statement = prepare(*connection_, kSql, "list nodes");
  if (!statement) return statement.status();
  return readAll(*statement, nodeFrom);
}

Status SqliteStore::revokeNode(const std::string& name) {
  const std::string what = "revoke node " + name;
  std::lock_guard lock(mutex_);
  return updateNode(*connection_, "UPDATE nodes SET revoked = 1 WHERE name = ?", name, what,
                    [](Statement&) {});
}

Result<bool> SqliteStore::isRevokedSerial(const std::string& serial) {
  const std::string what = "check certificate serial " + serial;
  std::lock_guard lock(mutex_);
  auto statement =
      prepare(*connection_,
              "SELECT 1 FROM nodes WHERE certificate_serial = ? AND revoked = 0 LIMIT 1", what);
  if (!statement) return statement.status();
  auto row = statement->bindText(serial).step();
  if (!row) return row.status();
  return !*row;
}

Status SqliteStore::recordHello(const std::string& node, const std::string& facts, Time now) {
  const std::string what = "record hello from " + node;
  std::lock_guard lock(mutex_);
  return updateNode(*connection_, "UPDATE nodes SET facts = ?, last_seen = ? WHERE name = ?", node,
                    what, [&](Statement& statement) { statement.bindBlob(facts).bindTime(now); });
}

Status SqliteStore::touch(const std::string& node, Time now) {
  const std::string what = "mark node " + node + " seen";
  std::lock_guard lock(mutex_);
  return updateNode(*connection_, "UPDATE nodes SET last_seen = ? WHERE name = ?", node, what,
                    [&](Statement& statement) { statement.bindTime(now); });
}

Status SqliteStore::restartSequence(const std::string& node, uint64_t lastSequence) {
  const std::string what = "restart the sequence of node " + node;
  std::lock_guard lock(mutex_);
  return updateNode(*connection_, "UPDATE nodes SET last_sequence = ? WHERE name = ?", node, what,
                    [&](Statement& statement) { statement.bindInt(int64_t(lastSequence)); });
}

Status SqliteStore::setDesiredVersion(const std::string& node, const std::string& version) {
  const std::string what = "set desired version of node " + node;
  std::lock_guard lock(mutex_);
  return updateNode(*connection_, "UPDATE nodes SET desired_version = ? WHERE name = ?", node, what,
                    [&](Statement& statement) { statement.bindText(version); });
}

Result<bool> SqliteStore::recordReport(const std::string& node, uint64_t sequence,
                                       const std::string& report, const std::string& appliedVersion,
                                       const std::string& result, Time now) {
  const std::string what = "record report " + std::to_string(sequence) + " from " + node;
  std::lock_guard lock(mutex_);
  Transaction transaction(*connection_);
  if (Status status = transaction.begin(what); !status) return status;
  auto advanced = advanceSequence(*connection_, node, sequence, now, what);
  if (!advanced || !*advanced) return advanced;
  auto statement = prepare(
      *connection_,
      "UPDATE nodes SET last_report = ?, applied_version = ?, last_result = ? WHERE name = ?",
      what);
  if (!statement) return statement.status();
  statement->bindBlob(report).bindText(appliedVersion).bindText(result).bindText(node);
  if (Status status = statement->run(); !status) return status;
  if (Status status = transaction.commit(what); !status) return status;
  return true;
}

Result<bool> SqliteStore::recordHealth(const std::string& node, uint64_t sequence,
                                       const std::string& conditions,
                                       const std::vector<std::pair<Time, std::string>>& events,
                                       Time now) {
  const std::string what = "record health " + std::to_string(sequence) + " from " + node;
  std::lock_guard lock(mutex_);
  SqliteConnection& connection = *connection_;
  Transaction transaction(connection);
  if (Status status = transaction.begin(what); !status) return status;
  auto advanced = advanceSequence(connection, node, sequence, now, what);
  if (!advanced || !*advanced) return advanced;
  {
    auto statement = prepare(connection, "UPDATE nodes SET conditions = ? WHERE name = ?", what);
    if (!statement) return statement.status();
    if (Status status = statement->bindBlob(conditions).bindText(node).run(); !status) {
      return status;
    }
  }
  // Of a batch larger than what is kept, only its newest would survive.
  const size_t first = events.size() > kMaxEventsPerNode ? events.size() - kMaxEventsPerNode : 0;
  for (size_t i = first; i < events.size(); ++i) {
    auto statement =
        prepare(connection, "INSERT INTO events (node, at, message) VALUES (?, ?, ?)", what);
    if (!statement) return statement.status();
    statement->bindText(node).bindTime(events[i].first).bindText(events[i].second);
    if (Status status = statement->run(); !status) return status;
  }
  if (!events.empty()) {
    auto statement = prepare(connection,
                             "DELETE FROM events WHERE node = ?1 AND id <= (SELECT id FROM events "
                             "WHERE node = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                             what);
    if (!statement) return statement.status();
    statement->bindText(node).bindInt(int64_t(kMaxEventsPerNode));
    if (Status status = statement->run(); !status) return status;
  }
  if (Status status = transaction.commit(what); !status) return status;
  return true;
}

Result<bool> SqliteStore::recordUsage(const std::string& node, uint64_t sequence,
                                      const std::string& usage, Time now) {
  const std::string what = "record usage " + std::to_string(sequence) + " from " + node;
  std::lock_guard lock(mutex_);
  Transaction transaction(*connection_);
  if (Status status = transaction.begin(what); !status) return status;
  auto advanced = advanceSequence(*connection_, node, sequence, now, what);
  if (!advanced || !*advanced) return advanced;
  auto statement = prepare(*connection_, "UPDATE nodes SET usage = ? WHERE name = ?", what);
  if (!statement) return statement.status();
  if (Status status = statement->bindBlob(usage).bindText(node).run(); !status) return status;
  if (Status status = transaction.commit(what); !status) return status;
  return true;
}

Result<bool> SqliteStore::recordDropped(const std::string& node, uint64_t sequence, uint64_t count,
                                        Time now) {
  const std::string what = "record dropped messages " + std::to_string(sequence) + " from " + node;
  std::lock_guard lock(mutex_);
  Transaction transaction(*connection_);
  if (Status status = transaction.begin(what); !status) return status;
  auto advanced = advanceSequence(*connection_, node, sequence, now, what);
  if (!advanced || !*advanced) return advanced;
  auto statement =
      prepare(*connection_, "UPDATE nodes SET dropped = dropped + ? WHERE name = ?", what);
  if (!statement) return statement.status();
  if (Status status = statement->bindInt(int64_t(count)).bindText(node).run(); !status) {
    return status;
  }
  if (Status status = transaction.commit(what); !status) return status;
  return true;
}

Result<std::vector<std::string>> SqliteStore::events(const std::string& node, size_t limit) {
  const std::string what = "read events of node " + node;
  std::lock_guard lock(mutex_);
  auto statement = prepare(*connection_,
                           "SELECT message FROM (SELECT id, message FROM events WHERE node = ? "
                           "ORDER BY id DESC LIMIT ?) ORDER BY id",
                           what);
  if (!statement) return statement.status();
  const auto clamped = std::min<size_t>(limit, size_t(std::numeric_limits<int64_t>::max()));
  statement->bindText(node).bindInt(int64_t(clamped));
  return readAll(*statement, [](const Statement& row) { return Result<std::string>(row.text(0)); });
}

Result<int64_t> SqliteStore::putState(const std::string& group, const std::string& node,
                                      const std::string& document, Time now) {
  const std::string what =
      node.empty() ? "store state of group " + group : "store state of node " + node;
  if (group.empty() && node.empty()) {
    return Status::invalidArgument("store state: it names neither a group nor a node");
  }
  std::lock_guard lock(mutex_);
  auto statement = prepare(*connection_,
                           "INSERT INTO states (group_name, node, revision, document, updated) "
                           "VALUES (?, ?, 1, ?, ?) ON CONFLICT (group_name, node) DO UPDATE SET "
                           "revision = revision + 1, document = excluded.document, "
                           "updated = excluded.updated RETURNING revision",
                           what);
  if (!statement) return statement.status();
  statement->bindText(node.empty() ? group : std::string())
      .bindText(node)
      .bindBlob(document)
      .bindTime(now);
  auto row = statement->step();
  if (!row) return row.status();
  if (!*row) return Status::internal(withWhat(what, "no revision returned"));
  const int64_t revision = statement->integer(0);
  if (Status status = statement->run(); !status) return status;
  return revision;
}

Result<std::optional<StateRecord>> SqliteStore::groupState(const std::string& group) {
  static const std::string kSql =
      select(kStateColumns, "FROM states WHERE group_name = ? AND node = ''");
  const std::string what = "read state of group " + group;
  std::lock_guard lock(mutex_);
  auto statement = prepare(*connection_, kSql, what);
  if (!statement) return statement.status();
  statement->bindText(group);
  return readOne(*statement, stateFrom);
}

Result<std::optional<StateRecord>> SqliteStore::nodeState(const std::string& node) {
  static const std::string kSql =
      select(kStateColumns, "FROM states WHERE group_name = '' AND node = ?");
  const std::string what = "read state of node " + node;
  std::lock_guard lock(mutex_);
  auto statement = prepare(*connection_, kSql, what);
  if (!statement) return statement.status();
  statement->bindText(node);
  return readOne(*statement, stateFrom);
}

Result<std::vector<StateRecord>> SqliteStore::states() {
  static const std::string kSql = select(kStateColumns, "FROM states ORDER BY group_name, node");
  std::lock_guard lock(mutex_);
  auto statement = prepare(*connection_, kSql, "list states");
  if (!statement) return statement.status();
  return readAll(*statement, stateFrom);
}

Result<bool> SqliteStore::raiseAlert(const AlertRecord& alert) {
  const std::string what = "raise alert " + alert.kind + " on node " + alert.node;
  std::lock_guard lock(mutex_);
  SqliteConnection& connection = *connection_;
  Transaction transaction(connection);
  if (Status status = transaction.begin(what); !status) return status;
  bool inserted = false;
  {
    auto statement = prepare(
        connection,
        "UPDATE alerts SET message = ? WHERE node = ? AND kind = ? AND resolved IS NULL", what);
    if (!statement) return statement.status();
    statement->bindText(alert.message).bindText(alert.node).bindText(alert.kind);
    if (Status status = statement->run(); !status) return status;
    inserted = statement->changes() == 0;
  }
  if (inserted) {
    auto statement = prepare(connection,
                             "INSERT INTO alerts (node, group_name, kind, message, since) "
                             "VALUES (?, ?, ?, ?, ?)",
                             what);
    if (!statement) return statement.status();
    statement->bindText(alert.node)
        .bindText(alert.group)
        .bindText(alert.kind)
        .bindText(alert.message)
        .bindTime(alert.since);
    if (Status status = statement->run(); !status) return status;
  }
  if (Status status = transaction.commit(what); !status) return status;
  return inserted;
}

Result<bool> SqliteStore::resolveAlert(const std::string& node, const std::string& kind, Time now) {
  const std::string what = "resolve alert " + kind + " on node " + node;
  std::lock_guard lock(mutex_);
  SqliteConnection& connection = *connection_;
  Transaction transaction(connection);
  if (Status status = transaction.begin(what); !status) return status;
  {
    auto statement = prepare(
        connection,
        "UPDATE alerts SET resolved = ? WHERE node = ? AND kind = ? AND resolved IS NULL", what);
    if (!statement) return statement.status();
    if (Status status = statement->bindTime(now).bindText(node).bindText(kind).run(); !status) {
      return status;
    }
    if (statement->changes() == 0) return false;
  }
  {
    auto statement = prepare(connection,
                             "DELETE FROM alerts WHERE resolved IS NOT NULL AND id NOT IN (SELECT "
                             "id FROM alerts WHERE resolved IS NOT NULL ORDER BY resolved DESC, "
                             "id DESC LIMIT ?)",
                             what);
    if (!statement) return statement.status();
    if (Status status = statement->bindInt(int64_t(kMaxResolvedAlerts)).run(); !status) {
      return status;
    }
  }
  if (Status status = transaction.commit(what); !status) return status;
  return true;
}

Result<std::vector<AlertRecord>> SqliteStore::alerts(bool includeResolved) {
  static const std::string kAll = select(kAlertColumns, "FROM alerts ORDER BY since DESC, id DESC");
  static const std::string kUnresolved =
      select(kAlertColumns, "FROM alerts WHERE resolved IS NULL ORDER BY since DESC, id DESC");
  std::lock_guard lock(mutex_);
  auto statement = prepare(*connection_, includeResolved ? kAll : kUnresolved, "list alerts");
  if (!statement) return statement.status();
  return readAll(*statement, alertFrom);
}

}  // namespace nodewarden::server
