#include "agent/pki/openssl_ptr.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

namespace nodewarden::pki {

void OpenSslFree::operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
void OpenSslFree::operator()(EVP_PKEY_CTX* context) const { EVP_PKEY_CTX_free(context); }
void OpenSslFree::operator()(X509* certificate) const { X509_free(certificate); }
void OpenSslFree::operator()(X509_REQ* request) const { X509_REQ_free(request); }
void OpenSslFree::operator()(X509_NAME* name) const { X509_NAME_free(name); }
void OpenSslFree::operator()(X509_EXTENSION* extension) const { X509_EXTENSION_free(extension); }
void OpenSslFree::operator()(X509_STORE* store) const { X509_STORE_free(store); }
void OpenSslFree::operator()(X509_STORE_CTX* context) const { X509_STORE_CTX_free(context); }
void OpenSslFree::operator()(BIO* bio) const { BIO_free_all(bio); }
void OpenSslFree::operator()(BIGNUM* number) const { BN_free(number); }
void OpenSslFree::operator()(ASN1_STRING* string) const { ASN1_STRING_free(string); }

}  // namespace nodewarden::pki
