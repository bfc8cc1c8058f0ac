#include "agent/pki/csr.h"

#include <gtest/gtest.h>

#include "agent/pki/key.h"
#include "agent/pki/key_file.h"
#include "tests/unit/pki/pki_test_support.h"

namespace nodewarden::pki {
namespace {

using test::run;
using test::TemporaryDirectory;

// A request the openssl CLI makes for a key of `algorithmOptions`.
std::string cliRequest(const TemporaryDirectory& dir, const std::string& algorithmOptions,
                       const std::string& subject = "/CN=node-1") {
  const std::string key = dir.path() + "/cli.key", request = dir.path() + "/cli.csr";
  run("openssl genpkey " + algorithmOptions + " -out " + key + " 2>/dev/null");
  run("openssl req -new -key " + key + " -subj " + subject + " -out " + request);
  return run("cat " + request);
}

TEST(CsrTest, MakesARequestTheCliVerifies) {
  auto key = PrivateKey::generate();
  ASSERT_TRUE(key.isOk());
  auto pem = makeCsr(*key, "node-1.example.com");
  ASSERT_TRUE(pem.isOk()) << pem.status().message();
  TemporaryDirectory dir;
  const std::string file = dir.write("node.csr", *pem);
  const std::string text = run("openssl req -in " + file + " -verify -noout -text 2>&1");
  EXPECT_NE(text.find("verify OK"), std::string::npos) << text;
  EXPECT_NE(text.find("Subject: CN = node-1.example.com"), std::string::npos) << text;
  EXPECT_NE(text.find("ecdsa-with-SHA256"), std::string::npos) << text;
}

TEST(CsrTest, ReadsTheNameAndTheKeysPin) {
  auto key = PrivateKey::generate();
  ASSERT_TRUE(key.isOk());
  auto info = readCsr(makeCsr(*key, "node-1").value());
  ASSERT_TRUE(info.isOk()) << info.status().message();
  EXPECT_EQ(info->commonName, "node-1");
  EXPECT_EQ(info->publicKeyPin, key->publicKeyPin());
}

TEST(CsrTest, RefusesAnEmptyOrOverlongName) {
  auto key = PrivateKey::generate();
  ASSERT_TRUE(key.isOk());
  EXPECT_FALSE(makeCsr(*key, "").isOk());
  auto tooLong = makeCsr(*key, std::string(65, 'a'));
  ASSERT_FALSE(tooLong.isOk());
  EXPECT_NE(tooLong.status().message().find("string too long"), std::string::npos)
      << tooLong.status().message();
}

TEST(CsrTest, AcceptsP384AndRsa2048) {
  TemporaryDirectory dir;
  for (const char* options : {"-algorithm EC -pkeyopt ec_paramgen_curve:P-384",
                              "-algorithm RSA -pkeyopt rsa_keygen_bits:2048"}) {
    auto info = readCsr(cliRequest(dir, options));
    ASSERT_TRUE(info.isOk()) << options << ": " << info.status().message();
    EXPECT_EQ(info->commonName, "node-1");
    EXPECT_EQ(info->publicKeyPin, readPrivateKey(dir.path() + "/cli.key")->publicKeyPin());
  }
}

TEST(CsrTest, RefusesKeysThisClusterDoesNotAccept) {
  TemporaryDirectory dir;
  struct Case {
    const char* options;
    const char* message;
  };
  for (const Case& c : {
           Case{"-algorithm RSA -pkeyopt rsa_keygen_bits:1024",
                "read certificate request: the request's key is RSA of 1024 bits: use EC P-256, "
                "P-384 or RSA of 2048 to 8192 bits"},
           Case{"-algorithm EC -pkeyopt ec_paramgen_curve:P-521",
                "read certificate request: the request's key is on curve secp521r1: use EC P-256, "
                "P-384 or RSA of 2048 to 8192 bits"},
           Case{"-algorithm ED25519",
                "read certificate request: the request's key is of type ED25519: use EC P-256, "
                "P-384 or RSA of 2048 to 8192 bits"},
       }) {
    auto info = readCsr(cliRequest(dir, c.options));
    ASSERT_FALSE(info.isOk()) << c.options;
    EXPECT_EQ(info.status().message(), c.message);
  }
}

TEST(CsrTest, RefusesARequestWhoseSignatureDoesNotVerify) {
  auto key = PrivateKey::generate();
  ASSERT_TRUE(key.isOk());
  std::string pem = makeCsr(*key, "node-1").value();
  // Flip a bit near the end of the base64, inside the signature.
  const size_t at = pem.find("-----END") - 10;
  pem[at] = pem[at] == 'A' ? 'B' : 'A';
  auto info = readCsr(pem);
  ASSERT_FALSE(info.isOk());
  EXPECT_EQ(info.status().message().rfind(
                "read certificate request: its signature does not verify: X509_REQ_verify", 0),
            0u)
      << info.status().message();
}

TEST(CsrTest, RefusesARequestWithoutOrWithTwoCommonNames) {
  TemporaryDirectory dir;
  const std::string ec = "-algorithm EC -pkeyopt ec_paramgen_curve:P-256";
  auto none = readCsr(cliRequest(dir, ec, "/O=nodes"));
  ASSERT_FALSE(none.isOk());
  EXPECT_EQ(none.status().message(), "read certificate request: the subject has no common name");
  auto two = readCsr(cliRequest(dir, ec, "/CN=node-1/CN=node-2"));
  ASSERT_FALSE(two.isOk());
  EXPECT_EQ(two.status().message(),
            "read certificate request: the subject has more than one common name");
}

TEST(CsrTest, GarbageIsAClearError) {
  auto info = readCsr("hello");
  ASSERT_FALSE(info.isOk());
  EXPECT_EQ(info.status().message(),
            "read certificate request: PEM_read_bio_X509_REQ: no start line (Expecting: "
            "CERTIFICATE REQUEST)");
  auto huge = readCsr(std::string(100 * 1024, 'A'));
  ASSERT_FALSE(huge.isOk());
  EXPECT_EQ(huge.status().message(), "read certificate request: larger than 16384 bytes");
}

}  // namespace
}  // namespace nodewarden::pki
