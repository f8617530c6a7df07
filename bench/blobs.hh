// SPDX-License-Identifier: Apache-2.0
#pragma once

// Test data, generated before the timed phase: pseudo-random blobs (a new
// seed per run, so a rerun against the same server pushes new digests and
// deduplication never helps) and OCI images made of them.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rp::bench {

using Sha256 = std::array<unsigned char, 32>;

std::uint64_t run_seed();
void fill_random(char* p, std::size_t n, std::uint64_t seed);
Sha256 sha256_of(std::string_view data);
std::string digest_string(const Sha256& d); // "sha256:<hex>"
// "sha256:<64 hex>" → raw bytes.
bool parse_sha256(std::string_view digest, Sha256& out);

// `count` distinct blobs of `size` bytes: windows 64 bytes apart over one
// random pool, so memory is size + 64 × count, not size × count.
class BlobSet {
  public:
    BlobSet() = default;
    BlobSet(std::size_t count, std::uint64_t size, std::uint64_t seed);

    std::size_t count() const { return digests_.size(); }
    std::uint64_t size() const { return size_; }
    std::string_view data(std::size_t i) const;
    const std::string& digest(std::size_t i) const { return digests_[i]; }
    const Sha256& raw_digest(std::size_t i) const { return raw_[i]; }

    static constexpr std::size_t stride_bytes = 64;

  private:
    std::unique_ptr<char[]> pool_;
    std::uint64_t size_ = 0;
    std::vector<std::string> digests_;
    std::vector<Sha256> raw_;
};

inline constexpr const char* oci_manifest_type = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* manifest_accept =
    "Accept: application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json\r\n";

struct Blob {
    std::string_view data; // borrowed from a BlobSet or an Image
    std::string digest;
    Sha256 raw{};
};

// An OCI image manifest with its config and layers.
struct Image {
    std::string config;
    Blob config_blob;
    std::vector<Blob> layers;
    std::string manifest;
    std::string digest;
    Sha256 raw{};
};

// Builds an image whose layers are blobs [first, first + n) of `layers`;
// `nonce` makes the config (and so the manifest) unique.
std::unique_ptr<Image> make_image(const BlobSet& layers, std::size_t first, std::size_t n,
                                  std::string_view nonce);

} // namespace rp::bench
