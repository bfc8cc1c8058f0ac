#include "agent/core/base64.h"

#include <gtest/gtest.h>

namespace nodewarden::core {
namespace {

TEST(Base64Test, DecodesWithAndWithoutPaddingAndAcrossLines) {
  EXPECT_EQ(*decodeBase64("aGVsbG8="), "hello");
  EXPECT_EQ(*decodeBase64("aGVsbG8"), "hello");
  EXPECT_EQ(*decodeBase64("aGVs\nbG8=\n"), "hello");
  EXPECT_EQ(*decodeBase64(""), "");
  const std::string binary("\x00\xff\x10", 3);
  EXPECT_EQ(*decodeBase64("AP8Q"), binary);
}

TEST(Base64Test, RejectsInvalidInput) {
  EXPECT_FALSE(decodeBase64("aGV*bG8=").isOk());  // not in the alphabet
  EXPECT_FALSE(decodeBase64("a").isOk());         // 6 bits cannot make a byte
  EXPECT_FALSE(decodeBase64("aG=Vs").isOk());     // data after padding
  EXPECT_FALSE(decodeBase64("aGVsbG8===").isOk());
}

}  // namespace
}  // namespace nodewarden::core
