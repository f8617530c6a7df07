// SPDX-License-Identifier: Apache-2.0
#include "registry/manifest.hh"

#include <simdjson.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "util/strings.hh"

namespace rp::registry {

using storage::Digest;
using util::Errc;
using util::Error;
using util::Result;
namespace dom = simdjson::dom;

namespace {

Error invalid(std::string detail) { return Error::of(Errc::invalid, std::move(detail)); }

dom::parser& thread_parser() {
    // One parser per thread (shard or rebuild worker); it keeps its buffers.
    thread_local dom::parser p;
    return p;
}

std::string_view strip_params(std::string_view t) noexcept {
    auto semi = t.find(';');
    return util::trim(t.substr(0, semi));
}

// `"key":"value"` (escaped), after a comma unless `first`.
void json_pair(std::string& out, bool& first, std::string_view k, std::string_view v) {
    out += first ? "\"" : ",\"";
    first = false;
    util::json_escape(out, k);
    out += "\":\"";
    util::json_escape(out, v);
    out += '"';
}

// A JSON array of the strings in `a` (others skipped), after `key`.
void string_array(std::string& out, std::string_view key, dom::array a) {
    out += ",\"";
    out += key;
    out += "\":[";
    bool first = true;
    for (dom::element x : a) {
        std::string_view s;
        if (x.get_string().get(s) == simdjson::SUCCESS) {
            out += first ? "\"" : ",\"";
            first = false;
            util::json_escape(out, s);
            out += '"';
        }
    }
    out += ']';
}

// What Distribution's Descriptor adds after its digest when marshalled:
// urls, annotations (Go sorts a map's keys) and platform (in the order of
// v1.Platform's fields; architecture and os always, the rest when set).
std::string descriptor_extra(dom::object o) {
    std::string out;
    dom::array urls;
    if (o["urls"].get_array().get(urls) == simdjson::SUCCESS && urls.size() > 0) {
        string_array(out, "urls", urls);
    }
    dom::object ann;
    if (o["annotations"].get_object().get(ann) == simdjson::SUCCESS && ann.size() > 0) {
        std::vector<std::pair<std::string_view, std::string_view>> kv;
        for (dom::key_value_pair p : ann) {
            std::string_view v;
            if (p.value.get_string().get(v) == simdjson::SUCCESS) {
                kv.emplace_back(p.key, v);
            }
        }
        std::sort(kv.begin(), kv.end());
        out += ",\"annotations\":{";
        bool first = true;
        for (const auto& [k, v] : kv) {
            json_pair(out, first, k, v);
        }
        out += '}';
    }
    dom::object pl;
    if (o["platform"].get_object().get(pl) == simdjson::SUCCESS) {
        std::string_view arch, os, os_version, variant;
        (void)pl["architecture"].get_string().get(arch);
        (void)pl["os"].get_string().get(os);
        out += ",\"platform\":{";
        bool first = true;
        json_pair(out, first, "architecture", arch);
        json_pair(out, first, "os", os);
        if (pl["os.version"].get_string().get(os_version) == simdjson::SUCCESS &&
            !os_version.empty()) {
            json_pair(out, first, "os.version", os_version);
        }
        dom::array features;
        if (pl["os.features"].get_array().get(features) == simdjson::SUCCESS &&
            features.size() > 0) {
            string_array(out, "os.features", features);
        }
        if (pl["variant"].get_string().get(variant) == simdjson::SUCCESS && !variant.empty()) {
            json_pair(out, first, "variant", variant);
        }
        out += '}';
    }
    return out;
}

Result<Descriptor> parse_descriptor(dom::element e, const char* what) {
    dom::object o;
    if (e.get_object().get(o) != simdjson::SUCCESS) {
        return invalid(std::string(what) + " is not an object");
    }
    Descriptor d;
    std::string_view mt, dg;
    if (o["mediaType"].get_string().get(mt) != simdjson::SUCCESS) {
        return invalid(std::string(what) + " has no mediaType");
    }
    if (o["digest"].get_string().get(dg) != simdjson::SUCCESS) {
        return invalid(std::string(what) + " has no digest");
    }
    auto digest = Digest::parse(dg);
    if (!digest) {
        return invalid(std::string(what) + " has an invalid digest");
    }
    std::int64_t size = 0;
    if (o["size"].get_int64().get(size) != simdjson::SUCCESS || size < 0) {
        return invalid(std::string(what) + " has no valid size");
    }
    dom::array urls;
    d.has_urls = o["urls"].get_array().get(urls) == simdjson::SUCCESS && urls.size() > 0;
    d.extra_json = descriptor_extra(o);
    d.media_type = std::string(mt);
    d.digest = std::move(*digest);
    d.size = static_cast<std::uint64_t>(size);
    return d;
}

Result<std::vector<Descriptor>> parse_descriptors(dom::object o, const char* key, bool required) {
    std::vector<Descriptor> out;
    dom::element e;
    if (o[key].get(e) != simdjson::SUCCESS) {
        if (required) {
            return invalid(std::string("manifest has no ") + key);
        }
        return out;
    }
    dom::array a;
    if (e.get_array().get(a) != simdjson::SUCCESS) {
        return invalid(std::string(key) + " is not an array");
    }
    for (dom::element item : a) {
        auto d = parse_descriptor(item, key);
        if (!d) {
            return std::move(d).error();
        }
        out.push_back(std::move(*d));
    }
    return out;
}

// The media type a manifest is stored and served as: its own mediaType
// field, else the request's Content-Type when that names a manifest type,
// else inferred (OCI: "manifests" means an index).
Result<std::string> media_type_of(dom::object o, std::string_view content_type) {
    std::string_view mt;
    bool has_mt = o["mediaType"].get_string().get(mt) == simdjson::SUCCESS;
    if (!has_mt && o["mediaType"].error() != simdjson::NO_SUCH_FIELD) {
        return invalid("mediaType is not a string");
    }
    std::string_view ct = strip_params(content_type);
    if (has_mt) {
        if (is_manifest_media_type(ct) && ct != mt) {
            return invalid("mediaType does not match the Content-Type");
        }
        return std::string(mt);
    }
    if (is_manifest_media_type(ct)) {
        return std::string(ct);
    }
    dom::element m;
    return std::string(o["manifests"].get(m) == simdjson::SUCCESS ? media::oci_index
                                                                  : media::oci_manifest);
}

Result<void> fill_common(dom::object o, ParsedManifest& p) {
    storage::ManifestInfo& info = p.info;
    dom::element subj;
    if (o["subject"].get(subj) == simdjson::SUCCESS) {
        auto d = parse_descriptor(subj, "subject");
        if (!d) {
            return std::move(d).error();
        }
        info.subject = d->digest;
    }
    std::string_view at;
    if (o["artifactType"].get_string().get(at) == simdjson::SUCCESS) {
        info.artifact_type = std::string(at);
    } else if (o["artifactType"].error() != simdjson::NO_SUCH_FIELD) {
        return invalid("artifactType is not a string");
    }
    dom::element ann;
    if (o["annotations"].get(ann) == simdjson::SUCCESS) {
        if (!ann.is_object()) {
            return invalid("annotations is not an object");
        }
        info.annotations_json = simdjson::minify(ann);
    }
    return util::Ok{};
}

Result<ParsedManifest> parse_object(dom::object o, std::string_view content_type) {
    ParsedManifest p;
    auto mt = media_type_of(o, content_type);
    if (!mt) {
        return std::move(mt).error();
    }
    p.info.media_type = std::move(*mt);
    std::int64_t version = 0;
    if (o["schemaVersion"].get_int64().get(version) != simdjson::SUCCESS) {
        return invalid("schemaVersion is missing or not a number");
    }
    const std::string& t = p.info.media_type;
    if (version == 1 || t == media::docker_v1 || t == media::docker_v1_signed) {
        p.schema1 = true;
        if (t != media::docker_v1 && t != media::docker_v1_signed) {
            dom::element sig;
            bool signed_ = o["signatures"].get(sig) == simdjson::SUCCESS;
            p.info.media_type = std::string(signed_ ? media::docker_v1_signed : media::docker_v1);
        }
        return p;
    }
    if (version != 2) {
        return invalid("schemaVersion must be 2");
    }
    p.is_index = t == media::oci_index || t == media::docker_list;
    if (!p.is_index && t != media::oci_manifest && t != media::docker_manifest) {
        return invalid("unsupported manifest media type " + t);
    }
    if (auto c = fill_common(o, p); !c) {
        return std::move(c).error();
    }
    if (p.is_index) {
        auto ch = parse_descriptors(o, "manifests", true);
        if (!ch) {
            return std::move(ch).error();
        }
        p.children = std::move(*ch);
        return p;
    }
    dom::element cfg;
    if (o["config"].get(cfg) != simdjson::SUCCESS) {
        return invalid("manifest has no config");
    }
    auto config = parse_descriptor(cfg, "config");
    if (!config) {
        return std::move(config).error();
    }
    auto layers = parse_descriptors(o, "layers", t == media::docker_manifest);
    if (!layers) {
        return std::move(layers).error();
    }
    if (p.info.artifact_type.empty()) {
        p.info.artifact_type = config->media_type; // the spec's rule for referrers
    }
    p.blobs.push_back(std::move(*config));
    for (Descriptor& d : *layers) {
        p.blobs.push_back(std::move(d));
    }
    return p;
}

// Duplicate keys make JSON ambiguous (parsers disagree on which value wins),
// so a manifest that has them anywhere is refused.
bool has_duplicate_keys(dom::element e, int depth) {
    if (depth > 1100) {
        return true; // simdjson's depth limit stops real documents well before
    }
    dom::object o;
    if (e.get_object().get(o) == simdjson::SUCCESS) {
        std::vector<std::string_view> keys;
        for (dom::key_value_pair kv : o) {
            keys.push_back(kv.key);
            if (has_duplicate_keys(kv.value, depth + 1)) {
                return true;
            }
        }
        std::sort(keys.begin(), keys.end());
        return std::adjacent_find(keys.begin(), keys.end()) != keys.end();
    }
    dom::array a;
    if (e.get_array().get(a) == simdjson::SUCCESS) {
        for (dom::element item : a) {
            if (has_duplicate_keys(item, depth + 1)) {
                return true;
            }
        }
    }
    return false;
}

void fill_refs(ParsedManifest& p) {
    for (const Descriptor& d : p.blobs) {
        p.info.blobs.push_back(d.digest);
    }
    for (const Descriptor& d : p.children) {
        p.info.children.push_back(d.digest);
    }
}

} // namespace

bool is_manifest_media_type(std::string_view t) noexcept {
    return t == media::oci_manifest || t == media::oci_index || t == media::docker_manifest ||
           t == media::docker_list || t == media::docker_v1 || t == media::docker_v1_signed;
}

Result<ParsedManifest> parse_manifest(std::string_view body, std::string_view content_type) {
    dom::element doc;
    auto err = thread_parser().parse(body.data(), body.size(), true).get(doc);
    if (err != simdjson::SUCCESS) {
        return invalid(std::string("manifest is not valid JSON: ") + simdjson::error_message(err));
    }
    dom::object o;
    if (doc.get_object().get(o) != simdjson::SUCCESS) {
        return invalid("manifest is not a JSON object");
    }
    if (has_duplicate_keys(doc, 0)) {
        return invalid("manifest has duplicate keys");
    }
    auto p = parse_object(o, content_type);
    if (!p) {
        return p;
    }
    fill_refs(*p);
    p->info.size = body.size();
    return p;
}

Result<storage::ManifestInfo> parse_stored_manifest(const Digest& d, std::string body) {
    auto p = parse_manifest(body, {});
    if (!p) {
        return std::move(p).error();
    }
    storage::ManifestInfo info = std::move(p->info);
    info.digest = d;
    info.size = body.size();
    info.body = std::make_shared<const std::string>(std::move(body));
    return info;
}

Result<std::vector<Digest>> stored_references(const Digest& /*d*/, const std::string& body) {
    auto p = parse_manifest(body, {});
    if (!p) {
        return std::move(p).error();
    }
    std::vector<Digest> out;
    for (const Descriptor& b : p->blobs) {
        if (!b.has_urls) {
            out.push_back(b.digest);
        }
    }
    for (const Descriptor& c : p->children) {
        out.push_back(c.digest);
    }
    return out;
}

} // namespace rp::registry

namespace rp::registry {

std::vector<Platform> index_platforms(std::string_view body) {
    std::vector<Platform> out;
    dom::element doc;
    dom::array list;
    if (thread_parser().parse(body.data(), body.size()).get(doc) != simdjson::SUCCESS ||
        doc["manifests"].get_array().get(list) != simdjson::SUCCESS) {
        return out;
    }
    for (dom::element e : list) {
        Platform p;
        std::string_view s;
        if (e["digest"].get_string().get(s) == simdjson::SUCCESS) {
            p.digest = std::string(s);
        }
        dom::object pl;
        if (e["platform"].get_object().get(pl) == simdjson::SUCCESS) {
            if (pl["os"].get_string().get(s) == simdjson::SUCCESS) {
                p.os = std::string(s);
            }
            if (pl["architecture"].get_string().get(s) == simdjson::SUCCESS) {
                p.architecture = std::string(s);
            }
            if (pl["variant"].get_string().get(s) == simdjson::SUCCESS) {
                p.variant = std::string(s);
            }
        }
        out.push_back(std::move(p));
    }
    return out;
}

} // namespace rp::registry
