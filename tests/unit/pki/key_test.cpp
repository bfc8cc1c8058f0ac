#include "agent/pki/key.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "agent/pki/key_file.h"
#include "tests/unit/pki/pki_test_support.h"

namespace nodewarden::pki {
namespace {

using test::pinFromCommand;
using test::run;
using test::TemporaryDirectory;

TEST(PrivateKeyTest, GeneratesAnEcP256KeyThatTheCliReads) {
  auto key = PrivateKey::generate();
  ASSERT_TRUE(key.isOk()) << key.status().message();
  TemporaryDirectory dir;
  const std::string file = dir.write("key.pem", key->toPem());
  EXPECT_NE(key->toPem().find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
  const std::string text = run("openssl pkey -in " + file + " -noout -text");
  EXPECT_NE(text.find("NIST CURVE: P-256"), std::string::npos) << text;
}

TEST(PrivateKeyTest, PinIsTheSha256OfTheDerPublicKeyAsTheCliComputesIt) {
  auto key = PrivateKey::generate();
  ASSERT_TRUE(key.isOk());
  TemporaryDirectory dir;
  const std::string file = dir.write("key.pem", key->toPem());
  const std::string pin = key->publicKeyPin();
  EXPECT_EQ(pin, pinFromCommand("openssl pkey -in " + file + " -pubout -outform der"));
  EXPECT_EQ(pin.size(), 7u + 64u);
}

TEST(PrivateKeyTest, PemRoundTripKeepsTheKey) {
  auto key = PrivateKey::generate();
  ASSERT_TRUE(key.isOk());
  auto again = PrivateKey::fromPem(key->toPem());
  ASSERT_TRUE(again.isOk()) << again.status().message();
  EXPECT_EQ(again->publicKeyPin(), key->publicKeyPin());
  EXPECT_NE(PrivateKey::generate()->publicKeyPin(), key->publicKeyPin());
}

TEST(PrivateKeyTest, ReadsKeysTheCliMade) {
  TemporaryDirectory dir;
  run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " + dir.path() +
      "/rsa.pem 2>/dev/null");
  run("openssl ecparam -name secp384r1 -genkey -noout -out " + dir.path() + "/ec.pem");
  for (const char* name : {"rsa.pem", "ec.pem"}) {
    const std::string file = dir.path() + "/" + name;
    auto key = readPrivateKey(file);
    ASSERT_TRUE(key.isOk()) << key.status().message();
    EXPECT_EQ(key->publicKeyPin(),
              pinFromCommand("openssl pkey -in " + file + " -pubout -outform der"));
  }
}

TEST(PrivateKeyTest, GarbageIsAClearError) {
  struct Case {
    std::string_view pem;
    std::string message;
  };
  for (const Case& c : {
           Case{"not a key", "parse private key: PEM_read_bio: no start line"},
           Case{"", "parse private key: PEM_read_bio: no start line"},
           Case{std::string_view("\0\xff\x30\x82", 4),
                "parse private key: PEM_read_bio: no start line"},
           Case{"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
                "parse private key: PEM_read_bio: bad base64 decode"},
           Case{"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "parse private key: PEM_read_bio_PrivateKey: unsupported (No supported data to "
                "decode. Input type: PEM)"},
           Case{"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "parse private key: expected a PRIVATE KEY, found a CERTIFICATE"},
       }) {
    auto key = PrivateKey::fromPem(c.pem);
    ASSERT_FALSE(key.isOk());
    EXPECT_EQ(key.status().code(), core::Status::Code::kInvalidArgument);
    EXPECT_EQ(key.status().message(), c.message);
  }
}

TEST(PrivateKeyTest, AnEncryptedKeyIsRefusedWithoutAskingForAPassphrase) {
  TemporaryDirectory dir;
  const std::string pkcs8 = dir.path() + "/pkcs8.pem", traditional = dir.path() + "/ec.pem";
  run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 -pass pass:secret "
      "-out " +
      pkcs8);
  run("openssl ec -in " + pkcs8 + " -passin pass:secret -aes256 -passout pass:secret -out " +
      traditional + " 2>/dev/null");
  for (const std::string& file : {pkcs8, traditional}) {
    auto key = readPrivateKey(file);
    ASSERT_FALSE(key.isOk());
    EXPECT_EQ(
        key.status().message(),
        file + ": parse private key: the key is encrypted; only unencrypted keys can be read");
  }
}

TEST(KeyFileTest, WritesTheKeyWithMode0600AndReadsItBack) {
  auto key = PrivateKey::generate();
  ASSERT_TRUE(key.isOk());
  TemporaryDirectory dir;
  const std::string file = dir.path() + "/node.key";
  ASSERT_TRUE(writePrivateKey(file, *key).isOk());
  struct stat st;
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  auto read = readPrivateKey(file);
  ASSERT_TRUE(read.isOk()) << read.status().message();
  EXPECT_EQ(read->publicKeyPin(), key->publicKeyPin());

  // A second write replaces the key, still 0600.
  auto other = PrivateKey::generate();
  ASSERT_TRUE(writePrivateKey(file, *other).isOk());
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(readPrivateKey(file)->publicKeyPin(), other->publicKeyPin());
}

TEST(KeyFileTest, RefusesAKeyFileOthersMayRead) {
  auto key = PrivateKey::generate();
  ASSERT_TRUE(key.isOk());
  TemporaryDirectory dir;
  const std::string file = dir.path() + "/node.key";
  ASSERT_TRUE(writePrivateKey(file, *key).isOk());
  for (mode_t mode : {0644, 0640, 0604, 0620}) {
    ASSERT_EQ(::chmod(file.c_str(), mode), 0);
    auto read = readPrivateKey(file);
    ASSERT_FALSE(read.isOk()) << std::oct << mode;
    EXPECT_EQ(read.status().code(), core::Status::Code::kFailedPrecondition);
    EXPECT_NE(read.status().message().find(file), std::string::npos) << read.status().message();
    EXPECT_NE(read.status().message().find("group or others"), std::string::npos)
        << read.status().message();
  }
  ASSERT_EQ(::chmod(file.c_str(), 0400), 0);
  EXPECT_TRUE(readPrivateKey(file).isOk());
}

TEST(KeyFileTest, AMissingFileIsAClearError) {
  TemporaryDirectory dir;
  auto read = readPrivateKey(dir.path() + "/missing.key");
  ASSERT_FALSE(read.isOk());
  EXPECT_EQ(read.status().message(),
            "stat " + dir.path() + "/missing.key: No such file or directory");
}

}  // namespace
}  // namespace nodewarden::pki
