// SPDX-License-Identifier: Apache-2.0
// The admin API's insights (docs/openapi.json): repositories with what they
// store and how they are used, a repository's tags and manifests, what a
// delete would free, the registry's totals and time series. Everything is
// answered from the index and the insights kept in memory, never from a
// walk of the tree.
#include <algorithm>
#include <charconv>
#include <ctime>
#include <unordered_set>

#include "registry/json.hh"
#include "registry/manifest.hh"
#include "registry/registry.hh"
#include "storage/names.hh"

namespace rp::registry {

using reactor::Task;
using storage::Digest;
using storage::Index;

namespace {

constexpr std::size_t page_max = 1000;
constexpr std::size_t tags_page_max = 200;

// A non-negative integer query parameter: `dflt` when absent, nullopt when bad.
std::optional<std::uint64_t> uint_param(const http::Request& req, std::string_view key,
                                        std::uint64_t dflt) {
    const std::optional<std::string> v = req.query_param(key);
    if (!v) {
        return dflt;
    }
    const std::string& s = *v;
    const char* end = s.data() + s.size();
    std::uint64_t n = 0;
    auto [p, ec] = std::from_chars(s.data(), end, n);
    if (ec != std::errc() || p != end) {
        return std::nullopt;
    }
    return n;
}

// The sort keys of the repository list, each with its natural order.
enum class SortKey {
    name,
    size,
    unique_size,
    shared_size,
    tags,
    manifests,
    last_push,
    last_pull,
    pulls
};

std::optional<SortKey> sort_key(std::string_view s) {
    static constexpr std::pair<std::string_view, SortKey> keys[] = {
        {"name", SortKey::name},
        {"size", SortKey::size},
        {"unique_size", SortKey::unique_size},
        {"shared_size", SortKey::shared_size},
        {"tags", SortKey::tags},
        {"manifests", SortKey::manifests},
        {"last_push", SortKey::last_push},
        {"last_pull", SortKey::last_pull},
        {"pulls", SortKey::pulls}};
    for (const auto& [k, v] : keys) {
        if (k == s) {
            return v;
        }
    }
    return std::nullopt;
}

struct Row {
    Index::RepoSummary s;
    storage::Insights::Repo a;
    std::string_view mirror; // the prefix of the mirror it caches, or empty
};

std::uint64_t key_of(const Row& r, SortKey k) {
    switch (k) {
    case SortKey::size: return r.s.bytes;
    case SortKey::unique_size: return r.s.unique_bytes;
    case SortKey::shared_size: return r.s.bytes - r.s.unique_bytes;
    case SortKey::tags: return r.s.tags;
    case SortKey::manifests: return r.s.manifests;
    case SortKey::last_push: return static_cast<std::uint64_t>(r.a.last_push);
    case SortKey::last_pull: return static_cast<std::uint64_t>(r.a.last_pull);
    case SortKey::pulls: return r.a.pulls;
    case SortKey::name: break;
    }
    return 0;
}

// A repository's fields, inside an object the caller opened; without
// `sharing`, unique and shared bytes are null.
void repo_fields(Json& j, const Row& r, bool sharing) {
    j.str("name", r.s.name).num("size_bytes", r.s.bytes);
    if (sharing) {
        j.num("unique_bytes", r.s.unique_bytes).num("shared_bytes", r.s.bytes - r.s.unique_bytes);
    } else {
        j.null("unique_bytes").null("shared_bytes");
    }
    j.boolean("sizes_complete", r.s.unsized == 0)
        .num("tags", std::uint64_t{r.s.tags})
        .num("manifests", std::uint64_t{r.s.manifests})
        .num("blob_links", std::uint64_t{r.s.layers})
        .time("last_push", r.a.last_push)
        .time("last_pull", r.a.last_pull)
        .num("pulls", r.a.pulls);
    if (r.mirror.empty()) {
        j.null("mirror");
    } else {
        j.str("mirror", r.mirror);
    }
}

// A row of the list: the index's summary, the insights' activity, and the
// mirror whose cache it is.
Row row_of(Index::RepoSummary s, const storage::Insights& in, const mirror::Router& router) {
    Row r;
    r.s = std::move(s);
    r.a = in.repo(r.s.name);
    if (const mirror::Upstream* u = router.owner(r.s.name)) {
        r.mirror = u->prefix;
    }
    return r;
}

// The key `select` orders by (null: by name). Activity comes from the
// insights, by name, under their own striped locks.
std::function<std::uint64_t(const Index::RepoSummary&)> sort_by(SortKey k,
                                                                const storage::Insights& in) {
    if (k == SortKey::name) {
        return {};
    }
    return [k, &in](const Index::RepoSummary& s) {
        Row r;
        r.s.bytes = s.bytes;
        r.s.unique_bytes = s.unique_bytes;
        r.s.tags = s.tags;
        r.s.manifests = s.manifests;
        if (k == SortKey::last_push || k == SortKey::last_pull || k == SortKey::pulls) {
            r.a = in.repo(s.name);
        }
        return key_of(r, k);
    };
}

void repo_json(Json& j, const Row& r, bool sharing) {
    j.open();
    repo_fields(j, r, sharing);
    j.close();
}

void frees_json(Json& j, const Index::Frees& f, bool sharing) {
    if (!sharing) {
        j.null("delete_frees");
        return;
    }
    j.open("delete_frees")
        .num("bytes", f.bytes)
        .num("blobs", f.blobs)
        .num("manifests", f.manifests)
        .boolean("exact", f.exact)
        .close();
}

void days_json(Json& j, std::string_view key, const storage::Insights::Days& days,
               std::int32_t first, std::int32_t last, bool carry) {
    // Every day of the window, oldest first: a day without a count is 0, or
    // with `carry` the last value before it (stored bytes stay until changed).
    j.open_array(key);
    std::size_t i = 0;
    std::uint64_t before = 0;
    while (i < days.size() && days[i].first < first) {
        before = days[i++].second;
    }
    for (std::int32_t d = first; d <= last; ++d) {
        std::uint64_t v = carry ? before : 0;
        if (i < days.size() && days[i].first == d) {
            v = days[i++].second;
            before = v;
        }
        j.open().time("day", std::int64_t{d} * 86400).num("value", v).close();
    }
    j.close_array();
}

http::Response admin_json(int status, std::string body) {
    http::Response r = json_report(std::move(body));
    r.status = status;
    return r;
}

} // namespace

Task<void> Registry::repositories_endpoint(http::Exchange& ex) noexcept {
    const http::Request& req = ex.request();
    if (req.method != "GET" && req.method != "HEAD") {
        co_await fail(ex, Code::unsupported, "GET");
        co_return;
    }
    auto offset = uint_param(req, "offset", 0);
    auto limit = uint_param(req, "limit", 50);
    std::string sort_name = req.query_param("sort").value_or("name");
    auto key = sort_key(sort_name);
    std::string order = req.query_param("order").value_or(key == SortKey::name ? "asc" : "desc");
    std::string mirrored = req.query_param("mirrored").value_or("");
    if (!offset || !limit || *limit == 0 || *limit > page_max) {
        co_await fail(ex, Code::pagination_number_invalid,
                      "offset and limit are integers, limit 1 to 1000");
        co_return;
    }
    if (!key || (order != "asc" && order != "desc") ||
        (!mirrored.empty() && mirrored != "true" && mirrored != "false")) {
        co_await fail(ex, Code::unsupported,
                      "sort is one of name, size, unique_size, shared_size, tags, manifests, "
                      "last_push, last_pull, pulls; order asc or desc; mirrored true or false");
        co_return;
    }
    if (!co_await ready_.wait()) {
        co_await fail(ex, Code::unavailable, "stopping before the index finished loading");
        co_return;
    }
    const bool sharing = pulls_everything(ex); // see repository_endpoint
    if (!sharing && (*key == SortKey::unique_size || *key == SortKey::shared_size)) {
        co_await fail(ex, Code::denied,
                      "sorting by unique or shared size needs pull on every repository");
        co_return;
    }
    const std::string q = req.query_param("q").value_or("");
    const std::string prefix = req.query_param("prefix").value_or("");
    std::function<bool(std::string_view)> may =
        sharing ? std::function<bool(std::string_view)>{} : pull_filter(ex);
    auto accept = [&](std::string_view name) {
        if (!name.starts_with(prefix) || (!q.empty() && name.find(q) == std::string_view::npos)) {
            return false;
        }
        if (!mirrored.empty() && (router_.owner(name) != nullptr) != (mirrored == "true")) {
            return false;
        }
        return !may || may(name);
    };
    std::size_t total = 0;
    std::vector<Index::RepoSummary> page = store_.index().select(
        accept, sort_by(*key, insights_), order == "desc", *offset, *limit, &total);
    Json j;
    j.num("total", static_cast<std::uint64_t>(total))
        .num("offset", *offset)
        .num("limit", *limit)
        .str("sort", sort_name)
        .str("order", order)
        .open_array("repositories");
    for (Index::RepoSummary& s : page) {
        repo_json(j, row_of(std::move(s), insights_, router_), sharing);
    }
    j.close_array();
    co_await reply(ex, json_report(j.done()));
}

// What a repository, one of its tags or manifests holds, for the admin API.
struct Registry::ManifestView {
    storage::ManifestPtr m;
    std::uint64_t total_bytes = 0; // the manifest, its blobs, and its children's
    bool sizes_complete = true;
    std::vector<Platform> platforms;
    std::vector<storage::ManifestPtr> referrers;
};

Task<Registry::ManifestView> Registry::view_manifest(const std::string& repo,
                                                     storage::ManifestPtr m) noexcept {
    ManifestView v;
    v.m = m;
    const Index& idx = store_.index();
    std::unordered_set<std::string> seen;
    auto add = [&](const Digest& d, std::uint64_t fallback) {
        if (!seen.insert(d.str()).second) {
            return;
        }
        auto s = idx.size_of(d);
        if (!s && fallback == Index::unknown_size) {
            v.sizes_complete = false;
        }
        v.total_bytes += s ? *s : (fallback == Index::unknown_size ? 0 : fallback);
    };
    add(m->digest, m->size);
    for (const Digest& b : m->blobs) {
        add(b, Index::unknown_size);
    }
    for (const Digest& c : m->children) {
        storage::ManifestPtr child = idx.manifest(repo, c);
        if (!child) {
            continue;
        }
        add(c, child->size);
        for (const Digest& b : child->blobs) {
            add(b, Index::unknown_size);
        }
    }
    if (!m->children.empty()) {
        auto body = co_await store_.manifest_body(m);
        if (body && *body) {
            v.platforms = index_platforms(**body);
        }
    }
    v.referrers = idx.referrers(repo, m->digest);
    co_return v;
}

void Registry::manifest_json(Json& j, const ManifestView& v, const storage::Index::Frees& f,
                             const std::string& repo, bool sharing) const {
    j.str("digest", v.m->digest.str())
        .str("media_type", v.m->media_type)
        .num("size_bytes", v.m->size)
        .num("total_bytes", v.total_bytes)
        .boolean("sizes_complete", v.sizes_complete);
    if (v.m->artifact_type.empty()) {
        j.null("artifact_type");
    } else {
        j.str("artifact_type", v.m->artifact_type);
    }
    if (v.m->subject) {
        j.str("subject", v.m->subject->str());
    } else {
        j.null("subject");
    }
    const storage::Activity::Times t = activity_.digest(repo, v.m->digest.str());
    j.time("pushed", t.pushed).time("pulled", t.pulled);
    j.open_array("platforms");
    for (const Platform& p : v.platforms) {
        j.open().str("digest", p.digest).str("os", p.os).str("architecture", p.architecture);
        if (!p.variant.empty()) {
            j.str("variant", p.variant);
        }
        j.close();
    }
    j.close_array().open_array("referrers");
    for (const storage::ManifestPtr& r : v.referrers) {
        j.open()
            .str("digest", r->digest.str())
            .str("media_type", r->media_type)
            .str("artifact_type", r->artifact_type)
            .num("size_bytes", r->size)
            .close();
    }
    j.close_array();
    frees_json(j, f, sharing);
}

Task<void> Registry::repository_endpoint(http::Exchange& ex, const Route& r) noexcept {
    const http::Request& req = ex.request();
    if (req.method == "DELETE" && r.kind == RouteKind::repository) {
        co_await delete_repository(ex, r);
        if (ex.status() < 300) {
            insights_.forget_repo(r.name);
        }
        co_return;
    }
    if (req.method == "DELETE" && r.kind != RouteKind::repository_tags) {
        co_await admin_delete(ex, r);
        co_return;
    }
    if (req.method != "GET" && req.method != "HEAD") {
        co_await fail(ex, Code::unsupported, "GET or DELETE");
        co_return;
    }
    if (!storage::valid_repo_name(r.name)) {
        co_await fail(ex, Code::name_invalid, "invalid repository name");
        co_return;
    }
    if (!co_await ready_.wait()) {
        co_await fail(ex, Code::unavailable, "stopping before the index finished loading");
        co_return;
    }
    if ((r.kind == RouteKind::repository_tag && !storage::valid_tag(r.ref)) ||
        (r.kind == RouteKind::repository_manifest && !Digest::parse(r.ref))) {
        co_await fail(
            ex, r.kind == RouteKind::repository_tag ? Code::tag_invalid : Code::digest_invalid,
            r.ref);
        co_return;
    }
    const Index& idx = store_.index();
    auto summary = idx.summary(r.name);
    if (!summary) {
        co_await fail(ex, Code::name_unknown, r.name);
        co_return;
    }
    // What other repositories hold shows through unique and shared bytes
    // and what a delete frees: only for a caller who may pull everything
    // (else a pushed blob would tell whether another repository has it).
    const bool sharing = pulls_everything(ex);
    Json j;
    if (r.kind == RouteKind::repository) {
        repo_fields(j, row_of(*summary, insights_, router_), sharing);
        const std::int32_t today = storage::Insights::day_of(now_s());
        days_json(j, "pulls_per_day", insights_.repo_pulls(r.name),
                  today - insights_.keep_days() + 1, today, false);
        frees_json(j, idx.frees(r.name, {}, true), sharing);
        co_await reply(ex, json_report(j.done()));
        co_return;
    }
    if (r.kind == RouteKind::repository_tags) {
        auto offset = uint_param(req, "offset", 0);
        // Each row looks at the repository's tags and manifests (what a
        // delete frees): pages are smaller than the list's.
        auto limit = uint_param(req, "limit", 100);
        if (!offset || !limit || *limit == 0 || *limit > tags_page_max) {
            co_await fail(ex, Code::pagination_number_invalid,
                          "offset and limit are integers, limit 1 to 200");
            co_return;
        }
        const std::string q = req.query_param("q").value_or("");
        bool more = false;
        std::vector<std::string> tags =
            idx.tags(r.name, {}, 0, &more).value_or(std::vector<std::string>{});
        if (!q.empty()) {
            std::erase_if(tags,
                          [&](const std::string& t) { return t.find(q) == std::string::npos; });
        }
        j.num("total", static_cast<std::uint64_t>(tags.size()))
            .num("offset", *offset)
            .num("limit", *limit)
            .open_array("tags");
        for (std::size_t i = *offset; i < tags.size() && i < *offset + *limit; ++i) {
            storage::ManifestPtr m = indexed_manifest(idx, r.name, tags[i]);
            if (!m) {
                continue; // deleted meanwhile
            }
            ManifestView v = co_await view_manifest(r.name, m);
            j.open().str("name", tags[i]);
            tag_json(j, r.name, tags[i], v, false, sharing);
            j.close();
        }
        j.close_array();
        co_await reply(ex, json_report(j.done()));
        co_return;
    }
    storage::ManifestPtr m = indexed_manifest(idx, r.name, r.ref);
    if (!m) {
        co_await fail(ex, Code::manifest_unknown, r.ref);
        co_return;
    }
    ManifestView v = co_await view_manifest(r.name, m);
    if (r.kind == RouteKind::repository_tag) {
        j.str("name", r.ref);
        tag_json(j, r.name, r.ref, v, true, sharing);
    } else {
        manifest_json(j, v, idx.frees(r.name, {m->digest}, false), r.name, sharing);
        j.open_array("tags");
        for (const std::string& t : idx.tags_pointing_to(r.name, m->digest)) {
            j.str("", t);
        }
        j.close_array();
    }
    // ?body=true: the manifest as pushed, as a JSON string. The web UI shows
    // it from here rather than by a GET of /v2/, which would count as a pull
    // (and keep the tag from a "not pulled for" retention rule).
    if (req.query_param("body").value_or("") == "true") {
        auto body = co_await store_.manifest_body(m);
        if (body && *body) {
            j.str("body", **body);
        }
    }
    co_await reply(ex, json_report(j.done()));
}

void Registry::tag_json(Json& j, const std::string& repo, const std::string& tag,
                        const ManifestView& v, bool days, bool sharing) const {
    const Index& idx = store_.index();
    // Deleting the tag frees what its manifest holds alone, once no other
    // tag points at it (and GC runs with delete_untagged).
    const bool last_tag = idx.tags_pointing_to(repo, v.m->digest).size() <= 1;
    const Index::Frees f = last_tag ? idx.frees(repo, {v.m->digest}, false) : Index::Frees{};
    manifest_json(j, v, f, repo, sharing);
    const storage::Activity::Times t = activity_.tag(repo, tag);
    const std::int32_t today = storage::Insights::day_of(now_s());
    j.time("tag_pushed", t.pushed)
        .time("tag_pulled", t.pulled)
        .num("pulls", insights_.tag_pull_total(repo, tag));
    if (days) {
        days_json(j, "pulls_per_day", insights_.tag_pulls(repo, tag),
                  today - insights_.keep_days() + 1, today, false);
    }
}

Task<void> Registry::admin_delete(http::Exchange& ex, const Route& r) noexcept {
    if (!co_await may_delete(ex, r)) {
        co_return;
    }
    if (!store_.index().repo_exists(r.name)) {
        co_await fail(ex, Code::name_unknown, r.name);
        co_return;
    }
    const Origin o{&ex, {}};
    util::Result<void> done = util::Ok{};
    Json j;
    j.str("repository", r.name);
    if (r.kind == RouteKind::repository_tag) {
        if (!storage::valid_tag(r.ref)) {
            co_await fail(ex, Code::tag_invalid, r.ref);
            co_return;
        }
        done = co_await remove_tag(r.name, r.ref, o);
        j.str("tag", r.ref);
    } else {
        auto d = Digest::parse(r.ref);
        if (!d) {
            co_await fail(ex, Code::digest_invalid, r.ref);
            co_return;
        }
        done = co_await remove_manifest(r.name, *d, o);
        j.str("digest", d->str());
    }
    if (!done) {
        co_await fail(ex, code_for(done.error(), Code::manifest_unknown), r.ref);
        co_return;
    }
    co_await reply(ex, admin_json(202, j.done()));
}

Task<void> Registry::insights_endpoint(http::Exchange& ex) noexcept {
    const http::Request& req = ex.request();
    if (req.method != "GET" && req.method != "HEAD") {
        co_await fail(ex, Code::unsupported, "GET");
        co_return;
    }
    auto top_n = uint_param(req, "top", 10);
    if (!top_n || *top_n == 0 || *top_n > 100) {
        co_await fail(ex, Code::pagination_number_invalid, "top is 1 to 100");
        co_return;
    }
    if (!co_await ready_.wait()) {
        co_await fail(ex, Code::unavailable, "stopping before the index finished loading");
        co_return;
    }
    const Index& idx = store_.index();
    const Index::Totals t = idx.totals();
    const Index::Counts c = idx.counts();
    Json j;
    j.num("size_bytes", t.bytes)
        .num("logical_bytes", t.logical_bytes)
        .num("deduplication_ratio_percent",
             t.bytes == 0 ? std::uint64_t{100} : t.logical_bytes * 100 / t.bytes)
        .num("blobs", t.blobs)
        .boolean("sizes_complete", t.unsized == 0)
        .num("repositories", c.repos)
        .num("tags", c.tags)
        .num("manifests", c.manifests);
    std::uint64_t pulls = 0;
    for (const auto& [day, n] : insights_.pulls()) {
        pulls += n; // the kept days', deleted repositories' included
    }
    j.num("pulls", pulls).num("pull_days", static_cast<std::uint64_t>(insights_.keep_days()));
    auto top_by = [&](std::string_view key, SortKey k) {
        std::size_t total = 0;
        std::vector<Index::RepoSummary> top =
            idx.select({}, sort_by(k, insights_), true, 0, *top_n, &total);
        j.open_array(key);
        for (Index::RepoSummary& s : top) {
            repo_json(j, row_of(std::move(s), insights_, router_), true);
        }
        j.close_array();
    };
    top_by("top_by_size", SortKey::size);
    top_by("top_by_pulls", SortKey::pulls);
    j.open_array("mirrors");
    for (const mirror::Upstream& u : router_.upstreams()) {
        const MirrorStats& st = stats(u);
        j.open()
            .str("prefix", u.prefix)
            .num("hits", st.all_hits())
            .num("misses", st.all_misses())
            .num("hit_ratio_percent", st.hit_ratio_percent())
            .close();
    }
    j.close_array();
    co_await reply(ex, json_report(j.done()));
}

Task<void> Registry::timeseries_endpoint(http::Exchange& ex) noexcept {
    const http::Request& req = ex.request();
    if (req.method != "GET" && req.method != "HEAD") {
        co_await fail(ex, Code::unsupported, "GET");
        co_return;
    }
    auto days = uint_param(req, "days", static_cast<std::uint64_t>(insights_.keep_days()));
    if (!days || *days == 0 || *days > 3660) {
        co_await fail(ex, Code::pagination_number_invalid, "days is 1 to 3660");
        co_return;
    }
    const std::int64_t now = now_s();
    const std::int32_t today = storage::Insights::day_of(now);
    const std::int32_t first = today - static_cast<std::int32_t>(*days) + 1;
    insights_.stored(now, store_.index().totals().bytes); // today's is the current value
    Json j;
    j.num("days", *days);
    days_json(j, "stored_bytes", insights_.stored_bytes(), first, today, true);
    days_json(j, "pulls", insights_.pulls(), first, today, false);
    // Requests per minute over the last hour (this process's, since it started).
    j.open_array("requests_per_minute");
    {
        std::lock_guard lk(rates_.mu);
        for (const auto& [minute, count] : rates_.minutes) {
            j.open().time("minute", minute * 60).num("requests", count).close();
        }
    }
    j.close_array();
    co_await reply(ex, json_report(j.done()));
}

} // namespace rp::registry
