// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "storage/digest.hh"
#include "storage/index.hh"
#include "util/result.hh"

namespace rp::registry {

namespace media {
constexpr std::string_view oci_manifest = "application/vnd.oci.image.manifest.v1+json";
constexpr std::string_view oci_index = "application/vnd.oci.image.index.v1+json";
constexpr std::string_view docker_manifest = "application/vnd.docker.distribution.manifest.v2+json";
constexpr std::string_view docker_list =
    "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr std::string_view docker_v1 = "application/vnd.docker.distribution.manifest.v1+json";
constexpr std::string_view docker_v1_signed =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
} // namespace media

struct Descriptor {
    std::string media_type;
    storage::Digest digest;
    std::uint64_t size = 0;
    bool has_urls = false; // a foreign layer: its bytes live elsewhere
    // Its urls, annotations and platform as Distribution's Descriptor
    // marshals them after its digest (",\"urls\":[…],\"annotations\":{…},
    // \"platform\":{…}": annotations by key, platform in Go's field order),
    // for events with includereferences; empty when it has none.
    std::string extra_json;
};

// A manifest checked against its schema. Pure: parse_manifest does no I/O.
struct ParsedManifest {
    storage::ManifestInfo info; // digest is filled by the caller
    bool is_index = false;
    bool schema1 = false;
    std::vector<Descriptor> blobs;    // config + layers
    std::vector<Descriptor> children; // index entries
};

// Parses and validates a manifest body (simdjson). `content_type` is the
// request's Content-Type (may be empty). Errors are Errc::invalid with a
// detail for the client, or Errc::unsupported for schema 1.
util::Result<ParsedManifest> parse_manifest(std::string_view body, std::string_view content_type);

// For the rebuild: what the index keeps, from bytes already stored. Lenient
// about the media type (it was accepted once); schema 1 is kept as stored.
util::Result<storage::ManifestInfo> parse_stored_manifest(const storage::Digest& d,
                                                          std::string body);

// What a stored manifest needs stored beside it: its config and layers
// (foreign layers, with `urls`, excepted) and an index's children. For the
// check; an error when the bytes do not parse.
util::Result<std::vector<storage::Digest>> stored_references(const storage::Digest& d,
                                                             const std::string& body);

bool is_manifest_media_type(std::string_view t) noexcept;

// One entry of an image index: its digest and platform (empty parts when
// the index names none, as for an attestation).
struct Platform {
    std::string digest, os, architecture, variant;
};
// The entries of an index's `manifests`, in order; empty when the body is
// not an index. Pure.
std::vector<Platform> index_platforms(std::string_view body);

} // namespace rp::registry
