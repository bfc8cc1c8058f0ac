#include "server/service/identity.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>

#include "agent/core/atomic_file.h"
#include "agent/pki/certificate.h"
#include "agent/pki/key.h"

namespace nodewarden::server {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1795000000));

class IdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char path[] = "/tmp/nodewarden-identity-XXXXXX";
    ASSERT_NE(::mkdtemp(path), nullptr);
    dir_ = path;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  mode_t modeOf(const std::string& name) {
    struct stat st {};
    EXPECT_EQ(::stat((dir_ + "/" + name).c_str(), &st), 0) << name;
    return st.st_mode & 07777;
  }

  std::string dir_;
};

TEST_F(IdentityTest, MakesTheCaOnceAndKeepsItAndTheServerKey) {
  auto first = loadIdentity(dir_, "", "", {"nodewarden.example", "10.0.0.10"}, kNow);
  ASSERT_TRUE(first.isOk()) << first.status().message();
  EXPECT_EQ(modeOf("ca.key"), 0600u);
  EXPECT_EQ(modeOf("server.key"), 0600u);
  EXPECT_EQ(modeOf("ca.crt"), 0644u);

  auto certificate = pki::Certificate::fromPem(first->certificatePem);
  ASSERT_TRUE(certificate.isOk());
  EXPECT_THAT(certificate->dnsNames(), UnorderedElementsAre("nodewarden.example"));
  EXPECT_THAT(certificate->ipAddresses(), UnorderedElementsAre("10.0.0.10"));
  EXPECT_TRUE(certificate->verifyIssuedBy(first->authority.certificate(), kNow).isOk());

  // A restart: the same CA (its pin is what nodes hold) and the same key, a
  // certificate for the names configured now.
  auto second = loadIdentity(dir_, "", "", {"other.example"}, kNow + 1h);
  ASSERT_TRUE(second.isOk()) << second.status().message();
  EXPECT_EQ(second->authority.certificate().publicKeyPin(),
            first->authority.certificate().publicKeyPin());
  EXPECT_EQ(second->keyPem, first->keyPem);
  auto renamed = pki::Certificate::fromPem(second->certificatePem);
  ASSERT_TRUE(renamed.isOk());
  EXPECT_THAT(renamed->dnsNames(), UnorderedElementsAre("other.example"));
}

TEST_F(IdentityTest, UsesAGivenCaAndWritesNoneOfItsOwn) {
  auto given = pki::Authority::create("corporate CA", kNow - 1h, 24h * 365);
  ASSERT_TRUE(given.isOk());
  const std::string certificateFile = dir_ + "/given.crt";
  const std::string keyFile = dir_ + "/given.key";
  ASSERT_TRUE(
      core::writeFileAtomic(certificateFile, given->certificate().toPem(), {.mode = 0644}).isOk());
  ASSERT_TRUE(core::writeFileAtomic(keyFile, given->keyPem(), {.mode = 0600}).isOk());

  auto identity = loadIdentity(dir_, certificateFile, keyFile, {"127.0.0.1"}, kNow);
  ASSERT_TRUE(identity.isOk()) << identity.status().message();
  EXPECT_EQ(identity->authority.certificate().publicKeyPin(), given->certificate().publicKeyPin());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/ca.crt"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/ca.key"));
  auto certificate = pki::Certificate::fromPem(identity->certificatePem);
  ASSERT_TRUE(certificate.isOk());
  EXPECT_TRUE(certificate->verifyIssuedBy(given->certificate(), kNow).isOk());
}

TEST_F(IdentityTest, RefusesAGivenKeyThatIsNotTheCas) {
  auto given = pki::Authority::create("corporate CA", kNow - 1h, 24h * 365);
  auto other = pki::Authority::create("another CA", kNow - 1h, 24h * 365);
  ASSERT_TRUE(given.isOk() && other.isOk());
  const std::string certificateFile = dir_ + "/given.crt";
  const std::string keyFile = dir_ + "/other.key";
  ASSERT_TRUE(
      core::writeFileAtomic(certificateFile, given->certificate().toPem(), {.mode = 0644}).isOk());
  ASSERT_TRUE(core::writeFileAtomic(keyFile, other->keyPem(), {.mode = 0600}).isOk());
  auto identity = loadIdentity(dir_, certificateFile, keyFile, {"127.0.0.1"}, kNow);
  ASSERT_FALSE(identity.isOk());
  EXPECT_THAT(identity.status().message(), HasSubstr("key"));
}

TEST_F(IdentityTest, RefusesACaKeyOthersCanRead) {
  ASSERT_TRUE(loadIdentity(dir_, "", "", {"127.0.0.1"}, kNow).isOk());
  ASSERT_EQ(::chmod((dir_ + "/ca.key").c_str(), 0644), 0);
  auto identity = loadIdentity(dir_, "", "", {"127.0.0.1"}, kNow);
  ASSERT_FALSE(identity.isOk());
  EXPECT_THAT(identity.status().message(), HasSubstr("0600"));
}

}  // namespace
}  // namespace nodewarden::server
