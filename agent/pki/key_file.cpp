#include "agent/pki/key_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>

#include "agent/core/atomic_file.h"
#include "agent/pki/key.h"

namespace nodewarden::pki {

namespace {

// A PEM key of any kind this module reads is a few kilobytes at most.
constexpr size_t kMaxKeyFileBytes = 64 * 1024;

std::string octal(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof(text), "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

}  // namespace

core::Status writePrivateKey(const std::string& path, const PrivateKey& key) {
  return core::writeFileAtomic(path, key.toPem(), {.mode = 0600});
}

core::Result<PrivateKey> readPrivateKey(const std::string& path) {
  // Checked before reading rather than on the same descriptor: whoever could
  // swap the file in between could as well write a key of their own there.
  struct stat st;
  if (::stat(path.c_str(), &st) < 0) return core::Status::fromErrno(errno, "stat " + path);
  if ((st.st_mode & 077) != 0) {
    return core::Status::failedPrecondition("refuse key file " + path + ": mode " +
                                            octal(st.st_mode) +
                                            " gives group or others access to it; it must be 0600");
  }
  auto pem = core::readFile(path, kMaxKeyFileBytes);
  if (!pem) return pem.status();
  auto key = PrivateKey::fromPem(*pem);
  if (!key) return key.status().withContext(path);
  return key;
}

}  // namespace nodewarden::pki
