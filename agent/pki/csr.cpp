#include "agent/pki/csr.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agent/pki/key.h"
#include "agent/pki/memory_bio.h"
#include "agent/pki/openssl_error.h"
#include "agent/pki/x509_name.h"

namespace nodewarden::pki {

namespace {

// A request is a kilobyte or two; the server reads them from anyone holding
// a bootstrap token, so it bounds what it parses.
constexpr size_t kMaxRequestBytes = 16 * 1024;
constexpr int kMinRsaBits = 2048;
// Verifying with a larger RSA key costs the server time a client chooses.
constexpr int kMaxRsaBits = 8192;

int curveOf(const EVP_PKEY* key) {
  char name[64] = {};
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name),
                                     nullptr) != 1) {
    return NID_undef;
  }
  int nid = OBJ_sn2nid(name);
  return nid != NID_undef ? nid : EC_curve_nist2nid(name);
}

core::Status checkKeyAccepted(const EVP_PKEY* key) {
  static const std::string kAccepted = "use EC P-256, P-384 or RSA of 2048 to 8192 bits";
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC: {
      const int curve = curveOf(key);
      if (curve == NID_X9_62_prime256v1 || curve == NID_secp384r1) return core::Status::ok();
      const char* name = curve == NID_undef ? nullptr : OBJ_nid2sn(curve);
      return core::Status::invalidArgument("the request's key is on curve " +
                                           std::string(name ? name : "unknown") + ": " + kAccepted);
    }
    case EVP_PKEY_RSA: {
      const int bits = EVP_PKEY_get_bits(key);
      if (bits >= kMinRsaBits && bits <= kMaxRsaBits) return core::Status::ok();
      return core::Status::invalidArgument("the request's key is RSA of " + std::to_string(bits) +
                                           " bits: " + kAccepted);
    }
    default: {
      const char* type = EVP_PKEY_get0_type_name(key);
      return core::Status::invalidArgument("the request's key is of type " +
                                           std::string(type ? type : "unknown") + ": " + kAccepted);
    }
  }
}

}  // namespace

core::Result<std::string> makeCsr(const PrivateKey& key, std::string_view commonName) {
  const std::string what = "make certificate request";
  auto subject = nameWithCommonName(commonName);
  if (!subject) return subject.status().withContext(what);
  clearOpenSslErrors();
  OpenSslPtr<X509_REQ> request(X509_REQ_new());
  if (!request) return core::Status::internal(openSslError(what, "X509_REQ_new"));
  if (X509_REQ_set_version(request.get(), X509_REQ_VERSION_1) != 1 ||
      X509_REQ_set_subject_name(request.get(), subject->get()) != 1 ||
      X509_REQ_set_pubkey(request.get(), key.get()) != 1) {
    return core::Status::internal(openSslError(what, "X509_REQ_set"));
  }
  if (X509_REQ_sign(request.get(), key.get(), EVP_sha256()) <= 0) {
    return core::Status::internal(openSslError(what, "X509_REQ_sign"));
  }
  OpenSslPtr<BIO> bio = writingBio();
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), request.get()) != 1) {
    return core::Status::internal(openSslError(what, "PEM_write_bio_X509_REQ"));
  }
  return contentsOf(bio.get());
}

CertificateRequest::CertificateRequest(OpenSslPtr<X509_REQ> request, std::string commonName)
    : request_(std::move(request)), commonName_(std::move(commonName)) {}

core::Result<CertificateRequest> CertificateRequest::fromPem(std::string_view pem) {
  const std::string what = "read certificate request";
  if (pem.size() > kMaxRequestBytes) {
    return core::Status::invalidArgument(what + ": larger than " +
                                         std::to_string(kMaxRequestBytes) + " bytes");
  }
  clearOpenSslErrors();
  auto bio = readingBio(pem, what);
  if (!bio) return bio.status();
  OpenSslPtr<X509_REQ> request(PEM_read_bio_X509_REQ(bio->get(), nullptr, nullptr, nullptr));
  if (!request) {
    return core::Status::invalidArgument(openSslError(what, "PEM_read_bio_X509_REQ"));
  }
  EVP_PKEY* key = X509_REQ_get0_pubkey(request.get());
  if (key == nullptr) {
    return core::Status::invalidArgument(openSslError(what, "X509_REQ_get0_pubkey"));
  }
  // The key is checked first: verifying with a key refused anyway is work for nothing.
  if (core::Status accepted = checkKeyAccepted(key); !accepted) {
    return accepted.withContext(what);
  }
  if (X509_REQ_verify(request.get(), key) != 1) {
    return core::Status::invalidArgument(
        openSslError(what + ": its signature does not verify", "X509_REQ_verify"));
  }
  auto commonName = commonNameOf(X509_REQ_get_subject_name(request.get()));
  if (!commonName) return commonName.status().withContext(what);
  return CertificateRequest(std::move(request), std::move(commonName).value());
}

std::string CertificateRequest::publicKeyPin() const { return pki::publicKeyPin(publicKey()); }

EVP_PKEY* CertificateRequest::publicKey() const { return X509_REQ_get0_pubkey(request_.get()); }

core::Result<CsrInfo> readCsr(std::string_view pem) {
  auto request = CertificateRequest::fromPem(pem);
  if (!request) return request.status();
  return CsrInfo{request->commonName(), request->publicKeyPin()};
}

}  // namespace nodewarden::pki
