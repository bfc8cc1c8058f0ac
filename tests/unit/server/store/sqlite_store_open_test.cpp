#include <sqlite3.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "server/store/sqlite_store.h"
#include "tests/unit/server/store/store_test_support.h"

namespace nodewarden::server {
namespace {

using core::Status;
using test::at;
using test::StoreTest;

mode_t modeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST_F(StoreTest, TheFileAndItsDirectoryAreReadableOnlyByTheServer) {
  EXPECT_EQ(modeOf(dir_ + "/server"), 0700u);
  EXPECT_EQ(modeOf(path_), 0600u);
  ASSERT_TRUE(store_->putToken(makeToken("abcdef")).isOk());
  // The write-ahead log holds the secret too until a checkpoint.
  EXPECT_EQ(modeOf(path_ + "-wal"), 0600u);
}

TEST_F(StoreTest, TheFileIsInWalMode) {
  auto mode = store_->journalMode();
  ASSERT_TRUE(mode.isOk()) << mode.status().message();
  EXPECT_EQ(*mode, "wal");

  // WAL is a property of the file: another connection sees it too.
  test::RawDatabase db = test::openRaw(path_);
  ASSERT_TRUE(db);
  sqlite3_stmt* raw = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db.get(), "PRAGMA journal_mode", -1, &raw, nullptr), SQLITE_OK);
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> statement(raw, sqlite3_finalize);
  ASSERT_EQ(sqlite3_step(statement.get()), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(statement.get(), 0)), "wal");
}

TEST_F(StoreTest, AReaderOnAnotherConnectionRunsBesideAnOpenWrite) {
  enrollNode("n1");
  test::RawDatabase writer = test::openRaw(path_);
  ASSERT_TRUE(writer);
  ASSERT_EQ(sqlite3_exec(writer.get(), "BEGIN EXCLUSIVE; UPDATE nodes SET last_result = 'x';",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  // With a rollback journal an exclusive lock would keep this read waiting.
  NodeRecord node = nodeRecord("n1");
  EXPECT_EQ(node.lastResult, "");
  ASSERT_EQ(sqlite3_exec(writer.get(), "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
}

TEST_F(StoreTest, AFileThatIsNotADatabaseIsAClearError) {
  store_.reset();
  {
    std::ofstream out(path_, std::ios::trunc);
    for (int i = 0; i < 200; ++i) out << "this is not a database, it is a text file\n";
  }
  auto opened = SqliteStore::open(path_);
  ASSERT_FALSE(opened.isOk());
  EXPECT_EQ(opened.status().message(), "open store " + path_ + ": file is not a database");
}

TEST_F(StoreTest, ANewerSchemaIsRefused) {
  store_.reset();
  test::executeRaw(path_, "PRAGMA user_version = 2");
  auto opened = SqliteStore::open(path_);
  ASSERT_FALSE(opened.isOk());
  EXPECT_EQ(opened.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(opened.status().message(),
            "store " + path_ +
                " has schema version 2, newer than the version 1 this nodewarden-server knows; "
                "run a newer nodewarden-server");
}

TEST_F(StoreTest, AnotherProgramsDatabaseIsRefused) {
  const std::string other = dir_ + "/other.db";
  test::executeRaw(other, "CREATE TABLE photos (id INTEGER)");
  auto opened = SqliteStore::open(other);
  ASSERT_FALSE(opened.isOk());
  EXPECT_EQ(opened.status().message(),
            "store " + other + " is not a nodewarden store: it has tables but no schema version");

  test::executeRaw(other, "PRAGMA user_version = 1");
  opened = SqliteStore::open(other);
  ASSERT_FALSE(opened.isOk());
  EXPECT_EQ(opened.status().message(),
            "store " + other + " is not a nodewarden store: its application_id is 0");
}

TEST_F(StoreTest, ReopeningKeepsTheSchemaAndTheData) {
  enrollNode("n1");
  ASSERT_TRUE(*store_->recordReport("n1", 4, "report", "v1", "ok", at(50)));
  ASSERT_EQ(*store_->putState("workers", "", "doc", at(60)), 1);
  reopen();
  reopen();
  EXPECT_EQ(nodeRecord("n1").lastSequence, 4u);
  EXPECT_EQ(*store_->putState("workers", "", "doc", at(70)), 2);
  EXPECT_EQ((*store_->token("t-n1"))->uses, 1u);
}

TEST(SqliteStoreTest, AnInMemoryStoreWorksWithoutAFile) {
  auto opened = SqliteStore::open(":memory:");
  ASSERT_TRUE(opened.isOk()) << opened.status().message();
  SqliteStore& store = **opened;
  EXPECT_EQ(*store.journalMode(), "memory");
  ASSERT_TRUE(store.putToken({.id = "abcdef", .expires = Time::max()}).isOk());
  auto node =
      store.enroll({.tokenId = "abcdef", .nodeName = "n1", .certificateSerial = "s1"}, at(0));
  ASSERT_TRUE(node.isOk()) << node.status().message();
  EXPECT_EQ(node->name, "n1");
}

TEST(SqliteStoreTest, AParentThatCannotBeCreatedIsAClearError) {
  auto opened = SqliteStore::open("/proc/nodewarden/store.db");
  ASSERT_FALSE(opened.isOk());
  EXPECT_NE(opened.status().message().find("open store /proc/nodewarden/store.db: "),
            std::string::npos)
      << opened.status().message();
}

}  // namespace
}  // namespace nodewarden::server
