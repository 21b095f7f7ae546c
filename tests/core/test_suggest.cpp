// Tests of the "did you mean" helper: edit distances and the choice of the closest name.
#include <gtest/gtest.h>

#include <string_view>
#include <vector>

#include "gradscope/core/suggest.hpp"

namespace gradscope {
namespace {

TEST(Suggest, EditDistanceClassicExamples) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3U);
  EXPECT_EQ(edit_distance("flaw", "lawn"), 2U);
  EXPECT_EQ(edit_distance("", ""), 0U);
  EXPECT_EQ(edit_distance("", "relu"), 4U);
  EXPECT_EQ(edit_distance("relu", ""), 4U);
  EXPECT_EQ(edit_distance("tanh", "tanh"), 0U);
}

TEST(Suggest, EditDistanceIsSymmetric) {
  const std::vector<std::string_view> words = {"sigmoid", "sigmod", "tahn", "gelu", "selu", ""};
  for (std::string_view a : words) {
    for (std::string_view b : words) EXPECT_EQ(edit_distance(a, b), edit_distance(b, a));
  }
}

TEST(Suggest, AdjacentTranspositionCostsOne) {
  EXPECT_EQ(edit_distance("sigmodi", "sigmoid"), 1U);
  EXPECT_EQ(edit_distance("tahn", "tanh"), 1U);
  EXPECT_EQ(edit_distance("ab", "ba"), 1U);
  // Optimal string alignment edits a transposed pair no further: "ca" -> "abc" is 3, where full
  // Damerau-Levenshtein gives 2.
  EXPECT_EQ(edit_distance("ca", "abc"), 3U);
}

const std::vector<std::string_view> kActivations = {
    "linear", "relu", "leaky_relu", "elu",     "selu", "gelu",      "gelu_tanh",
    "silu",   "mish", "softplus",   "sigmoid", "tanh", "hard_tanh", "softmax"};

TEST(Suggest, ClosestNameFindsTheIntendedSpelling) {
  EXPECT_EQ(closest_name("sigmod", kActivations), "sigmoid");
  EXPECT_EQ(closest_name("sigmodi", kActivations), "sigmoid");
  EXPECT_EQ(closest_name("tahn", kActivations), "tanh");
  EXPECT_EQ(closest_name("leaky-relu", kActivations), "leaky_relu");
  EXPECT_EQ(closest_name("softmx", kActivations), "softmax");
}

TEST(Suggest, ClosestNameRejectsWordsFarFromEveryCandidate) {
  EXPECT_FALSE(closest_name("zzzzzz", kActivations).has_value());
  EXPECT_FALSE(closest_name("convolution", kActivations).has_value());
  EXPECT_FALSE(closest_name("x", {}).has_value());
}

TEST(Suggest, ThresholdIsTwoOrAThirdOfTheWordLength) {
  // Short word: up to 2 edits.
  EXPECT_EQ(closest_name("ab", {"abcd"}), "abcd");
  EXPECT_FALSE(closest_name("ab", {"abcde"}).has_value());
  // Nine letters: up to 3 edits.
  EXPECT_EQ(closest_name("abcdefghi", {"abcdefxyz"}), "abcdefxyz");
  EXPECT_FALSE(closest_name("abcdefghi", {"abcdewxyz"}).has_value());
}

TEST(Suggest, TiesGoToTheEarlierCandidate) {
  // "selu" and "gelu" are both one substitution from "xelu".
  EXPECT_EQ(closest_name("xelu", {"selu", "gelu"}), "selu");
  EXPECT_EQ(closest_name("xelu", {"gelu", "selu"}), "gelu");
  // A closer later candidate still wins.
  EXPECT_EQ(closest_name("gelu", {"selu", "gelu"}), "gelu");
}

}  // namespace
}  // namespace gradscope
