// SPDX-License-Identifier: Apache-2.0
// Manifest GET/HEAD (content negotiation), PUT (validation) and DELETE.
#include <algorithm>
#include <ctime>
#include <optional>

#include "reactor/ops.hh"
#include "registry/manifest.hh"
#include "registry/registry.hh"
#include "storage/names.hh"
#include "util/strings.hh"

namespace rp::registry {

using reactor::Task;
using storage::Digest;
using util::Errc;

namespace {

// With no Accept header, or */*, a manifest is served as stored; when Accept
// lists types and none matches, the client cannot use it (Distribution: 404).
bool accepts(const http::Request& req, std::string_view media_type) {
    auto list = req.header_list("Accept");
    if (list.empty()) {
        return true;
    }
    for (std::string_view item : list) {
        std::string_view t = util::trim(item.substr(0, item.find(';')));
        if (t == "*/*" || t == media_type) {
            return true;
        }
    }
    return false;
}

bool etag_matches(std::string_view if_none_match, const Digest& d) {
    if (if_none_match.empty()) {
        return false;
    }
    for (std::size_t pos = 0; pos < if_none_match.size();) {
        auto comma = if_none_match.find(',', pos);
        std::string_view item = util::trim(if_none_match.substr(pos, comma - pos));
        if (item.size() >= 2 && item.front() == '"' && item.back() == '"') {
            item = item.substr(1, item.size() - 2);
        }
        if (item == "*" || item == d.str()) {
            return true;
        }
        if (comma == std::string_view::npos) {
            break;
        }
        pos = comma + 1;
    }
    return false;
}

// What a mirror asks its upstream for: every manifest type, whatever this
// client accepts. The cache is shared: a narrow Accept must not make the
// upstream answer a platform's manifest (or 404) and store it under the
// tag for everyone; negotiation stays local (accepts()).
std::string mirror_accept() {
    return "application/vnd.oci.image.index.v1+json, "
           "application/vnd.oci.image.manifest.v1+json, "
           "application/vnd.docker.distribution.manifest.list.v2+json, "
           "application/vnd.docker.distribution.manifest.v2+json";
}

struct Reference {
    bool is_digest = false;
    Digest digest;
    std::string tag;
};

// A reference is a digest when it has ':' and a tag otherwise.
util::Result<Reference> parse_reference(std::string_view ref, Code* code) {
    Reference r;
    if (ref.find(':') != std::string_view::npos) {
        auto d = Digest::parse(ref);
        if (!d) {
            *code = Code::digest_invalid;
            return std::move(d).error();
        }
        r.is_digest = true;
        r.digest = std::move(*d);
        return r;
    }
    if (!storage::valid_tag(ref)) {
        *code = Code::manifest_unknown; // the conformance suite wants 404 here
        return util::Error::of(Errc::invalid, "invalid tag");
    }
    r.tag = std::string(ref);
    return r;
}

// While the index loads: the manifest straight from the tree, as Distribution
// reads it (tag link, revision link, blob), parsed for its media type.
Task<storage::ManifestPtr> manifest_from_tree(storage::Store& store, std::string name,
                                              Reference ref) noexcept {
    if (!ref.is_digest) {
        auto d = co_await store.tag_on_disk(name, ref.tag);
        if (!d) {
            co_return nullptr;
        }
        ref.digest = std::move(*d);
    }
    auto body = co_await store.manifest_on_disk(name, ref.digest);
    if (!body) {
        co_return nullptr;
    }
    auto info = parse_stored_manifest(ref.digest, *body);
    if (!info) {
        co_return nullptr;
    }
    auto m = std::make_shared<storage::ManifestInfo>(std::move(*info));
    m->digest = ref.digest;
    m->size = body->size();
    m->body = std::make_shared<const std::string>(std::move(*body));
    co_return m;
}

// After a snapshot load, until the verification ends: the tag resolved from
// its current/link (another tool may have rewritten it in place while
// ringport was stopped, which no stamped directory shows), the manifest from
// the index when it holds it, else from the tree. Writes since the start
// update the link before the index, so the link is never behind.
Task<storage::ManifestPtr> manifest_by_tag_link(storage::Store& store, std::string name,
                                                std::string tag) noexcept {
    auto d = co_await store.tag_on_disk(name, tag);
    if (!d) {
        co_return nullptr;
    }
    if (storage::ManifestPtr m = store.index().manifest(name, *d)) {
        co_return m;
    }
    Reference ref;
    ref.is_digest = true;
    ref.digest = std::move(*d);
    co_return co_await manifest_from_tree(store, std::move(name), std::move(ref));
}

} // namespace

// The index's manifest for a tag or a digest (already validated), or null.
storage::ManifestPtr indexed_manifest(const storage::Index& idx, const std::string& name,
                                      const std::string& ref) {
    // A bad digest is simply not found.
    std::optional<Digest> d;
    if (ref.find(':') == std::string::npos) {
        d = idx.resolve_tag(name, ref);
    } else if (auto parsed = Digest::parse(ref)) {
        d = std::move(*parsed);
    }
    return d ? idx.manifest(name, *d) : nullptr;
}

// A mirrored repository's manifest its cache lacks: fetched from the
// upstream with the client's Accept, validated as a push would be (its blobs
// are fetched when they are pulled) and stored under the cache's name.
Task<util::Result<storage::ManifestPtr>>
Registry::mirror_manifest(const Route& r, const mirror::Upstream& u) noexcept {
    const std::string upstream_name = r.name.substr(u.prefix.size() + 1);
    auto f = co_await fetcher_.manifest(u, upstream_name, r.ref, mirror_accept(),
                                        store_.config().manifest_bytes_max);
    if (!f) {
        co_return std::move(f).error();
    }
    stats(u).upstream_bytes.fetch_add(f->body.size(), std::memory_order_relaxed);
    auto parsed = parse_manifest(f->body, f->media_type);
    if (!parsed) {
        co_return util::Error::of(Errc::invalid, "upstream manifest: " + parsed.error().detail);
    }
    if (parsed->schema1) {
        co_return util::Error::of(Errc::invalid, "upstream sent a Docker schema 1 manifest");
    }
    const bool by_digest = r.ref.find(':') != std::string::npos;
    std::optional<Digest> want;
    if (by_digest) {
        want = Digest::parse(r.ref).value();
    }
    Digest d = storage::digest_of(want ? want->algorithm() : storage::Algorithm::sha256, f->body);
    if ((want && !(d == *want)) ||
        (!want && !f->digest_header.empty() && f->digest_header != d.str())) {
        co_return util::Error::of(Errc::digest_mismatch, "upstream manifest " + upstream_name +
                                                             ":" + r.ref +
                                                             " does not match its digest");
    }
    auto info = std::make_shared<storage::ManifestInfo>(std::move(parsed->info));
    info->digest = d;
    info->size = f->body.size();
    info->body = std::make_shared<const std::string>(std::move(f->body));
    auto put =
        co_await store_.put_manifest(r.name, info, by_digest ? std::nullopt : std::optional(r.ref));
    if (!put) {
        co_return std::move(put).error();
    }
    storage::ManifestPtr m = store_.index().manifest(r.name, d);
    co_return m ? m : storage::ManifestPtr(info);
}

// A mirrored manifest: fetched when the cache lacks it; a cached tag past
// its tag_ttl_s is revalidated with a HEAD, and fetched again only when the
// upstream's digest differs. Errors leave the cache as it was.
Task<util::Result<storage::ManifestPtr>>
Registry::mirror_lookup(const Route& r, const mirror::Upstream& u,
                        storage::ManifestPtr cached) noexcept {
    const bool by_tag = r.ref.find(':') == std::string::npos;
    // One upstream request (HEAD or GET) however many ask at once: the others
    // wait for it and then read what it confirmed or stored.
    const std::string key = r.name + ":" + r.ref;
    if (!cached && not_found_.remembered(key, u.not_found_ttl_s)) {
        stats(u).not_found_hits[MirrorStats::manifest].fetch_add(1, std::memory_order_relaxed);
        co_return util::Error::of(Errc::not_found, "upstream " + u.url + " answered 404 for " +
                                                       r.ref + " (remembered)");
    }
    mirror::Flights::Ticket t = flights_.join(key);
    if (!t.leader) {
        stats(u).coalesced[MirrorStats::manifest].fetch_add(1, std::memory_order_relaxed);
        if (auto landed = co_await flights_.follow(t); !landed) {
            co_return std::move(landed).error();
        }
        if (storage::ManifestPtr m = indexed_manifest(store_.index(), r.name, r.ref)) {
            co_return m;
        }
        co_return util::Error::of(Errc::not_found, "manifest unknown");
    }
    stats(u).in_flight.fetch_add(1, std::memory_order_relaxed);
    auto got = co_await revalidate_or_fetch(r, u, std::move(cached));
    stats(u).in_flight.fetch_sub(1, std::memory_order_relaxed);
    if (got && by_tag) {
        freshness_.confirmed(r.name, r.ref);
    }
    if (!got && got.error().kind == Errc::not_found) {
        not_found_.remember(key);
    }
    flights_.land(key, t.flight,
                  got ? util::Result<void>(util::Ok{}) : util::Result<void>(got.error()));
    co_return got;
}

// The leader's part: a cached tag's HEAD, and a GET when it is missing or
// changed.
Task<util::Result<storage::ManifestPtr>>
Registry::revalidate_or_fetch(const Route& r, const mirror::Upstream& u,
                              storage::ManifestPtr cached) noexcept {
    if (!cached) { // a flight that landed after this request's miss may have stored it
        if (storage::ManifestPtr m = indexed_manifest(store_.index(), r.name, r.ref)) {
            co_return m;
        }
    }
    if (cached) {
        stats(u).revalidations.fetch_add(1, std::memory_order_relaxed);
        // Bounded: past the deadline the cached copy is served (stale).
        auto d = co_await fetcher_.manifest_digest(u, r.name.substr(u.prefix.size() + 1), r.ref,
                                                   mirror_accept(),
                                                   static_cast<std::uint32_t>(u.deadline_ms));
        if (!d) {
            co_return std::move(d).error();
        }
        if (*d == cached->digest.str()) {
            // The link's time says when the tag was last confirmed (max_stale_s).
            (void)co_await store_.touch_tag(r.name, r.ref);
            co_return cached;
        }
    }
    co_return co_await mirror_manifest(r, u);
}

// The upstream is down or throttled: open its circuit, and start the probe
// that closes it once the upstream answers again (one per upstream).
void Registry::upstream_down(const mirror::Upstream& u) noexcept {
    if (breaker_.failed(u, std::max(u.retry_after_s, fetcher_.limits(u).retry_after_s))) {
        reactor::spawn(probe(&u));
    }
}

Task<void> Registry::probe(const mirror::Upstream* u) noexcept {
    // Bounded: each turn sleeps until the next try is due (at least a second).
    for (int turn = 0; turn < 10'000'000; ++turn) {
        const std::uint64_t wait_us = breaker_.wait_us(*u);
        co_await reactor::sleep_ms(std::max<std::uint64_t>(wait_us / 1000, 1000));
        if (reactor::Shard::current()->stopping()) {
            co_return;
        }
        breaker_.probed();
        if (co_await fetcher_.ping(*u, static_cast<std::uint32_t>(u->deadline_ms))) {
            breaker_.succeeded(*u);
        } else {
            upstream_down(*u); // pushes the next try back; this probe goes on
        }
        if (breaker_.probe_done(*u)) {
            co_return;
        }
    }
}

Task<void> Registry::get_manifest(http::Exchange& ex, const Route& r) noexcept {
    Code code = Code::manifest_invalid;
    auto ref = parse_reference(r.ref, &code);
    if (!ref) {
        co_await fail(ex, code, ref.error().detail);
        co_return;
    }
    storage::ManifestPtr m;
    storage::Index& idx = store_.index();
    if (!ready_.is_set()) { // no request waits for the whole tree to be read
        m = co_await manifest_from_tree(store_, r.name, std::move(*ref));
    } else if (ref->is_digest || idx.tags_verified()) {
        std::optional<Digest> d =
            ref->is_digest ? std::optional<Digest>(ref->digest) : idx.resolve_tag(r.name, ref->tag);
        m = d ? idx.manifest(r.name, *d) : nullptr;
    } else { // from a snapshot, not verified yet: the tag's link is the truth
        m = co_await manifest_by_tag_link(store_, r.name, ref->tag);
    }
    std::string stale; // why a cached tag is served without its revalidation
    const mirror::Upstream* mirrored = nullptr;
    if (const mirror::Upstream* u = router_.empty() ? nullptr : router_.owner(r.name)) {
        const bool by_tag = r.ref.find(':') == std::string::npos;
        if (!m || (by_tag && !freshness_.fresh(r.name, r.ref, u->tag_ttl_s))) {
            if (!co_await ready_.wait()) { // the fetch writes: not while the index loads
                co_await fail(ex, Code::unavailable, "stopping before the index finished loading");
                co_return;
            }
            util::Result<storage::ManifestPtr> got = util::Error::of(Errc::closed);
            if (m && breaker_.open(*u)) { // down a moment ago: the cache answers at once
                got = util::Error::of(Errc::closed,
                                      "upstream " + u->url + " is down; a probe will see it back");
            } else if (m && fetcher_.rate_limited(*u)) { // keep what is left for misses
                got = util::Error::of(Errc::busy,
                                      "upstream " + u->url + " has " +
                                          std::to_string(fetcher_.limits(*u).remaining) +
                                          " pulls left, below ratelimit_min; not revalidated");
            } else {
                got = co_await mirror_lookup(r, *u, m);
                if (got) {
                    breaker_.succeeded(*u);
                } else if (mirror::upstream_down(got.error())) {
                    upstream_down(*u);
                }
            }
            if (!got) {
                const util::Error& e = got.error();
                if (!m || e.kind == Errc::not_found || e.kind == Errc::stopped) {
                    co_await fail(ex, mirror_code(e, Code::manifest_unknown), e.detail);
                    co_return;
                }
                // The cached tag rather than no answer, unless it is too old.
                auto at = co_await store_.tag_confirmed_at(r.name, r.ref);
                const auto now = now_s();
                if (at && now - *at > static_cast<std::int64_t>(u->max_stale_s)) {
                    co_await fail(ex, Code::upstream_failed,
                                  e.detail + "; the cached tag was last confirmed " +
                                      std::to_string(now - *at) + " s ago, past max_stale_s");
                    co_return;
                }
                stale = e.detail;
                stats(*u).stale.fetch_add(1, std::memory_order_relaxed);
            } else {
                const bool same = m && *got == m; // confirmed unchanged: a hit
                (same ? stats(*u).hits : stats(*u).misses)[MirrorStats::manifest].fetch_add(
                    1, std::memory_order_relaxed);
                m = std::move(*got);
            }
        } else {
            stats(*u).hits[MirrorStats::manifest].fetch_add(1, std::memory_order_relaxed);
        }
        mirrored = u;
    }
    if (!m) {
        co_await fail(ex, Code::manifest_unknown, r.ref);
        co_return;
    }
    {
        // Retention and a mirror's eviction go by the last pull. A HEAD counts:
        // containerd resolves a tag with HEAD, then GETs by digest.
        const auto now = now_s();
        const bool by_tag = r.ref.find(':') == std::string::npos;
        if (by_tag) {
            activity_.tag_pulled(r.name, r.ref, now);
        }
        activity_.digest_pulled(r.name, m->digest.str(), now);
        // A pull, for insights: a request by tag, or a GET by digest (a
        // HEAD by digest is a client checking what it has).
        if (cfg_.insights && (by_tag || ex.request().method == "GET")) {
            insights_.pulled(r.name, by_tag ? std::string_view(r.ref) : std::string_view(), now);
        }
    }
    const http::Request& req = ex.request();
    if (!accepts(req, m->media_type)) {
        co_await fail(ex, Code::manifest_unknown,
                      "manifest type " + m->media_type + " is not in the Accept header");
        co_return;
    }
    if (notifier_ != nullptr) {
        on_manifest_pull(ex, r.name, r.ref, *m);
    }
    http::Response resp = empty_response(200);
    resp.add("Content-Type", m->media_type);
    resp.add("Docker-Content-Digest", m->digest.str());
    resp.add("ETag", "\"" + m->digest.str() + "\"");
    if (!stale.empty()) {
        add_stale_warning(resp, stale);
    }
    if (etag_matches(req.header("If-None-Match"), m->digest)) {
        resp.status = 304;
        co_await reply(ex, std::move(resp));
        co_return;
    }
    if (req.method == "HEAD") {
        resp.content_length = m->size;
        co_await reply(ex, std::move(resp));
        co_return;
    }
    auto body = co_await store_.manifest_body(m);
    if (!body) {
        co_await fail(ex, code_for(body.error(), Code::manifest_unknown), r.ref);
        co_return;
    }
    resp.body = **body;
    if (mirrored != nullptr) {
        stats(*mirrored).served_bytes.fetch_add(resp.body.size(), std::memory_order_relaxed);
    }
    co_await reply(ex, std::move(resp));
}

Task<util::Result<std::string>> Registry::read_manifest_body(http::Exchange& ex) noexcept {
    co_return co_await read_whole_body(ex, store_.config().manifest_bytes_max,
                                       "manifest exceeds the size limit");
}

Task<util::Result<std::string>> read_whole_body(http::Exchange& ex, std::size_t max,
                                                std::string_view too_large) noexcept {
    const http::Request& req = ex.request();
    if (req.content_length && *req.content_length > max) {
        co_return util::Error::of(Errc::too_large, std::string(too_large));
    }
    // Grows with what arrives: a client announcing 4 MiB and trickling bytes
    // does not get 4 MiB reserved up front.
    std::string body;
    for (;;) {
        auto chunk = co_await ex.read_body();
        if (!chunk) {
            co_return std::move(chunk).error();
        }
        if (chunk->empty()) {
            co_return body;
        }
        if (body.size() + chunk->size() > max) {
            co_return util::Error::of(Errc::too_large, std::string(too_large));
        }
        body.append(chunk->data(), chunk->size());
    }
}

} // namespace rp::registry
