#include "agent/pki/authority.h"

#include <openssl/x509v3.h>

#include <gtest/gtest.h>

#include "agent/pki/csr.h"
#include "tests/unit/pki/pki_test_support.h"

namespace nodewarden::pki {
namespace {

using namespace std::chrono_literals;
using test::kNow;
using test::run;
using test::TemporaryDirectory;

constexpr std::chrono::seconds kCaValidity = 24h * 3650;
constexpr std::chrono::seconds kNodeValidity = 24h * 30;

class AuthorityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = Authority::create("nodewarden cluster CA", kNow, kCaValidity);
    ASSERT_TRUE(ca.isOk()) << ca.status().message();
    ca_.emplace(std::move(ca).value());
    auto key = PrivateKey::generate();
    ASSERT_TRUE(key.isOk());
    nodeKey_.emplace(std::move(key).value());
  }

  // A certificate the CA signs for node-1 from the node's own request.
  Certificate nodeCertificate(core::WallTime now = kNow,
                              std::chrono::seconds validity = kNodeValidity) {
    auto pem =
        ca_->signNodeCertificate(makeCsr(*nodeKey_, "node-1").value(), "node-1", now, validity);
    EXPECT_TRUE(pem.isOk()) << pem.status().message();
    return Certificate::fromPem(pem.isOk() ? *pem : "").value();
  }

  std::optional<Authority> ca_;
  std::optional<PrivateKey> nodeKey_;
};

TEST_F(AuthorityTest, CreatesASelfSignedCa) {
  const Certificate& certificate = ca_->certificate();
  EXPECT_EQ(certificate.commonName(), "nodewarden cluster CA");
  EXPECT_TRUE(certificate.isCa());
  EXPECT_EQ(certificate.notBefore(), kNow - kClockSkewAllowance);
  EXPECT_EQ(certificate.notAfter(), kNow + kCaValidity);
  EXPECT_EQ(certificate.serialHex().size(), 32u);
  EXPECT_TRUE(certificate.verifyIssuedBy(certificate, kNow).isOk());

  X509* x509 = certificate.get();
  EXPECT_EQ(X509_get_key_usage(x509), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_NE(X509_get0_subject_key_id(x509), nullptr);
  int critical = -1;
  BASIC_CONSTRAINTS* constraints = static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(x509, NID_basic_constraints, &critical, nullptr));
  ASSERT_NE(constraints, nullptr);
  EXPECT_TRUE(constraints->ca);
  EXPECT_EQ(critical, 1);
  BASIC_CONSTRAINTS_free(constraints);

  TemporaryDirectory dir;
  const std::string text =
      run("openssl x509 -noout -text -in " + dir.write("ca.pem", certificate.toPem()));
  EXPECT_NE(text.find("ASN1 OID: prime256v1"), std::string::npos) << text;
  EXPECT_NE(text.find("Signature Algorithm: ecdsa-with-SHA256"), std::string::npos) << text;
}

TEST_F(AuthorityTest, PinIsTheOneKubeadmJoinTakes) {
  TemporaryDirectory dir;
  const std::string file = dir.write("ca.pem", ca_->certificate().toPem());
  EXPECT_EQ(ca_->certificate().publicKeyPin(),
            test::pinFromCommand("openssl x509 -in " + file +
                                 " -pubkey -noout | openssl pkey -pubin -outform der"));
}

TEST_F(AuthorityTest, LoadsWhatItSaved) {
  auto loaded = Authority::load(ca_->certificate().toPem(), ca_->keyPem());
  ASSERT_TRUE(loaded.isOk()) << loaded.status().message();
  EXPECT_EQ(loaded->certificate().toPem(), ca_->certificate().toPem());
  EXPECT_EQ(loaded->certificate().publicKeyPin(), ca_->certificate().publicKeyPin());

  // What the loaded CA signs, the created one's certificate verifies.
  auto pem = loaded->signNodeCertificate(makeCsr(*nodeKey_, "node-1").value(), "node-1", kNow,
                                         kNodeValidity);
  ASSERT_TRUE(pem.isOk()) << pem.status().message();
  EXPECT_TRUE(Certificate::fromPem(*pem)->verifyIssuedBy(ca_->certificate(), kNow).isOk());
}

TEST_F(AuthorityTest, LoadRefusesAKeyThatIsNotTheCertificates) {
  auto other = Authority::create("other", kNow, kCaValidity);
  ASSERT_TRUE(other.isOk());
  auto loaded = Authority::load(ca_->certificate().toPem(), other->keyPem());
  ASSERT_FALSE(loaded.isOk());
  EXPECT_EQ(loaded.status().message(),
            "load CA: the key is not the key of certificate \"nodewarden cluster CA\"");
}

TEST_F(AuthorityTest, LoadRefusesACertificateThatIsNoCa) {
  auto loaded = Authority::load(nodeCertificate().toPem(), nodeKey_->toPem());
  ASSERT_FALSE(loaded.isOk());
  EXPECT_EQ(loaded.status().message(),
            "load CA: certificate \"node-1\" is not a CA (it needs basicConstraints CA:TRUE and "
            "keyUsage keyCertSign)");
}

TEST_F(AuthorityTest, LoadRefusesGarbage) {
  auto certificate = Authority::load("junk", ca_->keyPem());
  ASSERT_FALSE(certificate.isOk());
  EXPECT_EQ(
      certificate.status().message(),
      "load CA: parse certificate: PEM_read_bio_X509: no start line (Expecting: CERTIFICATE)");
  auto key = Authority::load(ca_->certificate().toPem(), "junk");
  ASSERT_FALSE(key.isOk());
  EXPECT_EQ(key.status().message(), "load CA: parse private key: PEM_read_bio: no start line");
}

TEST_F(AuthorityTest, SignsANodeCertificateForClientAndServerAuth) {
  const Certificate certificate = nodeCertificate();
  EXPECT_EQ(certificate.commonName(), "node-1");
  EXPECT_EQ(certificate.dnsNames(), std::vector<std::string>{"node-1"});
  EXPECT_TRUE(certificate.ipAddresses().empty());
  EXPECT_TRUE(certificate.matchesKey(*nodeKey_));
  EXPECT_FALSE(certificate.isCa());
  EXPECT_EQ(certificate.notBefore(), kNow - 5min);
  EXPECT_EQ(certificate.notAfter(), kNow + kNodeValidity);
  EXPECT_EQ(certificate.serialHex().size(), 32u);
  EXPECT_NE(certificate.serialHex(), nodeCertificate().serialHex());

  X509* x509 = certificate.get();
  EXPECT_EQ(X509_get_key_usage(x509), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  EXPECT_EQ(X509_get_extended_key_usage(x509),
            static_cast<uint32_t>(XKU_SSL_CLIENT | XKU_SSL_SERVER));
  ASSERT_NE(X509_get0_authority_key_id(x509), nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x509),
                                  X509_get0_subject_key_id(ca_->certificate().get())),
            0);
  int critical = -1;
  ASN1_BIT_STRING* usage =
      static_cast<ASN1_BIT_STRING*>(X509_get_ext_d2i(x509, NID_key_usage, &critical, nullptr));
  ASSERT_NE(usage, nullptr);
  EXPECT_EQ(critical, 1);
  ASN1_BIT_STRING_free(usage);
}

TEST_F(AuthorityTest, TheCliVerifiesANodeCertificateForTlsClientAndServer) {
  TemporaryDirectory dir;
  const std::string ca = dir.write("ca.pem", ca_->certificate().toPem());
  const std::string node = dir.write("node.pem", nodeCertificate().toPem());
  const std::string at = " -attime " + std::to_string(std::chrono::system_clock::to_time_t(kNow));
  for (const char* purpose : {"sslclient", "sslserver"}) {
    EXPECT_EQ(run("openssl verify -x509_strict -purpose " + std::string(purpose) + at +
                  " -CAfile " + ca + " " + node),
              node + ": OK\n");
  }
}

TEST_F(AuthorityTest, ANodeCertificateVerifiesAgainstItsCaOnly) {
  const Certificate certificate = nodeCertificate();
  EXPECT_TRUE(certificate.verifyIssuedBy(ca_->certificate(), kNow).isOk());

  auto other = Authority::create("nodewarden cluster CA", kNow, kCaValidity);
  ASSERT_TRUE(other.isOk());
  core::Status status = certificate.verifyIssuedBy(other->certificate(), kNow);
  ASSERT_FALSE(status.isOk());
  EXPECT_EQ(status.message(),
            "verify certificate \"node-1\" against CA \"nodewarden cluster CA\": unable to get "
            "local issuer certificate (it was not issued by this CA)");
  // Nor against itself, nor does the CA against the node.
  EXPECT_FALSE(certificate.verifyIssuedBy(certificate, kNow).isOk());
  EXPECT_FALSE(ca_->certificate().verifyIssuedBy(certificate, kNow).isOk());
}

TEST_F(AuthorityTest, ANodeCertificateVerifiesOnlyWithinItsValidity) {
  const core::WallTime issued = kNow + 24h;
  const Certificate certificate = nodeCertificate(issued);
  EXPECT_TRUE(certificate.verifyIssuedBy(ca_->certificate(), issued - 5min).isOk());
  EXPECT_TRUE(certificate.verifyIssuedBy(ca_->certificate(), issued + kNodeValidity - 1s).isOk());

  core::Status early = certificate.verifyIssuedBy(ca_->certificate(), issued - 6min);
  ASSERT_FALSE(early.isOk());
  EXPECT_EQ(early.message(),
            "verify certificate \"node-1\" against CA \"nodewarden cluster CA\": certificate is "
            "not yet valid (notBefore 2030-01-01T23:55:00Z, now 2030-01-01T23:54:00Z)");

  // OpenSSL holds a certificate expired from the second of its notAfter on.
  core::Status late = certificate.verifyIssuedBy(ca_->certificate(), issued + kNodeValidity);
  ASSERT_FALSE(late.isOk());
  EXPECT_EQ(late.message(),
            "verify certificate \"node-1\" against CA \"nodewarden cluster CA\": certificate has "
            "expired (notAfter 2030-02-01T00:00:00Z, now 2030-02-01T00:00:00Z)");
}

TEST_F(AuthorityTest, VerifyingAtTheCasStartReportsTheCa) {
  core::Status status = nodeCertificate().verifyIssuedBy(ca_->certificate(), kNow - 6min);
  ASSERT_FALSE(status.isOk());
  EXPECT_NE(status.message().find("certificate is not yet valid (the CA's notBefore "
                                  "2029-12-31T23:55:00Z, now 2029-12-31T23:54:00Z)"),
            std::string::npos)
      << status.message();
}

TEST_F(AuthorityTest, ANodeCertificateNeverOutlivesItsCa) {
  const core::WallTime nearCaEnd = kNow + kCaValidity - 24h;
  const Certificate certificate = nodeCertificate(nearCaEnd);
  EXPECT_EQ(certificate.notAfter(), ca_->certificate().notAfter());
  EXPECT_TRUE(certificate.verifyIssuedBy(ca_->certificate(), nearCaEnd).isOk());

  auto expired = ca_->signNodeCertificate(makeCsr(*nodeKey_, "node-1").value(), "node-1",
                                          kNow + kCaValidity, kNodeValidity);
  ASSERT_FALSE(expired.isOk());
  EXPECT_EQ(expired.status().message(),
            "sign certificate for node \"node-1\": the CA expired at 2039-12-30T00:00:00Z");
}

TEST_F(AuthorityTest, ACertificateIsRefusedWhenItsCaHasExpired) {
  core::Status status = nodeCertificate(kNow + kCaValidity - 1h, 24h)
                            .verifyIssuedBy(ca_->certificate(), kNow + kCaValidity + 1s);
  ASSERT_FALSE(status.isOk());
  EXPECT_NE(status.message().find("certificate has expired (the CA's notAfter "), std::string::npos)
      << status.message();
}

TEST_F(AuthorityTest, RefusesARequestForAnotherNode) {
  auto pem =
      ca_->signNodeCertificate(makeCsr(*nodeKey_, "node-2").value(), "node-1", kNow, kNodeValidity);
  ASSERT_FALSE(pem.isOk());
  EXPECT_EQ(pem.status().code(), core::Status::Code::kInvalidArgument);
  EXPECT_EQ(pem.status().message(),
            "sign certificate for node \"node-1\": the request names \"node-2\", not \"node-1\"");
}

TEST_F(AuthorityTest, RefusesBadRequestsAndNames) {
  auto garbage = ca_->signNodeCertificate("junk", "node-1", kNow, kNodeValidity);
  ASSERT_FALSE(garbage.isOk());
  EXPECT_EQ(garbage.status().message(),
            "sign certificate for node \"node-1\": read certificate request: "
            "PEM_read_bio_X509_REQ: no start line (Expecting: CERTIFICATE REQUEST)");

  auto badName = ca_->signNodeCertificate(makeCsr(*nodeKey_, "node_1,DNS:evil").value(),
                                          "node_1,DNS:evil", kNow, kNodeValidity);
  ASSERT_FALSE(badName.isOk());
  EXPECT_EQ(badName.status().message(),
            "sign certificate for node \"node_1,DNS:evil\": the node's name is not a valid DNS "
            "name");

  auto noValidity =
      ca_->signNodeCertificate(makeCsr(*nodeKey_, "node-1").value(), "node-1", kNow, 0s);
  ASSERT_FALSE(noValidity.isOk());
  EXPECT_EQ(noValidity.status().message(),
            "sign certificate for node \"node-1\": the validity must be positive");
}

TEST_F(AuthorityTest, IssuesAServerCertificateWithDnsAndIpNames) {
  auto key = PrivateKey::generate();
  ASSERT_TRUE(key.isOk());
  auto pem = ca_->issueServerCertificate(
      *key, {"nodewarden.example.com", "10.1.2.3", "nodewarden", "2001:db8::7"}, kNow, 24h * 365);
  ASSERT_TRUE(pem.isOk()) << pem.status().message();
  auto certificate = Certificate::fromPem(*pem);
  ASSERT_TRUE(certificate.isOk());
  EXPECT_EQ(certificate->commonName(), "nodewarden.example.com");
  EXPECT_EQ(certificate->dnsNames(),
            (std::vector<std::string>{"nodewarden.example.com", "nodewarden"}));
  EXPECT_EQ(certificate->ipAddresses(), (std::vector<std::string>{"10.1.2.3", "2001:db8::7"}));
  EXPECT_TRUE(certificate->matchesKey(*key));
  EXPECT_TRUE(certificate->verifyIssuedBy(ca_->certificate(), kNow).isOk());
  EXPECT_EQ(X509_get_extended_key_usage(certificate->get()), static_cast<uint32_t>(XKU_SSL_SERVER));

  TemporaryDirectory dir;
  const std::string ca = dir.write("ca.pem", ca_->certificate().toPem());
  const std::string server = dir.write("server.pem", *pem);
  const std::string at = " -attime " + std::to_string(std::chrono::system_clock::to_time_t(kNow));
  EXPECT_EQ(run("openssl verify -x509_strict -purpose sslserver -verify_ip 10.1.2.3" + at +
                " -CAfile " + ca + " " + server),
            server + ": OK\n");
  EXPECT_EQ(run("openssl verify -x509_strict -purpose sslserver -verify_hostname nodewarden" + at +
                " -CAfile " + ca + " " + server),
            server + ": OK\n");
}

TEST_F(AuthorityTest, RefusesServerNamesThatAreNeitherDnsNamesNorAddresses) {
  auto key = PrivateKey::generate();
  ASSERT_TRUE(key.isOk());
  auto none = ca_->issueServerCertificate(*key, {}, kNow, 24h);
  ASSERT_FALSE(none.isOk());
  EXPECT_EQ(none.status().message(), "issue server certificate: no names given");
  for (const char* bad : {"*.example.com", "a..b", "-x", "x y", "10.0.0.1/8", "[::1]"}) {
    auto pem = ca_->issueServerCertificate(*key, {"ok.example.com", bad}, kNow, 24h);
    ASSERT_FALSE(pem.isOk()) << bad;
    EXPECT_EQ(pem.status().message(), "issue server certificate for \"ok.example.com\": \"" +
                                          std::string(bad) +
                                          "\" is neither an IP address nor a valid DNS name");
  }
}

}  // namespace
}  // namespace nodewarden::pki
