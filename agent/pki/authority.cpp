#include "agent/pki/authority.h"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>

#include "agent/pki/asn1_time.h"
#include "agent/pki/csr.h"
#include "agent/pki/openssl_error.h"
#include "agent/pki/x509_name.h"

namespace nodewarden::pki {

namespace {

constexpr int kSerialBits = 128;

struct GeneralNamesFree {
  void operator()(GENERAL_NAMES* names) const { GENERAL_NAMES_free(names); }
};
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, GeneralNamesFree>;

// What a certificate may be used for.
enum class Profile { kCa, kNode, kServer };

// What goes into a certificate besides its profile.
struct Subject {
  EVP_PKEY* key = nullptr;
  std::string_view commonName;
  const std::vector<std::string>* altNames = nullptr;  // none for a CA
};

struct Validity {
  core::WallTime notBefore;
  core::WallTime notAfter;
};

// Letters, digits and hyphens in dot-separated labels (RFC 1123): what
// Kubernetes allows in node names, and nothing a TLS client would read as a
// wildcard or could confuse with another name.
bool isDnsName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  while (true) {
    const size_t dot = name.find('.');
    const std::string_view label = name.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      const bool allowed =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!allowed) return false;
    }
    if (dot == std::string_view::npos) return true;
    name.remove_prefix(dot + 1);
  }
}

// The address's bytes in network order when `name` is an IPv4 or IPv6 address.
std::string ipAddressBytes(const std::string& name) {
  unsigned char bytes[16];
  if (::inet_pton(AF_INET, name.c_str(), bytes) == 1) {
    return std::string(reinterpret_cast<const char*>(bytes), 4);
  }
  if (::inet_pton(AF_INET6, name.c_str(), bytes) == 1) {
    return std::string(reinterpret_cast<const char*>(bytes), 16);
  }
  return {};
}

core::Status checkNames(const std::vector<std::string>& names) {
  if (names.empty()) return core::Status::invalidArgument("no names given");
  for (const std::string& name : names) {
    if (ipAddressBytes(name).empty() && !isDnsName(name)) {
      return core::Status::invalidArgument("\"" + name +
                                           "\" is neither an IP address nor a valid DNS name");
    }
  }
  return core::Status::ok();
}

core::Result<GeneralNamesPtr> makeAltNames(const std::vector<std::string>& names,
                                           const std::string& what) {
  GeneralNamesPtr altNames(sk_GENERAL_NAME_new_null());
  if (!altNames) return core::Status::internal(openSslError(what, "sk_GENERAL_NAME_new_null"));
  for (const std::string& name : names) {
    const std::string address = ipAddressBytes(name);
    const std::string& value = address.empty() ? name : address;
    OpenSslPtr<ASN1_STRING> string(address.empty() ? ASN1_IA5STRING_new()
                                                   : ASN1_OCTET_STRING_new());
    std::unique_ptr<GENERAL_NAME, decltype(&GENERAL_NAME_free)> entry(GENERAL_NAME_new(),
                                                                      &GENERAL_NAME_free);
    if (!string || !entry ||
        ASN1_STRING_set(string.get(), value.data(), static_cast<int>(value.size())) != 1) {
      return core::Status::internal(openSslError(what, "ASN1_STRING_set"));
    }
    GENERAL_NAME_set0_value(entry.get(), address.empty() ? GEN_DNS : GEN_IPADD, string.release());
    if (sk_GENERAL_NAME_push(altNames.get(), entry.get()) <= 0) {
      return core::Status::internal(openSslError(what, "sk_GENERAL_NAME_push"));
    }
    entry.release();
  }
  return altNames;
}

core::Status addExtension(X509* certificate, X509V3_CTX* context, int nid, const char* value,
                          const std::string& what) {
  OpenSslPtr<X509_EXTENSION> extension(X509V3_EXT_conf_nid(nullptr, context, nid, value));
  if (!extension || X509_add_ext(certificate, extension.get(), -1) != 1) {
    return core::Status::internal(
        openSslError(what + ": add " + OBJ_nid2sn(nid), "X509V3_EXT_conf_nid"));
  }
  return core::Status::ok();
}

core::Status addExtensions(X509* certificate, X509* issuer, Profile profile, const Subject& subject,
                           const std::string& what) {
  X509V3_CTX context;
  X509V3_set_ctx(&context, issuer, certificate, nullptr, nullptr, 0);
  struct Extension {
    int nid;
    const char* value;
  };
  std::vector<Extension> extensions;
  if (profile == Profile::kCa) {
    extensions = {{NID_basic_constraints, "critical,CA:TRUE"},
                  {NID_key_usage, "critical,keyCertSign,cRLSign"},
                  {NID_subject_key_identifier, "hash"}};
  } else {
    extensions = {
        {NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage, "critical,digitalSignature"},
        {NID_ext_key_usage, profile == Profile::kNode ? "clientAuth,serverAuth" : "serverAuth"},
        {NID_subject_key_identifier, "hash"},
        {NID_authority_key_identifier, "keyid:always"}};
  }
  for (const Extension& extension : extensions) {
    if (core::Status added =
            addExtension(certificate, &context, extension.nid, extension.value, what);
        !added) {
      return added;
    }
  }
  if (subject.altNames == nullptr) return core::Status::ok();
  auto altNames = makeAltNames(*subject.altNames, what);
  if (!altNames) return altNames.status();
  if (X509_add1_ext_i2d(certificate, NID_subject_alt_name, altNames->get(), 0,
                        X509V3_ADD_DEFAULT) != 1) {
    return core::Status::internal(openSslError(what, "X509_add1_ext_i2d"));
  }
  return core::Status::ok();
}

// A certificate for `subject` signed by `signingKey`, issued by `issuer`, or
// self-signed when `issuer` is null.
core::Result<OpenSslPtr<X509>> issue(X509* issuer, EVP_PKEY* signingKey, const Subject& subject,
                                     Profile profile, Validity validity, const std::string& what) {
  auto name = nameWithCommonName(subject.commonName);
  if (!name) return name.status().withContext(what);
  clearOpenSslErrors();
  OpenSslPtr<X509> certificate(X509_new());
  if (!certificate) return core::Status::internal(openSslError(what, "X509_new"));
  // Positive and never zero, with the 64 random bits and more that the CA/Browser Forum asks.
  OpenSslPtr<BIGNUM> serial(BN_new());
  if (!serial || BN_rand(serial.get(), kSerialBits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(certificate.get())) == nullptr) {
    return core::Status::internal(openSslError(what, "BN_rand"));
  }
  X509_NAME* issuerName = issuer ? X509_get_subject_name(issuer) : name->get();
  if (X509_set_version(certificate.get(), X509_VERSION_3) != 1 ||
      X509_set_subject_name(certificate.get(), name->get()) != 1 ||
      X509_set_issuer_name(certificate.get(), issuerName) != 1 ||
      X509_set_pubkey(certificate.get(), subject.key) != 1) {
    return core::Status::internal(openSslError(what, "X509_set"));
  }
  if (core::Status set = setAsn1Time(X509_getm_notBefore(certificate.get()), validity.notBefore);
      !set) {
    return set.withContext(what);
  }
  if (core::Status set = setAsn1Time(X509_getm_notAfter(certificate.get()), validity.notAfter);
      !set) {
    return set.withContext(what);
  }
  X509* issuerCertificate = issuer ? issuer : certificate.get();
  if (core::Status added =
          addExtensions(certificate.get(), issuerCertificate, profile, subject, what);
      !added) {
    return added;
  }
  if (X509_sign(certificate.get(), signingKey, EVP_sha256()) <= 0) {
    return core::Status::internal(openSslError(what, "X509_sign"));
  }
  return certificate;
}

core::Status checkValidity(std::chrono::seconds validity) {
  if (validity.count() <= 0) return core::Status::invalidArgument("the validity must be positive");
  return core::Status::ok();
}

// A PEM certificate for `subject` signed by the CA: valid from `now` less the
// clock skew allowance for `validity`, but never past the CA itself, whose
// end would cut the certificate's life short without its notAfter saying so.
core::Result<std::string> issueSigned(const Certificate& ca, const PrivateKey& caKey,
                                      const Subject& subject, Profile profile, core::WallTime now,
                                      std::chrono::seconds validity, const std::string& what) {
  if (now < ca.notBefore()) {
    return core::Status::failedPrecondition(what + ": the CA is valid only from " +
                                            formatTime(ca.notBefore()) + ", it is " +
                                            formatTime(now));
  }
  if (now >= ca.notAfter()) {
    return core::Status::failedPrecondition(what + ": the CA expired at " +
                                            formatTime(ca.notAfter()));
  }
  auto certificate =
      issue(ca.get(), caKey.get(), subject, profile,
            {now - kClockSkewAllowance, std::min(now + validity, ca.notAfter())}, what);
  if (!certificate) return certificate.status();
  return Certificate(std::move(certificate).value()).toPem();
}

}  // namespace

Authority::Authority(Certificate certificate, PrivateKey key)
    : certificate_(std::move(certificate)), key_(std::move(key)) {}

core::Result<Authority> Authority::create(std::string_view commonName, core::WallTime now,
                                          std::chrono::seconds validity) {
  const std::string what = "create CA \"" + std::string(commonName) + "\"";
  if (core::Status valid = checkValidity(validity); !valid) return valid.withContext(what);
  auto key = PrivateKey::generate();
  if (!key) return key.status().withContext(what);
  auto certificate =
      issue(nullptr, key->get(), Subject{.key = key->get(), .commonName = commonName}, Profile::kCa,
            {now - kClockSkewAllowance, now + validity}, what);
  if (!certificate) return certificate.status();
  return Authority(Certificate(std::move(certificate).value()), std::move(key).value());
}

core::Result<Authority> Authority::load(std::string_view certificatePem, std::string_view keyPem) {
  const std::string what = "load CA";
  auto certificate = Certificate::fromPem(certificatePem);
  if (!certificate) return certificate.status().withContext(what);
  auto key = PrivateKey::fromPem(keyPem);
  if (!key) return key.status().withContext(what);
  if (!certificate->isCa()) {
    return core::Status::invalidArgument(what + ": certificate \"" + certificate->commonName() +
                                         "\" is not a CA (it needs basicConstraints CA:TRUE and "
                                         "keyUsage keyCertSign)");
  }
  if (!certificate->matchesKey(*key)) {
    return core::Status::invalidArgument(what + ": the key is not the key of certificate \"" +
                                         certificate->commonName() + "\"");
  }
  return Authority(std::move(certificate).value(), std::move(key).value());
}

core::Result<std::string> Authority::signNodeCertificate(std::string_view requestPem,
                                                         std::string_view expectedCommonName,
                                                         core::WallTime now,
                                                         std::chrono::seconds validity) const {
  const std::string what = "sign certificate for node \"" + std::string(expectedCommonName) + "\"";
  if (!isDnsName(expectedCommonName)) {
    return core::Status::invalidArgument(what + ": the node's name is not a valid DNS name");
  }
  if (core::Status valid = checkValidity(validity); !valid) return valid.withContext(what);
  auto request = CertificateRequest::fromPem(requestPem);
  if (!request) return request.status().withContext(what);
  if (request->commonName() != expectedCommonName) {
    return core::Status::invalidArgument(what + ": the request names \"" + request->commonName() +
                                         "\", not \"" + std::string(expectedCommonName) + "\"");
  }
  const std::vector<std::string> names{std::string(expectedCommonName)};
  return issueSigned(
      certificate_, key_,
      Subject{.key = request->publicKey(), .commonName = expectedCommonName, .altNames = &names},
      Profile::kNode, now, validity, what);
}

core::Result<std::string> Authority::issueServerCertificate(const PrivateKey& key,
                                                            const std::vector<std::string>& names,
                                                            core::WallTime now,
                                                            std::chrono::seconds validity) const {
  std::string what = "issue server certificate";
  if (!names.empty()) what += " for \"" + names.front() + "\"";
  if (core::Status valid = checkNames(names); !valid) return valid.withContext(what);
  if (core::Status valid = checkValidity(validity); !valid) return valid.withContext(what);
  return issueSigned(certificate_, key_,
                     Subject{.key = key.get(), .commonName = names.front(), .altNames = &names},
                     Profile::kServer, now, validity, what);
}

}  // namespace nodewarden::pki
