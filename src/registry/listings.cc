// SPDX-License-Identifier: Apache-2.0
// Tags list, catalog and referrers: served from the in-memory index.
#include "registry/manifest.hh"
#include "registry/registry.hh"
#include "util/strings.hh"

namespace rp::registry {

using reactor::Task;
using storage::Digest;

namespace {

void append_json_string(std::string& out, std::string_view s) {
    out.push_back('"');
    util::json_escape(out, s);
    out.push_back('"');
}

// `n` absent -> fallback; malformed -> nullopt (PAGINATION_NUMBER_INVALID).
std::optional<std::size_t> page_size(const http::Request& req, std::size_t fallback) {
    auto n = req.query_param("n");
    if (!n) {
        return fallback;
    }
    auto v = util::parse_u64(*n);
    if (!v) {
        return std::nullopt;
    }
    return static_cast<std::size_t>(*v > (1ull << 31) ? (1ull << 31) : *v);
}

} // namespace

Task<void> Registry::tags_list(http::Exchange& ex, const Route& r) noexcept {
    const http::Request& req = ex.request();
    auto n = page_size(req, 0);
    if (!n) {
        co_await fail(ex, Code::pagination_number_invalid, "n must be a non-negative integer");
        co_return;
    }
    bool paged = req.query_param("n").has_value();
    std::string last = req.query_param("last").value_or("");
    bool more = false;
    std::optional<std::vector<std::string>> tags;
    if (paged && *n == 0) {
        tags = store_.index().repo_exists(r.name) ? std::optional(std::vector<std::string>{})
                                                  : std::nullopt;
    } else {
        tags = store_.index().tags(r.name, last, paged ? *n : 0, &more);
    }
    if (!tags) {
        co_await fail(ex, Code::name_unknown, r.name);
        co_return;
    }
    http::Response resp = empty_response(200);
    resp.add("Content-Type", "application/json; charset=utf-8");
    std::string& b = resp.body;
    b = R"({"name":)";
    append_json_string(b, r.name);
    b += R"(,"tags":[)";
    for (std::size_t i = 0; i < tags->size(); ++i) {
        if (i != 0) {
            b.push_back(',');
        }
        append_json_string(b, (*tags)[i]);
    }
    b += "]}\n";
    if (more && !tags->empty()) {
        resp.add("Link", "</v2/" + r.name + "/tags/list?n=" + std::to_string(*n) +
                             "&last=" + util::percent_encode(tags->back()) + ">; rel=\"next\"");
    }
    co_await reply(ex, std::move(resp));
}

Task<void> Registry::catalog(http::Exchange& ex) noexcept {
    const http::Request& req = ex.request();
    std::size_t dflt = cfg_.catalog_default_entries < cfg_.catalog_max_entries
                           ? cfg_.catalog_default_entries
                           : cfg_.catalog_max_entries;
    auto n = page_size(req, dflt);
    if (!n) {
        co_await fail(ex, Code::pagination_number_invalid, "n must be a non-negative integer");
        co_return;
    }
    std::size_t limit = *n > cfg_.catalog_max_entries ? cfg_.catalog_max_entries : *n;
    std::string last = req.query_param("last").value_or("");
    bool more = false;
    std::vector<std::string> repos = store_.index().catalog(last, limit, &more);
    http::Response resp = empty_response(200);
    resp.add("Content-Type", "application/json; charset=utf-8");
    std::string& b = resp.body;
    b = R"({"repositories":[)";
    for (std::size_t i = 0; i < repos.size(); ++i) {
        if (i != 0) {
            b.push_back(',');
        }
        append_json_string(b, repos[i]);
    }
    b += "]}\n";
    if (more && !repos.empty()) {
        resp.add("Link", "</v2/_catalog?last=" + util::percent_encode(repos.back()) +
                             "&n=" + std::to_string(limit) + ">; rel=\"next\"");
    }
    co_await reply(ex, std::move(resp));
}

Task<void> Registry::referrers(http::Exchange& ex, const Route& r) noexcept {
    auto subject = Digest::parse(r.ref);
    if (!subject) {
        co_await fail(ex, Code::digest_invalid, "invalid digest");
        co_return;
    }
    auto filter = ex.request().query_param("artifactType");
    http::Response resp = empty_response(200);
    resp.add("Content-Type", std::string(media::oci_index));
    std::string& b = resp.body;
    b = R"({"schemaVersion":2,"mediaType":")";
    b += media::oci_index;
    b += R"(","manifests":[)";
    bool first = true;
    for (const storage::ManifestPtr& m : store_.index().referrers(r.name, *subject)) {
        if (filter && m->artifact_type != *filter) {
            continue;
        }
        if (!first) {
            b.push_back(',');
        }
        first = false;
        b += R"({"mediaType":)";
        append_json_string(b, m->media_type);
        b += R"(,"digest":")";
        b += m->digest.str();
        b += R"(","size":)";
        b += std::to_string(m->size);
        if (!m->artifact_type.empty()) {
            b += R"(,"artifactType":)";
            append_json_string(b, m->artifact_type);
        }
        if (!m->annotations_json.empty()) {
            b += R"(,"annotations":)";
            b += m->annotations_json;
        }
        b.push_back('}');
    }
    b += "]}\n";
    if (filter) {
        resp.add("OCI-Filters-Applied", "artifactType");
    }
    co_await reply(ex, std::move(resp));
}

} // namespace rp::registry
