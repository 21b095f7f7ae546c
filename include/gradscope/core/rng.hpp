// Portable, counter-based random numbers: the same values on every platform and for any thread
// count, because value i of a stream is a pure function of (stream key, i).
#pragma once

#include <cstdint>

namespace gradscope {

// What a stream is for; part of its key so that streams never overlap.
enum class StreamPurpose : std::uint64_t {
  kWeights = 1,
  kBias = 2,
  kInput = 3,
  kProbe = 4,
  kTargets = 5,
  kDropout = 6,
  kProjection = 7,
  kApjnTangent = 8,  // the partial Jacobian norm's random tangents (apjn.hpp)
};

// SplitMix64's finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The key of the stream for (seed, layer, purpose). Layer l's weights depend only on these and
// the layer's shape, so changing later layers never changes earlier ones. Not
// mix64(seed) ^ mix64(word): that is symmetric in seed and word and 0 when they are equal, so
// (seed 1, layer 0, weights), (seed 2, layer 0, bias) and (seed 3, layer 0, input) shared a key.
constexpr std::uint64_t stream_key(std::uint64_t seed, std::uint64_t layer, StreamPurpose purpose) {
  return mix64(mix64(seed) ^ ((layer << 8) ^ static_cast<std::uint64_t>(purpose)));
}

// Raw 64 random bits number i of the stream: SplitMix64 evaluated at counter i.
constexpr std::uint64_t random_bits(std::uint64_t key, std::uint64_t i) {
  return mix64(key + (i + 1) * 0x9e3779b97f4a7c15ULL);
}

// Uniform on [0, 1) with 53 random bits.
constexpr double uniform01(std::uint64_t key, std::uint64_t i) {
  return static_cast<double>(random_bits(key, i) >> 11) * 0x1.0p-53;
}

// Uniform on (0, 1]: safe to take the logarithm of.
constexpr double uniform01_open0(std::uint64_t key, std::uint64_t i) {
  return static_cast<double>((random_bits(key, i) >> 11) + 1) * 0x1.0p-53;
}

// Standard normals number 2j and 2j+1 of the stream: the same values as fill_normal(key, 2j, 2).
void normal_pair(std::uint64_t key, std::uint64_t j, double& z0, double& z1);

// Fills out[0..n) with standard normals number first..first+n of the stream (any first, any n:
// the values do not depend on how a stream is cut into pieces). Normal k is made by a ziggurat
// from random_bits(key, k), and in the rare case of a rejection (about 1.5%) from further draws
// of a stream private to (key, k).
void fill_normal(std::uint64_t key, std::uint64_t first, std::uint64_t n, double* out);

// Fills out[0..n) with uniforms on [low, high) number first..first+n of the stream.
void fill_uniform(std::uint64_t key, std::uint64_t first, std::uint64_t n, double low, double high,
                  double* out);

}  // namespace gradscope
