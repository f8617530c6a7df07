// SPDX-License-Identifier: Apache-2.0
#include "blobs.hh"

#include <openssl/evp.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "util/assert.hh"

namespace rp::bench {

std::uint64_t run_seed() {
    auto t = std::chrono::system_clock::now().time_since_epoch().count();
    return static_cast<std::uint64_t>(t) ^ (static_cast<std::uint64_t>(::getpid()) << 32);
}

void fill_random(char* p, std::size_t n, std::uint64_t seed) {
    // splitmix64: fast, and good enough that no compressor or dedup helps.
    std::uint64_t x = seed;
    auto next = [&x] {
        std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    };
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t v = next();
        std::memcpy(p + i, &v, 8);
    }
    std::uint64_t v = next();
    std::memcpy(p + i, &v, n - i);
}

Sha256 sha256_of(std::string_view data) {
    Sha256 out{};
    unsigned int len = 0;
    RP_ASSERT(EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) == 1);
    return out;
}

std::string digest_string(const Sha256& d) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string s = "sha256:";
    for (unsigned char c : d) {
        s.push_back(hex[c >> 4]);
        s.push_back(hex[c & 15]);
    }
    return s;
}

bool parse_sha256(std::string_view digest, Sha256& out) {
    static constexpr std::string_view prefix = "sha256:";
    if (digest.size() != prefix.size() + 64 || digest.substr(0, prefix.size()) != prefix) {
        return false;
    }
    auto nibble = [](char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    for (std::size_t i = 0; i < 32; ++i) {
        int hi = nibble(digest[prefix.size() + 2 * i]);
        int lo = nibble(digest[prefix.size() + 2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = static_cast<unsigned char>(hi << 4 | lo);
    }
    return true;
}

BlobSet::BlobSet(std::size_t count, std::uint64_t size, std::uint64_t seed) : size_(size) {
    std::size_t pool = size + stride_bytes * (count > 0 ? count - 1 : 0);
    pool_ = std::make_unique<char[]>(pool + 8);
    fill_random(pool_.get(), pool, seed);
    for (std::size_t i = 0; i < count; ++i) {
        raw_.push_back(sha256_of(data(i)));
        digests_.push_back(digest_string(raw_.back()));
    }
}

std::string_view BlobSet::data(std::size_t i) const {
    return {pool_.get() + i * stride_bytes, static_cast<std::size_t>(size_)};
}

namespace {

void descriptor(std::string& out, const char* media_type, const Blob& b) {
    out += "{\"mediaType\":\"";
    out += media_type;
    out += "\",\"digest\":\"" + b.digest + "\",\"size\":" + std::to_string(b.data.size()) + "}";
}

Blob blob_of(std::string_view data) {
    Blob b;
    b.data = data;
    b.raw = sha256_of(data);
    b.digest = digest_string(b.raw);
    return b;
}

} // namespace

std::unique_ptr<Image> make_image(const BlobSet& layers, std::size_t first, std::size_t n,
                                  std::string_view nonce) {
    auto img = std::make_unique<Image>();
    std::string diff_ids;
    for (std::size_t i = first; i < first + n; ++i) {
        img->layers.push_back(Blob{layers.data(i), layers.digest(i), layers.raw_digest(i)});
        diff_ids += (diff_ids.empty() ? "\"" : ",\"") + layers.digest(i) + "\"";
    }
    img->config = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Labels\":"
                  "{\"ringport-bench\":\"" +
                  std::string(nonce) + "\"}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[" +
                  diff_ids + "]}}";
    img->config_blob = blob_of(img->config);
    std::string& m = img->manifest;
    m = "{\"schemaVersion\":2,\"mediaType\":\"";
    m += oci_manifest_type;
    m += "\",\"config\":";
    descriptor(m, "application/vnd.oci.image.config.v1+json", img->config_blob);
    m += ",\"layers\":[";
    for (std::size_t i = 0; i < img->layers.size(); ++i) {
        m += i == 0 ? "" : ",";
        descriptor(m, "application/vnd.oci.image.layer.v1.tar+gzip", img->layers[i]);
    }
    m += "]}";
    img->raw = sha256_of(m);
    img->digest = digest_string(img->raw);
    return img;
}

} // namespace rp::bench
