#include "agent/pki/x509_name.h"

#include <openssl/asn1.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

#include <climits>

#include "agent/pki/openssl_error.h"

namespace nodewarden::pki {

core::Result<std::string> commonNameOf(const X509_NAME* name) {
  int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return core::Status::invalidArgument("the subject has no common name");
  if (X509_NAME_get_index_by_NID(name, NID_commonName, index) >= 0) {
    return core::Status::invalidArgument("the subject has more than one common name");
  }
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  int length = ASN1_STRING_to_UTF8(&utf8, data);
  if (length < 0) {
    return core::Status::invalidArgument(openSslError("read common name", "ASN1_STRING_to_UTF8"));
  }
  std::string commonName(reinterpret_cast<const char*>(utf8), static_cast<size_t>(length));
  OPENSSL_free(utf8);
  if (commonName.find('\0') != std::string::npos) {
    // "node-1\0.evil" must not pass for "node-1" with whoever reads it as a C string.
    return core::Status::invalidArgument("the common name holds a NUL character");
  }
  return commonName;
}

core::Result<OpenSslPtr<X509_NAME>> nameWithCommonName(std::string_view commonName) {
  if (commonName.empty()) return core::Status::invalidArgument("the common name is empty");
  if (commonName.size() > static_cast<size_t>(INT_MAX)) {
    return core::Status::invalidArgument("the common name is too long");
  }
  clearOpenSslErrors();
  OpenSslPtr<X509_NAME> name(X509_NAME_new());
  if (!name) return core::Status::internal(openSslError("make subject", "X509_NAME_new"));
  if (X509_NAME_add_entry_by_NID(name.get(), NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(commonName.data()),
                                 static_cast<int>(commonName.size()), -1, 0) != 1) {
    return core::Status::invalidArgument(openSslError(
        "common name \"" + std::string(commonName) + "\"", "X509_NAME_add_entry_by_NID"));
  }
  return name;
}

}  // namespace nodewarden::pki
