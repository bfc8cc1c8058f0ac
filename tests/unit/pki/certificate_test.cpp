#include "agent/pki/certificate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <optional>

#include "agent/pki/key.h"
#include "tests/unit/pki/pki_test_support.h"

namespace nodewarden::pki {
namespace {

using test::run;
using test::TemporaryDirectory;

// A self-signed certificate the openssl CLI makes, with names in its subjectAltName.
class CliCertificateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = dir_.path() + "/cli.key";
    file_ = dir_.path() + "/cli.pem";
    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " +
        key_ + " -out " + file_ + " -subj /CN=web.example.com -days 10" +
        " -addext subjectAltName=DNS:web.example.com,IP:10.0.0.7,DNS:web,IP:fd00::1 2>/dev/null");
    auto certificate = Certificate::fromPem(run("cat " + file_));
    ASSERT_TRUE(certificate.isOk()) << certificate.status().message();
    certificate_ = std::move(certificate).value();
  }

  TemporaryDirectory dir_;
  std::string key_;
  std::string file_;
  std::optional<Certificate> certificate_;
};

TEST_F(CliCertificateTest, ReadsNameSerialAndAltNames) {
  EXPECT_EQ(certificate_->commonName(), "web.example.com");
  std::string serial = run("openssl x509 -in " + file_ + " -noout -serial");
  serial = serial.substr(serial.find('=') + 1);
  serial.erase(serial.find_last_not_of('\n') + 1);
  std::transform(serial.begin(), serial.end(), serial.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  EXPECT_EQ(certificate_->serialHex(), serial);
  EXPECT_EQ(certificate_->dnsNames(), (std::vector<std::string>{"web.example.com", "web"}));
  EXPECT_EQ(certificate_->ipAddresses(), (std::vector<std::string>{"10.0.0.7", "fd00::1"}));
}

TEST_F(CliCertificateTest, ReadsTheValidityWindow) {
  const std::string enddate =
      run("openssl x509 -in " + file_ + " -noout -enddate -dateopt iso_8601");
  EXPECT_EQ(certificate_->notAfter() - certificate_->notBefore(), std::chrono::hours(24 * 10));
  const auto seconds = std::chrono::system_clock::to_time_t(certificate_->notAfter());
  struct tm fields = {};
  ::gmtime_r(&seconds, &fields);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%SZ", &fields);
  EXPECT_EQ(enddate, std::string("notAfter=") + text + "\n");
}

TEST_F(CliCertificateTest, PinIsTheOneTheCliComputes) {
  EXPECT_EQ(certificate_->publicKeyPin(),
            test::pinFromCommand("openssl x509 -in " + file_ +
                                 " -pubkey -noout | openssl pkey -pubin -outform der"));
}

TEST_F(CliCertificateTest, MatchesItsKeyOnly) {
  auto key = PrivateKey::fromPem(run("cat " + key_));
  ASSERT_TRUE(key.isOk()) << key.status().message();
  EXPECT_TRUE(certificate_->matchesKey(*key));
  EXPECT_FALSE(certificate_->matchesKey(PrivateKey::generate().value()));
}

TEST_F(CliCertificateTest, CopiesShareTheCertificateAndPemRoundTrips) {
  Certificate copy = *certificate_;
  EXPECT_EQ(copy.get(), certificate_->get());
  auto again = Certificate::fromPem(copy.toPem());
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(again->toPem(), certificate_->toPem());
  EXPECT_EQ(again->toPem(), run("cat " + file_));
}

TEST(CertificateTest, GarbageIsAClearError) {
  auto garbage = Certificate::fromPem("garbage");
  ASSERT_FALSE(garbage.isOk());
  EXPECT_EQ(garbage.status().code(), core::Status::Code::kInvalidArgument);
  EXPECT_EQ(garbage.status().message(),
            "parse certificate: PEM_read_bio_X509: no start line (Expecting: CERTIFICATE)");

  auto truncated =
      Certificate::fromPem("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  ASSERT_FALSE(truncated.isOk());
  EXPECT_EQ(truncated.status().message(), "parse certificate: PEM_read_bio_X509: header too long");

  auto key = PrivateKey::generate();
  auto notACertificate = Certificate::fromPem(key->toPem());
  ASSERT_FALSE(notACertificate.isOk());
  EXPECT_EQ(notACertificate.status().message(),
            "parse certificate: PEM_read_bio_X509: no start line (Expecting: CERTIFICATE)");
}

}  // namespace
}  // namespace nodewarden::pki
