#include "agent/pki/random_token.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace nodewarden::pki {
namespace {

TEST(RandomTokenTest, HasTheLengthAndOnlyCharactersOfTheAlphabet) {
  for (size_t length : {0, 1, 6, 16, 1000}) {
    auto token = randomToken(length, kTokenAlphabet);
    ASSERT_TRUE(token.isOk()) << token.status().message();
    EXPECT_EQ(token->size(), length);
    EXPECT_EQ(token->find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789"), std::string::npos)
        << *token;
  }
}

TEST(RandomTokenTest, TokensDiffer) {
  std::set<std::string> tokens;
  for (int i = 0; i < 100; ++i) tokens.insert(randomToken(16).value());
  EXPECT_EQ(tokens.size(), 100u);
}

TEST(RandomTokenTest, EveryCharacterIsEquallyLikely) {
  // With 129 characters, taking a random byte modulo 129 would draw the first
  // 127 twice as often as the last two: 256 = 129 + 127.
  std::string alphabet;
  for (int c = 0; c < 129; ++c) alphabet += static_cast<char>(c);
  constexpr size_t kPerCharacter = 2000;
  auto token = randomToken(alphabet.size() * kPerCharacter, alphabet);
  ASSERT_TRUE(token.isOk()) << token.status().message();
  std::map<char, size_t> counts;
  for (char c : *token) ++counts[c];
  ASSERT_EQ(counts.size(), alphabet.size());
  // Fair draws stay within a few standard deviations (about 45) of 2000;
  // biased ones put the last two characters near 1000.
  for (auto [c, count] : counts) {
    EXPECT_GT(count, kPerCharacter - 400) << "character " << int(c);
    EXPECT_LT(count, kPerCharacter + 400) << "character " << int(c);
  }
}

TEST(RandomTokenTest, RefusesAnEmptyOrOversizedAlphabet) {
  auto empty = randomToken(8, "");
  ASSERT_FALSE(empty.isOk());
  EXPECT_EQ(empty.status().code(), core::Status::Code::kInvalidArgument);
  EXPECT_FALSE(randomToken(8, std::string(257, 'a')).isOk());
  auto single = randomToken(4, "x");
  ASSERT_TRUE(single.isOk());
  EXPECT_EQ(*single, "xxxx");
}

}  // namespace
}  // namespace nodewarden::pki
