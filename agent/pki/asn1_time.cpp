#include "agent/pki/asn1_time.h"

#include <openssl/asn1.h>

#include <ctime>

#include "agent/pki/openssl_error.h"

namespace nodewarden::pki {

core::WallTime toTimePoint(const ASN1_TIME* time) {
  struct tm fields = {};
  if (time == nullptr || ASN1_TIME_to_tm(time, &fields) != 1) return {};
  return std::chrono::system_clock::from_time_t(::timegm(&fields));
}

core::Status setAsn1Time(ASN1_TIME* field, core::WallTime time) {
  clearOpenSslErrors();
  // UTCTime up to 2049, GeneralizedTime after, as RFC 5280 asks.
  if (ASN1_TIME_set(field, std::chrono::system_clock::to_time_t(time)) == nullptr) {
    return core::Status::invalidArgument(
        openSslError("set time " + formatTime(time), "ASN1_TIME_set"));
  }
  return core::Status::ok();
}

std::string formatTime(core::WallTime time) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  struct tm fields = {};
  if (::gmtime_r(&seconds, &fields) == nullptr) return std::to_string(seconds) + "s";
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &fields);
  return text;
}

}  // namespace nodewarden::pki
