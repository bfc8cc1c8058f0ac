#include "agent/pki/memory_bio.h"

#include <openssl/bio.h>

#include <climits>

#include "agent/pki/openssl_error.h"

namespace nodewarden::pki {

core::Result<OpenSslPtr<BIO>> readingBio(std::string_view data, std::string_view what) {
  if (data.size() > static_cast<size_t>(INT_MAX)) {
    return core::Status::invalidArgument(std::string(what) + ": input too large");
  }
  OpenSslPtr<BIO> bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (!bio) return core::Status::internal(openSslError(what, "BIO_new_mem_buf"));
  return bio;
}

OpenSslPtr<BIO> writingBio() { return OpenSslPtr<BIO>(BIO_new(BIO_s_mem())); }

std::string contentsOf(BIO* bio) {
  if (bio == nullptr) return {};
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  if (size <= 0 || data == nullptr) return {};
  return std::string(data, static_cast<size_t>(size));
}

}  // namespace nodewarden::pki
