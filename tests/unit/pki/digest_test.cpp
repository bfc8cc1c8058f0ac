#include "agent/pki/digest.h"

#include <gtest/gtest.h>

namespace nodewarden::pki {
namespace {

TEST(DigestTest, HmacSha256MatchesRfc4231TestCase2) {
  EXPECT_EQ(hmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(DigestTest, HmacSha256MatchesRfc4231TestCase6WithAKeyLongerThanABlock) {
  EXPECT_EQ(hmacSha256Hex(std::string(131, '\xaa'),
                          "Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(DigestTest, HmacSha256TakesAnEmptyKey) {
  // python3 -c 'import hmac; print(hmac.new(b"", b"data", "sha256").hexdigest())'
  EXPECT_EQ(hmacSha256Hex("", "data"),
            "e528c4d99e6177f5841f712a143b90843299a4aa181a06501422d9ca862bd2a5");
}

TEST(DigestTest, Sha256HexIsLowercaseHex) {
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(DigestTest, EqualConstantTimeComparesContentAndLength) {
  EXPECT_TRUE(equalConstantTime("abc123", "abc123"));
  EXPECT_TRUE(equalConstantTime("", ""));
  EXPECT_FALSE(equalConstantTime("abc123", "abc124"));
  EXPECT_FALSE(equalConstantTime("abc123", "abc12"));
  EXPECT_FALSE(equalConstantTime("abc", std::string_view("abc\0", 4)));
  EXPECT_FALSE(equalConstantTime("", "a"));
}

}  // namespace
}  // namespace nodewarden::pki
