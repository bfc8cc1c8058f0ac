#include "agent/pki/certificate.h"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cassert>
#include <cctype>

#include "agent/pki/asn1_time.h"
#include "agent/pki/key.h"
#include "agent/pki/memory_bio.h"
#include "agent/pki/openssl_error.h"
#include "agent/pki/x509_name.h"

namespace nodewarden::pki {

namespace {

struct GeneralNamesFree {
  void operator()(GENERAL_NAMES* names) const { GENERAL_NAMES_free(names); }
};

// Calls `visit` with each subjectAltName entry of `type` (GEN_DNS, GEN_IPADD).
template <typename Visit>
void forEachAltName(X509* certificate, int type, Visit visit) {
  std::unique_ptr<GENERAL_NAMES, GeneralNamesFree> names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr)));
  clearOpenSslErrors();  // A certificate without the extension is no error.
  if (!names) return;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type == type) visit(name);
  }
}

std::string asn1Text(const ASN1_STRING* string) {
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(string)),
                     static_cast<size_t>(ASN1_STRING_length(string)));
}

}  // namespace

Certificate::Certificate(OpenSslPtr<X509> certificate) : certificate_(std::move(certificate)) {
  assert(certificate_);
}

Certificate::Certificate(const Certificate& other) : certificate_(other.certificate_.get()) {
  if (certificate_) X509_up_ref(certificate_.get());
}

Certificate& Certificate::operator=(const Certificate& other) {
  if (this != &other) *this = Certificate(other);
  return *this;
}

core::Result<Certificate> Certificate::fromPem(std::string_view pem) {
  clearOpenSslErrors();
  auto bio = readingBio(pem, "parse certificate");
  if (!bio) return bio.status();
  OpenSslPtr<X509> certificate(PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr));
  if (!certificate) {
    return core::Status::invalidArgument(openSslError("parse certificate", "PEM_read_bio_X509"));
  }
  return Certificate(std::move(certificate));
}

std::string Certificate::toPem() const {
  OpenSslPtr<BIO> bio = writingBio();
  if (!bio || PEM_write_bio_X509(bio.get(), certificate_.get()) != 1) {
    abortOnOpenSslFailure("PEM_write_bio_X509");
  }
  return contentsOf(bio.get());
}

std::string Certificate::commonName() const {
  auto name = commonNameOf(X509_get_subject_name(certificate_.get()));
  return name ? std::move(name).value() : std::string();
}

std::string Certificate::serialHex() const {
  OpenSslPtr<BIGNUM> serial(
      ASN1_INTEGER_to_BN(X509_get0_serialNumber(certificate_.get()), nullptr));
  if (!serial) abortOnOpenSslFailure("ASN1_INTEGER_to_BN");
  char* hex = BN_bn2hex(serial.get());
  if (hex == nullptr) abortOnOpenSslFailure("BN_bn2hex");
  std::string text(hex);
  OPENSSL_free(hex);
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

core::WallTime Certificate::notBefore() const {
  return toTimePoint(X509_get0_notBefore(certificate_.get()));
}

core::WallTime Certificate::notAfter() const {
  return toTimePoint(X509_get0_notAfter(certificate_.get()));
}

std::string Certificate::publicKeyPin() const {
  return pki::publicKeyPin(X509_get0_pubkey(certificate_.get()));
}

bool Certificate::matchesKey(const PrivateKey& key) const {
  const EVP_PKEY* publicKey = X509_get0_pubkey(certificate_.get());
  const bool matches = publicKey != nullptr && EVP_PKEY_eq(publicKey, key.get()) == 1;
  clearOpenSslErrors();  // Keys of different types leave an error for saying so.
  return matches;
}

std::vector<std::string> Certificate::dnsNames() const {
  std::vector<std::string> names;
  forEachAltName(certificate_.get(), GEN_DNS,
                 [&](const GENERAL_NAME* name) { names.push_back(asn1Text(name->d.dNSName)); });
  return names;
}

std::vector<std::string> Certificate::ipAddresses() const {
  std::vector<std::string> addresses;
  forEachAltName(certificate_.get(), GEN_IPADD, [&](const GENERAL_NAME* name) {
    const std::string bytes = asn1Text(name->d.iPAddress);
    char text[INET6_ADDRSTRLEN] = {};
    const int family = bytes.size() == 4 ? AF_INET : bytes.size() == 16 ? AF_INET6 : -1;
    if (family != -1 && ::inet_ntop(family, bytes.data(), text, sizeof(text)) != nullptr) {
      addresses.push_back(text);
    }
  });
  return addresses;
}

bool Certificate::isCa() const { return X509_check_ca(certificate_.get()) == 1; }

core::Status Certificate::verifyIssuedBy(const Certificate& ca, core::WallTime now) const {
  const std::string what =
      "verify certificate \"" + commonName() + "\" against CA \"" + ca.commonName() + "\"";
  clearOpenSslErrors();
  OpenSslPtr<X509_STORE> store(X509_STORE_new());
  if (!store) return core::Status::internal(openSslError(what, "X509_STORE_new"));
  if (X509_STORE_add_cert(store.get(), ca.get()) != 1) {
    return core::Status::internal(openSslError(what, "X509_STORE_add_cert"));
  }
  OpenSslPtr<X509_STORE_CTX> context(X509_STORE_CTX_new());
  if (!context ||
      X509_STORE_CTX_init(context.get(), store.get(), certificate_.get(), nullptr) != 1) {
    return core::Status::internal(openSslError(what, "X509_STORE_CTX_init"));
  }
  X509_STORE_CTX_set_time(context.get(), 0, std::chrono::system_clock::to_time_t(now));
  if (X509_verify_cert(context.get()) == 1) return core::Status::ok();

  const int error = X509_STORE_CTX_get_error(context.get());
  std::string message = what + ": " + X509_verify_cert_error_string(error);
  // Which certificate's window `now` fell out of, and the window's edge.
  const std::string whose = X509_STORE_CTX_get_error_depth(context.get()) > 0 ? "the CA's " : "";
  X509* failing = X509_STORE_CTX_get_current_cert(context.get());
  if (error == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY) {
    // The store holds only `ca`: none of the names and key identifiers fit.
    message += " (it was not issued by this CA)";
  } else if (error == X509_V_ERR_CERT_HAS_EXPIRED && failing != nullptr) {
    message += " (" + whose + "notAfter " + formatTime(toTimePoint(X509_get0_notAfter(failing))) +
               ", now " + formatTime(now) + ")";
  } else if (error == X509_V_ERR_CERT_NOT_YET_VALID && failing != nullptr) {
    message += " (" + whose + "notBefore " + formatTime(toTimePoint(X509_get0_notBefore(failing))) +
               ", now " + formatTime(now) + ")";
  }
  clearOpenSslErrors();
  return core::Status::invalidArgument(message);
}

}  // namespace nodewarden::pki
