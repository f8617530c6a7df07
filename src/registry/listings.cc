// SPDX-License-Identifier: Apache-2.0
// Tags list, catalog and referrers: served from the in-memory index.
#include "registry/manifest.hh"
#include "registry/registry.hh"
#include "util/strings.hh"

namespace rp::registry {

using reactor::Task;
using storage::Digest;
using util::Errc;

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

// The query to send upstream: the request's own parameters that the
// upstream understands, in a fixed order (never `ns`, which is ringport's).
std::string upstream_query(const http::Request& req, std::initializer_list<const char*> keys) {
    std::string q;
    for (const char* k : keys) {
        if (auto v = req.query_param(k)) {
            q.append(q.empty() ? "?" : "&").append(k).append("=").append(util::percent_encode(*v));
        }
    }
    return q;
}

std::string tag_list_json(std::string_view name, const std::vector<std::string>& tags) {
    std::string b = R"({"name":)";
    append_json_string(b, name);
    b += R"(,"tags":[)";
    for (std::size_t i = 0; i < tags.size(); ++i) {
        if (i != 0) {
            b.push_back(',');
        }
        append_json_string(b, tags[i]);
    }
    b += "]}\n";
    return b;
}

} // namespace

// A mirrored repository's tag list or referrers query: the upstream's
// answer, kept for the mirror's list_ttl_s; concurrent askers share one
// upstream request.
Task<util::Result<mirror::Listed>> Registry::mirror_list(const mirror::Upstream& u,
                                                         const std::string& repo, std::string what,
                                                         std::string accept) noexcept {
    const std::string key = repo + " " + what;
    if (auto l = lists_.get(key, u.list_ttl_s)) {
        co_return std::move(*l);
    }
    if (!co_await ready_.wait()) {
        co_return util::Error::of(Errc::stopped, "stopping");
    }
    const std::string flight = "list " + key;
    mirror::Flights::Ticket t = flights_.join(flight);
    if (!t.leader) {
        if (auto landed = co_await flights_.follow(t); !landed) {
            co_return std::move(landed).error();
        }
        if (auto l = lists_.get(key, u.list_ttl_s + 1)) {
            co_return std::move(*l);
        }
        co_return util::Error::of(Errc::closed, "the upstream's list expired at once");
    }
    auto got = co_await fetcher_.listing(u, repo.substr(u.prefix.size() + 1), std::move(what),
                                         std::move(accept), 4U << 20U);
    if (got) {
        stats(u).upstream_bytes.fetch_add(got->body.size(), std::memory_order_relaxed);
        lists_.put(key, *got);
    }
    flights_.land(flight, t.flight,
                  got ? util::Result<void>(util::Ok{}) : util::Result<void>(got.error()));
    co_return got;
}

Task<void> Registry::tags_list(http::Exchange& ex, const Route& r) noexcept {
    const http::Request& req = ex.request();
    std::optional<util::Error> stale; // the upstream failed: what the cache holds
    if (const mirror::Upstream* u = router_.empty() ? nullptr : router_.owner(r.name)) {
        auto got =
            co_await mirror_list(*u, r.name, "tags/list" + upstream_query(req, {"n", "last"}), {});
        util::Result<mirror::TagPage> page = got ? mirror::parse_tag_page(got->body, got->link)
                                                 : util::Result<mirror::TagPage>(got.error());
        if (page) {
            http::Response resp = empty_response(200);
            resp.add("Content-Type", "application/json; charset=utf-8");
            resp.body = tag_list_json(r.name, page->tags);
            if (!page->next_query.empty()) {
                resp.add("Link",
                         "</v2/" + r.name + "/tags/list?" + page->next_query + ">; rel=\"next\"");
            }
            co_await reply(ex, std::move(resp));
            co_return;
        }
        if (page.error().kind == Errc::stopped) {
            co_await fail(ex, Code::unavailable, "stopping");
            co_return;
        }
        if (page.error().kind != Errc::not_found) {
            stale = page.error(); // down, throttled or junk: the cache's tags, said so
        }
    }
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
        if (stale) {
            co_await fail(ex, Code::upstream_failed, stale->detail);
            co_return;
        }
        co_await fail(ex, Code::name_unknown, r.name);
        co_return;
    }
    http::Response resp = empty_response(200);
    resp.add("Content-Type", "application/json; charset=utf-8");
    if (stale) {
        add_stale_warning(resp, stale->detail);
    }
    resp.body = tag_list_json(r.name, *tags);
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
    std::vector<std::string> repos;
    if (guard_ == nullptr || guard_->access->pulls_everything(auth::Identity{ex.user()})) {
        repos = store_.index().catalog(last, limit, &more);
    } else {
        // Only what the caller may pull: pages of the index, filtered, until
        // this page is full. Bounded: each turn moves `last` forward.
        std::string from = last;
        for (int turn = 0; turn < 100000 && repos.size() < limit; ++turn) {
            bool rest = false;
            std::vector<std::string> page = store_.index().catalog(from, 1000, &rest);
            for (std::string& name : page) {
                if (repos.size() == limit) {
                    rest = true; // more may follow this full page
                    break;
                }
                if (listed_for(ex, name)) {
                    repos.push_back(std::move(name));
                }
            }
            if (!page.empty()) {
                from = page.back();
            }
            more = rest;
            if (!rest || page.empty()) {
                break;
            }
        }
    }
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
    std::optional<util::Error> stale;
    if (const mirror::Upstream* u = router_.empty() ? nullptr : router_.owner(r.name)) {
        auto got = co_await mirror_list(*u, r.name,
                                        "referrers/" + subject->str() +
                                            upstream_query(ex.request(), {"artifactType"}),
                                        std::string(media::oci_index));
        if (got) {
            http::Response resp = empty_response(200);
            resp.add("Content-Type",
                     got->content_type.empty() ? std::string(media::oci_index) : got->content_type);
            if (got->filters_applied) {
                resp.add("OCI-Filters-Applied", "artifactType");
            }
            resp.body = std::move(got->body);
            co_await reply(ex, std::move(resp));
            co_return;
        }
        if (got.error().kind == Errc::stopped) {
            co_await fail(ex, Code::unavailable, "stopping");
            co_return;
        }
        // A 404: an upstream without the referrers API; else it is down.
        // Either way the cache's own referrers answer.
        if (got.error().kind != Errc::not_found) {
            stale = got.error();
        }
    }
    http::Response resp = empty_response(200);
    resp.add("Content-Type", std::string(media::oci_index));
    if (stale) {
        add_stale_warning(resp, stale->detail);
    }
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
