// SPDX-License-Identifier: Apache-2.0
// Fuzzes registry::parse_manifest. Input: a manifest body, as pushed. It is
// parsed without a Content-Type, with one picked by the body's length (so the
// corpus stays plain JSON), and again without: what is accepted must be
// well-formed, and parsing must not depend on what the parser saw before.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hh"
#include "registry/manifest.hh"
#include "storage/digest.hh"

namespace {

namespace media = rp::registry::media;
using rp::registry::Descriptor;
using rp::registry::ParsedManifest;
using rp::storage::Digest;

constexpr std::string_view content_types[] = {
    media::oci_manifest,
    media::oci_index,
    media::docker_manifest,
    media::docker_list,
    media::docker_v1,
    media::docker_v1_signed,
    "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
    "application/json",
    "",
};

void check_digest(const Digest& d) {
    auto again = Digest::parse(d.str());
    RP_FUZZ_CHECK(again && again->str() == d.str(), "a descriptor digest re-parses");
}

bool same(const Descriptor& a, const Descriptor& b) {
    return a.media_type == b.media_type && a.digest == b.digest && a.size == b.size &&
           a.has_urls == b.has_urls;
}

bool same(const ParsedManifest& a, const ParsedManifest& b) {
    const auto& x = a.info;
    const auto& y = b.info;
    bool info = x.media_type == y.media_type && x.artifact_type == y.artifact_type &&
                x.size == y.size && x.subject == y.subject && x.blobs == y.blobs &&
                x.children == y.children && x.annotations_json == y.annotations_json;
    bool shape = a.is_index == b.is_index && a.schema1 == b.schema1 &&
                 a.blobs.size() == b.blobs.size() && a.children.size() == b.children.size();
    if (!info || !shape) {
        return false;
    }
    for (std::size_t i = 0; i < a.blobs.size(); ++i) {
        if (!same(a.blobs[i], b.blobs[i])) {
            return false;
        }
    }
    for (std::size_t i = 0; i < a.children.size(); ++i) {
        if (!same(a.children[i], b.children[i])) {
            return false;
        }
    }
    return true;
}

void check_annotations(const std::string& json) {
    if (json.empty()) {
        return;
    }
    // A parser of our own: the manifest code keeps one per thread.
    static simdjson::dom::parser parser;
    simdjson::dom::element e;
    auto err = parser.parse(json).get(e);
    RP_FUZZ_CHECK(err == simdjson::SUCCESS, "annotations_json is valid JSON");
    RP_FUZZ_CHECK(e.is_object(), "annotations_json is an object");
    RP_FUZZ_CHECK(simdjson::minify(e) == json, "annotations_json is already minified");
}

void check_accepted(const ParsedManifest& p, std::string_view body) {
    const auto& info = p.info;
    RP_FUZZ_CHECK(!info.media_type.empty(), "an accepted manifest has a media type");
    RP_FUZZ_CHECK(rp::registry::is_manifest_media_type(info.media_type),
                  "the media type is one we serve");
    RP_FUZZ_CHECK(info.size == body.size(), "the size is the body's");
    RP_FUZZ_CHECK(info.blobs.size() == p.blobs.size(), "info.blobs mirrors the descriptors");
    RP_FUZZ_CHECK(info.children.size() == p.children.size(), "info.children mirrors them");
    for (std::size_t i = 0; i < p.blobs.size(); ++i) {
        check_digest(p.blobs[i].digest);
        RP_FUZZ_CHECK(info.blobs[i] == p.blobs[i].digest, "info.blobs in descriptor order");
    }
    for (std::size_t i = 0; i < p.children.size(); ++i) {
        check_digest(p.children[i].digest);
        RP_FUZZ_CHECK(info.children[i] == p.children[i].digest, "info.children in order");
    }
    if (info.subject) {
        check_digest(*info.subject);
    }
    if (p.schema1) {
        RP_FUZZ_CHECK(!p.is_index, "schema 1 is never an index");
        RP_FUZZ_CHECK(p.blobs.empty() && p.children.empty(), "schema 1 keeps no references");
        RP_FUZZ_CHECK(info.media_type == media::docker_v1 ||
                          info.media_type == media::docker_v1_signed,
                      "schema 1 is served as a schema 1 type");
    } else if (p.is_index) {
        RP_FUZZ_CHECK(p.blobs.empty(), "an index has no blobs");
        RP_FUZZ_CHECK(info.media_type == media::oci_index || info.media_type == media::docker_list,
                      "an index has an index media type");
    } else {
        RP_FUZZ_CHECK(!p.blobs.empty(), "an image manifest has at least its config");
        RP_FUZZ_CHECK(p.children.empty(), "an image manifest has no children");
    }
    check_annotations(info.annotations_json);
}

rp::util::Result<ParsedManifest> parse_checked(std::string_view body, std::string_view ct) {
    auto r = rp::registry::parse_manifest(body, ct);
    if (r) {
        check_accepted(*r, body);
    } else {
        RP_FUZZ_CHECK(!r.error().detail.empty(), "a refusal tells the client why");
    }
    return r;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view body(reinterpret_cast<const char*>(data), size);
    std::string_view ct = content_types[size % std::size(content_types)];
    auto first = parse_checked(body, "");
    auto typed = parse_checked(body, ct);
    auto again = parse_checked(body, "");
    RP_FUZZ_CHECK(first.has_value() == again.has_value(), "the same bytes, the same verdict");
    if (first) {
        RP_FUZZ_CHECK(same(*first, *again), "the same bytes, the same manifest");
    } else {
        RP_FUZZ_CHECK(first.error().kind == again.error().kind &&
                          first.error().detail == again.error().detail,
                      "the same bytes, the same error");
    }
    std::string_view bare = ct.substr(0, ct.find(';'));
    if (typed && rp::registry::is_manifest_media_type(bare)) {
        RP_FUZZ_CHECK(typed->info.media_type == bare || typed->schema1,
                      "a manifest Content-Type is the media type it is served as");
    }
    return 0;
}
