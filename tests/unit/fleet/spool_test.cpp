// The spool on a real temporary directory: messages come back in order until
// acknowledged, survive reopening with their numbering, give way oldest first
// past a limit with one Dropped message that counts them and is acknowledged
// like any other, and a damaged file costs only its own message.

#include "agent/fleet/spool.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "agent/core/atomic_file.h"
#include "nodewarden/v1/control.pb.h"

namespace nodewarden::fleet {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

v1::AgentMessage report(const std::string& version) {
  v1::AgentMessage message;
  message.mutable_report()->set_desired_version(version);
  return message;
}

// A message as the tests compare them: "3:report v3", "2:dropped 2".
std::string describe(const v1::AgentMessage& message) {
  std::string text = std::to_string(message.sequence()) + ":";
  if (message.has_report()) return text + "report " + message.report().desired_version();
  if (message.has_dropped()) return text + "dropped " + std::to_string(message.dropped().count());
  return text + "other";
}

std::vector<std::string> describe(const std::vector<v1::AgentMessage>& messages) {
  std::vector<std::string> result;
  for (const auto& message : messages) result.push_back(describe(message));
  return result;
}

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = std::filesystem::temp_directory_path() / "nodewarden-spool-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      FAIL() << "mkdtemp " << templ << ": " << std::strerror(errno);
    }
    base_ = templ;
    dir_ = base_ + "/var/lib/nodewarden/spool";
  }
  void TearDown() override { std::filesystem::remove_all(base_); }

  Spool open(Spool::Limits limits = {}) {
    auto spool = Spool::open(dir_, limits);
    EXPECT_TRUE(spool.isOk()) << spool.status().message();
    return std::move(*spool);
  }

  uint64_t append(Spool& spool, const std::string& version) {
    auto sequence = spool.append(report(version));
    EXPECT_TRUE(sequence.isOk()) << sequence.status().message();
    return sequence ? *sequence : 0;
  }

  std::string pathOf(uint64_t sequence, const char* suffix = ".msg") const {
    char name[32];
    std::snprintf(name, sizeof(name), "%020" PRIu64, sequence);
    return dir_ + "/" + name + suffix;
  }

  std::vector<std::string> files() const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      names.push_back(entry.path().filename());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  uint64_t bytesOnDisk() const {
    uint64_t bytes = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      if (entry.path().filename() != "last-sequence") bytes += entry.file_size();
    }
    return bytes;
  }

  std::string base_;
  std::string dir_;
};

TEST_F(SpoolTest, NumbersFromOneAndReturnsPendingInOrder) {
  Spool spool = open();
  EXPECT_EQ(spool.lastSequence(), 0u);
  EXPECT_THAT(spool.pending(10), IsEmpty());

  EXPECT_EQ(append(spool, "v1"), 1u);
  EXPECT_EQ(append(spool, "v2"), 2u);
  EXPECT_EQ(append(spool, "v3"), 3u);
  EXPECT_EQ(spool.lastSequence(), 3u);
  EXPECT_EQ(spool.size(), 3u);
  EXPECT_THAT(describe(spool.pending(10)),
              ElementsAre("1:report v1", "2:report v2", "3:report v3"));
  EXPECT_THAT(describe(spool.pending(2)), ElementsAre("1:report v1", "2:report v2"));
}

TEST_F(SpoolTest, AcknowledgeForgetsEverythingUpToTheSequence) {
  Spool spool = open();
  for (const char* version : {"v1", "v2", "v3"}) append(spool, version);

  ASSERT_TRUE(spool.acknowledge(2).isOk());
  EXPECT_THAT(describe(spool.pending(10)), ElementsAre("3:report v3"));
  EXPECT_EQ(spool.size(), 1u);
  // An old acknowledgement again changes nothing.
  ASSERT_TRUE(spool.acknowledge(1).isOk());
  EXPECT_EQ(spool.size(), 1u);

  ASSERT_TRUE(spool.acknowledge(3).isOk());
  EXPECT_THAT(spool.pending(10), IsEmpty());
  EXPECT_EQ(spool.size(), 0u);
  EXPECT_EQ(spool.lastSequence(), 3u);
  EXPECT_EQ(append(spool, "v4"), 4u);
}

TEST_F(SpoolTest, RefusesAnAcknowledgementBeyondTheLastSequence) {
  Spool spool = open();
  append(spool, "v1");
  core::Status status = spool.acknowledge(5);
  EXPECT_FALSE(status.isOk());
  EXPECT_EQ(status.code(), core::Status::Code::kInvalidArgument);
  EXPECT_EQ(spool.size(), 1u);
  EXPECT_EQ(append(spool, "v2"), 2u);
}

TEST_F(SpoolTest, RefusesHelloDroppedAndEmptyMessagesWithoutUsingASequence) {
  Spool spool = open();
  v1::AgentMessage hello;
  hello.mutable_hello()->set_last_sequence(7);
  EXPECT_FALSE(spool.append(hello).isOk());
  v1::AgentMessage dropped;
  dropped.mutable_dropped()->set_count(3);
  EXPECT_FALSE(spool.append(dropped).isOk());
  EXPECT_FALSE(spool.append(v1::AgentMessage()).isOk());
  EXPECT_EQ(spool.size(), 0u);
  EXPECT_EQ(append(spool, "v1"), 1u);
}

TEST_F(SpoolTest, KeepsOtherBodiesAsTheyWere) {
  Spool spool = open();
  v1::AgentMessage usage;
  usage.mutable_usage()->set_cpu_percent(12.5);
  usage.mutable_usage()->set_network_rx_bytes(1234);
  ASSERT_TRUE(spool.append(usage).isOk());
  auto pending = spool.pending(1);
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].sequence(), 1u);
  EXPECT_EQ(pending[0].usage().cpu_percent(), 12.5);
  EXPECT_EQ(pending[0].usage().network_rx_bytes(), 1234u);
}

TEST_F(SpoolTest, CreatesItsDirectoryAndFilesForTheAgentOnly) {
  Spool spool = open();
  append(spool, "v1");
  struct stat st {};
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::stat(pathOf(1).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_TRUE(spool.acknowledge(1).isOk());
  ASSERT_EQ(::stat((dir_ + "/last-sequence").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(SpoolTest, KeepsPendingMessagesAndNumberingAcrossReopening) {
  {
    Spool spool = open();
    for (const char* version : {"v1", "v2", "v3"}) append(spool, version);
    ASSERT_TRUE(spool.acknowledge(1).isOk());
  }
  Spool spool = open();
  EXPECT_EQ(spool.lastSequence(), 3u);
  EXPECT_THAT(describe(spool.pending(10)), ElementsAre("2:report v2", "3:report v3"));
  EXPECT_EQ(append(spool, "v4"), 4u);
}

TEST_F(SpoolTest, NeverReusesASequenceAfterTheSpoolEmptied) {
  {
    Spool spool = open();
    append(spool, "v1");
    append(spool, "v2");
    ASSERT_TRUE(spool.acknowledge(2).isOk());
    EXPECT_THAT(files(), ElementsAre("last-sequence"));
  }
  Spool spool = open();
  EXPECT_EQ(spool.size(), 0u);
  EXPECT_EQ(spool.lastSequence(), 2u);
  EXPECT_EQ(append(spool, "v3"), 3u);
}

TEST_F(SpoolTest, NumbersOnAboveAnUnreadableFloor) {
  {
    Spool spool = open();
    append(spool, "v1");
    ASSERT_TRUE(spool.acknowledge(1).isOk());
  }
  ASSERT_TRUE(core::writeFileAtomic(dir_ + "/last-sequence", "garbage", {.mode = 0600}).isOk());
  Spool spool = open();
  EXPECT_GT(spool.lastSequence(), 1u);
  auto next = spool.append(report("v2"));
  ASSERT_TRUE(next.isOk());
  EXPECT_GT(*next, 1u);
}

TEST_F(SpoolTest, TakesAFloorNoAgentCouldReachAsDamaged) {
  // UINT64_MAX would make the next number 0, which the server refuses.
  { open(); }  // makes the directory
  ASSERT_TRUE(
      core::writeFileAtomic(dir_ + "/last-sequence", "18446744073709551615\n", {.mode = 0600})
          .isOk());
  Spool spool = open();
  auto next = spool.append(report("v1"));
  ASSERT_TRUE(next.isOk());
  EXPECT_GT(*next, 1u);
  EXPECT_LE(*next, uint64_t{1} << 62);
}

TEST_F(SpoolTest, DropsTheOldestPastTheMessageLimitAndCountsThemOnce) {
  Spool spool = open({.maxMessages = 4});
  for (const char* version : {"v1", "v2", "v3", "v4"}) append(spool, version);
  EXPECT_EQ(spool.size(), 4u);

  // The Dropped record takes a place, and the number of the newest message it
  // replaces: below every message left, above every acknowledged one.
  EXPECT_EQ(append(spool, "v5"), 5u);
  EXPECT_THAT(describe(spool.pending(10)),
              ElementsAre("2:dropped 2", "3:report v3", "4:report v4", "5:report v5"));

  // Further drops fold the record's count into the new one.
  EXPECT_EQ(append(spool, "v6"), 6u);
  EXPECT_EQ(spool.size(), 4u);
  EXPECT_THAT(describe(spool.pending(10)),
              ElementsAre("3:dropped 3", "4:report v4", "5:report v5", "6:report v6"));
  EXPECT_THAT(files(), ElementsAre("00000000000000000003.dropped", "00000000000000000004.msg",
                                   "00000000000000000005.msg", "00000000000000000006.msg"));

  // Once acknowledged, the drops are not told again, not even after reopening.
  ASSERT_TRUE(spool.acknowledge(3).isOk());
  EXPECT_THAT(describe(spool.pending(10)),
              ElementsAre("4:report v4", "5:report v5", "6:report v6"));
  Spool reopened = open({.maxMessages = 4});
  EXPECT_THAT(describe(reopened.pending(10)),
              ElementsAre("4:report v4", "5:report v5", "6:report v6"));

  // New drops start a new count.
  append(reopened, "v7");
  append(reopened, "v8");
  EXPECT_THAT(describe(reopened.pending(10)),
              ElementsAre("5:dropped 2", "6:report v6", "7:report v7", "8:report v8"));
}

TEST_F(SpoolTest, KeepsTheDroppedRecordAcrossReopening) {
  {
    Spool spool = open({.maxMessages = 3});
    for (const char* version : {"v1", "v2", "v3", "v4", "v5"}) append(spool, version);
  }
  Spool spool = open({.maxMessages = 3});
  EXPECT_THAT(describe(spool.pending(10)),
              ElementsAre("3:dropped 3", "4:report v4", "5:report v5"));
  EXPECT_EQ(spool.lastSequence(), 5u);
  // The count goes on from the stored record.
  append(spool, "v6");
  EXPECT_THAT(describe(spool.pending(10)),
              ElementsAre("4:dropped 4", "5:report v5", "6:report v6"));
}

TEST_F(SpoolTest, FinishesADropACrashInterrupted) {
  {
    Spool spool = open({.maxMessages = 3});
    for (const char* version : {"v1", "v2", "v3", "v4"}) append(spool, version);
    EXPECT_THAT(describe(spool.pending(10)),
                ElementsAre("2:dropped 2", "3:report v3", "4:report v4"));
  }
  // As if the crash came after the record was written, before the messages it
  // counts were unlinked.
  ASSERT_TRUE(core::writeFileAtomic(pathOf(1), "whatever", {.mode = 0600}).isOk());
  ASSERT_TRUE(core::writeFileAtomic(pathOf(2), "whatever", {.mode = 0600}).isOk());
  Spool spool = open({.maxMessages = 3});
  EXPECT_THAT(describe(spool.pending(10)),
              ElementsAre("2:dropped 2", "3:report v3", "4:report v4"));
  EXPECT_THAT(files(), ElementsAre("00000000000000000002.dropped", "00000000000000000003.msg",
                                   "00000000000000000004.msg"));
}

TEST_F(SpoolTest, DropsTheOldestPastTheByteLimit) {
  const std::string big(1000, 'x');
  Spool::Limits limits{.maxMessages = 100, .maxBytes = 3500};
  Spool spool = open(limits);
  for (int i = 1; i <= 10; ++i) append(spool, big + std::to_string(i));

  EXPECT_LE(bytesOnDisk(), limits.maxBytes);
  auto pending = spool.pending(100);
  ASSERT_GE(pending.size(), 2u);
  ASSERT_TRUE(pending.front().has_dropped());
  const uint64_t kept = pending.size() - 1;
  EXPECT_EQ(pending.front().dropped().count(), 10 - kept);
  EXPECT_EQ(pending.front().sequence(), 10 - kept);
  EXPECT_EQ(describe(pending.back()), "10:report " + big + "10");
  for (size_t i = 1; i < pending.size(); ++i) {
    EXPECT_EQ(pending[i].sequence(), pending[i - 1].sequence() + 1);
  }
}

TEST_F(SpoolTest, RefusesAMessageLargerThanTheByteLimit) {
  Spool spool = open({.maxBytes = 500});
  append(spool, "v1");
  auto result = spool.append(report(std::string(1000, 'x')));
  EXPECT_FALSE(result.isOk());
  EXPECT_EQ(result.status().code(), core::Status::Code::kInvalidArgument);
  EXPECT_THAT(describe(spool.pending(10)), ElementsAre("1:report v1"));
  EXPECT_EQ(append(spool, "v2"), 2u);
}

TEST_F(SpoolTest, CountsADamagedFileAsDroppedAndGoesOn) {
  {
    Spool spool = open();
    for (const char* version : {"v1", "v2", "v3", "v4"}) append(spool, version);
  }
  // A flipped byte in message 2 and nothing left of message 3.
  {
    std::fstream file(pathOf(2), std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(-1, std::ios::end);
    file.put('?');
  }
  std::filesystem::resize_file(pathOf(3), 0);

  Spool spool = open();
  EXPECT_THAT(describe(spool.pending(10)),
              ElementsAre("1:report v1", "2:dropped 1", "3:dropped 1", "4:report v4"));
  ASSERT_TRUE(spool.acknowledge(4).isOk());
  EXPECT_THAT(spool.pending(10), IsEmpty());
  EXPECT_THAT(files(), ElementsAre("last-sequence"));
}

TEST_F(SpoolTest, CountsAFileHoldingAnotherSequenceAsDropped) {
  Spool spool = open();
  append(spool, "v1");
  append(spool, "v2");
  std::filesystem::copy_file(pathOf(1), pathOf(2),
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_THAT(describe(spool.pending(10)), ElementsAre("1:report v1", "2:dropped 1"));
}

TEST_F(SpoolTest, RemovesTemporaryLeftoversAndIgnoresStrangers) {
  std::filesystem::create_directories(dir_);
  ASSERT_TRUE(core::writeFileAtomic(dir_ + "/.nodewarden-123.x", "half", {.mode = 0600}).isOk());
  ASSERT_TRUE(core::writeFileAtomic(dir_ + "/README", "hello", {.mode = 0600}).isOk());
  ASSERT_TRUE(core::writeFileAtomic(dir_ + "/abc.msg", "hello", {.mode = 0600}).isOk());
  Spool spool = open();
  EXPECT_EQ(spool.size(), 0u);
  EXPECT_THAT(files(), ElementsAre("README", "abc.msg"));
  EXPECT_EQ(append(spool, "v1"), 1u);
}

}  // namespace
}  // namespace nodewarden::fleet
