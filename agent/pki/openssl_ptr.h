#pragma once

#include <openssl/types.h>

#include <memory>

// Declared by <openssl/x509.h>, which is too large to include here.
typedef struct X509_req_st X509_REQ;
typedef struct X509_extension_st X509_EXTENSION;

namespace nodewarden::pki {

// Frees each kind of OpenSSL object this module holds with its own free function.
struct OpenSslFree {
  void operator()(EVP_PKEY* key) const;
  void operator()(EVP_PKEY_CTX* context) const;
  void operator()(X509* certificate) const;
  void operator()(X509_REQ* request) const;
  void operator()(X509_NAME* name) const;
  void operator()(X509_EXTENSION* extension) const;
  void operator()(X509_STORE* store) const;
  void operator()(X509_STORE_CTX* context) const;
  void operator()(BIO* bio) const;
  void operator()(BIGNUM* number) const;
  // ASN1_INTEGER, ASN1_OCTET_STRING, ASN1_IA5STRING... are all ASN1_STRING.
  void operator()(ASN1_STRING* string) const;
};

// An OpenSSL object owned here.
template <typename T>
using OpenSslPtr = std::unique_ptr<T, OpenSslFree>;

}  // namespace nodewarden::pki
