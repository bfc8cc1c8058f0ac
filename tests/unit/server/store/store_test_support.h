#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "server/store/sqlite_store.h"

namespace nodewarden::server::test {

// 2024-01-01T00:00:00Z plus `seconds`.
inline Time at(int64_t seconds) { return Time(std::chrono::seconds(1704067200 + seconds)); }

// A store in a file under a fresh temporary directory, in a directory the
// store has to create, removed after the test.
class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/nodewarden-store-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
    path_ = dir_ + "/server/store.db";
    reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Closes the store and opens the file again, as a restarted server would.
  void reopen() {
    store_.reset();
    auto opened = SqliteStore::open(path_);
    ASSERT_TRUE(opened.isOk()) << opened.status().message();
    store_ = std::move(*opened);
  }

  static TokenRecord makeToken(const std::string& id, Time expires = at(3600),
                               uint32_t usageLimit = 0) {
    TokenRecord token;
    token.id = id;
    token.secret = "secret-" + id;
    token.group = "workers";
    token.labels = {{"role", "worker"}, {"zone", "a"}};
    token.description = "token " + id;
    token.created = at(0);
    token.expires = expires;
    token.usageLimit = usageLimit;
    return token;
  }

  static Enrollment makeEnrollment(const std::string& tokenId, const std::string& node,
                                   const std::string& serial) {
    return Enrollment{.tokenId = tokenId,
                      .nodeName = node,
                      .certificateSerial = serial,
                      .certificateExpires = at(86400),
                      .labels = {{"role", "gpu"}}};
  }

  // Puts a token and enrolls `node` with it.
  void enrollNode(const std::string& node, const std::string& serial = "serial-1") {
    if (!store_->token("t-" + node)->has_value()) {
      ASSERT_TRUE(store_->putToken(makeToken("t-" + node)).isOk());
    }
    auto enrolled = store_->enroll(makeEnrollment("t-" + node, node, serial), at(10));
    ASSERT_TRUE(enrolled.isOk()) << enrolled.status().message();
  }

  NodeRecord nodeRecord(const std::string& name) {
    auto node = store_->node(name);
    EXPECT_TRUE(node.isOk()) << node.status().message();
    EXPECT_TRUE(node.isOk() && node->has_value()) << name;
    return node.isOk() && node->has_value() ? **node : NodeRecord{};
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<SqliteStore> store_;
};

struct RawDatabaseDeleter {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using RawDatabase = std::unique_ptr<sqlite3, RawDatabaseDeleter>;

// A connection of its own to a database file, as another process would have.
inline RawDatabase openRaw(const std::string& path) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  RawDatabase owned(db);
  EXPECT_EQ(rc, SQLITE_OK) << (db != nullptr ? sqlite3_errmsg(db) : "out of memory");
  return owned;
}

inline void executeRaw(const std::string& path, const std::string& sql) {
  RawDatabase db = openRaw(path);
  ASSERT_TRUE(db);
  ASSERT_EQ(sqlite3_exec(db.get(), sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db.get());
}

}  // namespace nodewarden::server::test
