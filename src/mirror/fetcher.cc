// SPDX-License-Identifier: Apache-2.0
#include "mirror/fetcher.hh"

#include <simdjson.h>
#include <sys/stat.h>

#include <charconv>
#include <fstream>

#include <utility>

#include "reactor/shard.hh"
#include "util/assert.hh"
#include "util/log.hh"
#include "util/strings.hh"

namespace rp::mirror {

using util::Errc;
using util::Error;
using util::Result;

std::optional<Challenge> parse_challenge(std::string_view h) {
    h = util::trim(h);
    auto sp = h.find(' ');
    Challenge c;
    c.scheme = util::to_lower(h.substr(0, sp));
    if (c.scheme.empty()) {
        return std::nullopt;
    }
    if (sp == std::string_view::npos) {
        return c;
    }
    std::string_view rest = h.substr(sp + 1);
    while (!rest.empty()) {
        rest = util::trim(rest);
        auto eq = rest.find('=');
        if (eq == std::string_view::npos) {
            break;
        }
        std::string key = util::to_lower(util::trim(rest.substr(0, eq)));
        rest = util::trim(rest.substr(eq + 1));
        std::string value;
        if (!rest.empty() && rest.front() == '"') {
            rest.remove_prefix(1);
            while (!rest.empty() && rest.front() != '"') {
                if (rest.front() == '\\' && rest.size() > 1) {
                    rest.remove_prefix(1);
                }
                value.push_back(rest.front());
                rest.remove_prefix(1);
            }
            if (rest.empty()) {
                return std::nullopt; // unterminated quote
            }
            rest.remove_prefix(1);
        } else {
            auto end = rest.find(',');
            value = std::string(util::trim(rest.substr(0, end)));
            rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
        }
        if (key == "realm") {
            c.realm = std::move(value);
        } else if (key == "service") {
            c.service = std::move(value);
        } else if (key == "scope") {
            c.scope = std::move(value);
        } else if (key == "error") {
            c.error = std::move(value);
        }
        rest = util::trim(rest);
        if (!rest.empty() && rest.front() == ',') {
            rest.remove_prefix(1);
        } else if (!rest.empty()) {
            break; // a second challenge follows: the first is enough
        }
    }
    return c;
}

Result<TokenAnswer> parse_token_answer(std::string_view json) {
    simdjson::dom::parser parser;
    simdjson::padded_string padded(json);
    simdjson::dom::object o;
    if (parser.parse(padded).get_object().get(o) != simdjson::SUCCESS) {
        return Error::of(Errc::invalid, "token answer is not a JSON object");
    }
    TokenAnswer t;
    std::string_view tok;
    if (o["token"].get_string().get(tok) != simdjson::SUCCESS || tok.empty()) {
        if (o["access_token"].get_string().get(tok) != simdjson::SUCCESS || tok.empty()) {
            return Error::of(Errc::invalid, "token answer has no token");
        }
    }
    t.token = std::string(tok);
    std::int64_t exp = 0;
    if (o["expires_in"].get_int64().get(exp) == simdjson::SUCCESS && exp > 0) {
        t.expires_in_s = static_cast<std::uint64_t>(exp);
    }
    return t;
}

Fetcher::Fetcher(unsigned shards) : shards_(shards) {}

Fetcher::~Fetcher() = default;

Fetcher::PerShard& Fetcher::here() {
    reactor::Shard* s = reactor::Shard::current();
    RP_ASSERT(s != nullptr && s->id() < shards_.size());
    PerShard& p = shards_[s->id()];
    if (!p.client) {
        p.client = std::make_unique<net::Client>();
        if (auto r = p.client->init(); !r) {
            util::fatal("curl_multi_init", 0);
        }
    }
    return p;
}

namespace {

constexpr std::size_t tokens_max = 4096; // process-wide

// A token is dropped this long before the upstream says it expires.
constexpr std::uint64_t token_margin_us = 10'000'000;

std::string scope_for(const std::string& name) { return "repository:" + name + ":pull"; }

std::string base_url(const Upstream& u) {
    std::string url = u.url;
    while (!url.empty() && url.back() == '/') {
        url.pop_back();
    }
    return url;
}

Error upstream_error(const Upstream& u, long status, std::string_view what) {
    std::string d = "upstream " + u.url + " answered " + std::to_string(status) + " for ";
    d.append(what);
    if (status == 404) {
        return Error::of(Errc::not_found, std::move(d));
    }
    if (status == 401 || status == 403) {
        return Error::of(Errc::unsupported, std::move(d));
    }
    if (status == 429) {
        return Error::of(Errc::busy, std::move(d));
    }
    return Error::of(Errc::closed, std::move(d));
}

// An answer about a repository: as upstream_error, except that a 401 whose
// Bearer challenge says `insufficient_scope` even with a token is Docker
// Hub's way of saying the repository does not exist (or is private): not
// found, so the client gets a 404 and the answer is remembered.
Error answer_error(const Upstream& u, const net::Response& r, std::string_view what) {
    if (r.status == 401) {
        const std::string* h = r.header("WWW-Authenticate");
        std::optional<Challenge> c = h ? parse_challenge(*h) : std::nullopt;
        if (c && c->scheme == "bearer" && c->error == "insufficient_scope") {
            std::string d = "upstream " + u.url + " refused access to ";
            d.append(what).append(
                " (insufficient_scope): it does not exist there, or it needs credentials");
            return Error::of(Errc::not_found, std::move(d));
        }
    }
    return upstream_error(u, r.status, what);
}

} // namespace

reactor::Task<Result<Fetcher::Token>> Fetcher::fetch_token(PerShard& s, const Upstream& u,
                                                           const Challenge& c) {
    if (c.realm.empty() || (!c.realm.starts_with("https://") && !c.realm.starts_with("http://"))) {
        co_return Error::of(Errc::unsupported, "upstream " + u.url +
                                                   " sent a bearer challenge "
                                                   "with no usable realm");
    }
    net::Request tr = request_for(u);
    tr.url = c.realm;
    tr.url.append(c.realm.find('?') == std::string::npos ? "?" : "&");
    tr.url.append("service=").append(util::percent_encode(c.service));
    if (!c.scope.empty()) {
        tr.url.append("&scope=").append(util::percent_encode(c.scope));
    }
    tr.body_max = 64U << 10U;
    if (std::string cred = credentials(u); !cred.empty()) {
        if (credentials_allowed(u.url, c.realm, u.auth_hosts, psl_.get())) {
            tr.headers.push_back("Authorization: Basic " + util::base64(cred));
        } else {
            withheld_.fetch_add(1, std::memory_order_relaxed); // anonymous, as asked
        }
    }
    requests_.fetch_add(1, std::memory_order_relaxed);
    auto r = co_await s.client->fetch(std::move(tr));
    if (!r) {
        co_return std::move(r).error();
    }
    if (r->status != 200) {
        co_return upstream_error(u, r->status, "a token");
    }
    auto t = parse_token_answer(r->body);
    if (!t) {
        co_return Error::of(Errc::closed,
                            "upstream " + u.url + " token endpoint: " + t.error().detail);
    }
    const std::uint64_t life_us = std::min<std::uint64_t>(t->expires_in_s, 86400) * 1'000'000;
    co_return Token{std::move(t->token),
                    reactor::monotonic_us() +
                        (life_us > 2 * token_margin_us ? life_us - token_margin_us : life_us / 2),
                    0};
}

reactor::Task<Result<bool>> Fetcher::answer_challenge(PerShard& s, const Upstream& u,
                                                      const net::Response& r,
                                                      const std::string& scope,
                                                      const std::string& key, std::uint64_t sent) {
    const std::string* h = r.header("WWW-Authenticate");
    std::optional<Challenge> c = h ? parse_challenge(*h) : std::nullopt;
    if (c && c->scheme == "basic") {
        // Basic goes to the configured upstream itself: retry with the
        // credentials, and send them up front from now on.
        if (credentials(u).empty() || wants_basic(u)) {
            co_return false; // none to give, or they were sent and refused
        }
        std::lock_guard lk(cred_mu_);
        basic_.insert(u.prefix);
        co_return true;
    }
    if (!c || c->scheme != "bearer") {
        co_return false;
    }
    if (c->scope.empty()) {
        c->scope = scope;
    }
    std::shared_ptr<TokenFetch> f;
    bool lead = false;
    {
        std::lock_guard lk(tokens_mu_);
        auto it = tokens_.find(key);
        if (it != tokens_.end() && it->second.generation != sent &&
            it->second.expires_us > reactor::monotonic_us()) {
            co_return true; // renewed since this request was sent
        }
        auto [fi, fresh] = token_fetches_.try_emplace(key);
        if (fresh) {
            fi->second = std::make_shared<TokenFetch>();
        }
        f = fi->second;
        lead = fresh;
    }
    if (!lead) {
        if (!co_await f->done.wait()) {
            co_return Error::of(Errc::stopped, "stopping");
        }
        if (!f->result) {
            co_return f->result.error();
        }
        co_return true;
    }
    auto t = co_await fetch_token(s, u, *c);
    {
        std::lock_guard lk(tokens_mu_);
        if (t) {
            // Scopes follow the repositories clients ask for, existing or
            // not: the table is capped, expired tokens going first.
            if (tokens_.size() >= tokens_max && !tokens_.contains(key)) {
                const std::uint64_t now = reactor::monotonic_us();
                std::erase_if(tokens_,
                              [now](const auto& kv) { return kv.second.expires_us <= now; });
                if (tokens_.size() >= tokens_max) {
                    tokens_.erase(tokens_.begin());
                }
            }
            t->generation = ++token_generation_;
            tokens_[key] = std::move(*t);
            f->result = util::Ok{};
        } else {
            f->result = t.error();
        }
        token_fetches_.erase(key);
    }
    f->done.set();
    if (!f->result) {
        co_return f->result.error();
    }
    co_return true;
}

net::Request Fetcher::authorized(const Upstream& u, const std::string& key, const net::Request& req,
                                 std::uint64_t* sent) {
    net::Request r = req;
    *sent = 0;
    std::string bearer;
    {
        std::lock_guard lk(tokens_mu_);
        auto it = tokens_.find(key);
        if (it != tokens_.end() && it->second.expires_us > reactor::monotonic_us()) {
            bearer = it->second.value;
            *sent = it->second.generation;
        }
    }
    if (*sent != 0) {
        r.headers.push_back("Authorization: Bearer " + bearer);
    } else if (wants_basic(u)) {
        if (std::string cred = credentials(u); !cred.empty()) {
            r.headers.push_back("Authorization: Basic " + util::base64(cred));
        }
    }
    requests_.fetch_add(1, std::memory_order_relaxed);
    return r;
}

reactor::Task<Result<net::Response>> Fetcher::send(PerShard& s, const Upstream& u, net::Request req,
                                                   const std::string& scope) {
    const std::string key = u.prefix + " " + scope;
    for (int attempt = 0; attempt < 2; ++attempt) {
        std::uint64_t sent = 0;
        net::Request r = authorized(u, key, req, &sent);
        auto resp = co_await s.client->fetch(std::move(r));
        if (resp) {
            observe(u, *resp);
        }
        if (!resp || resp->status != 401 || attempt == 1) {
            co_return resp;
        }
        auto renewed = co_await answer_challenge(s, u, *resp, scope, key, sent);
        if (!renewed) {
            co_return std::move(renewed).error();
        }
        if (!*renewed) {
            co_return resp; // Basic needs credentials, which come with their config
        }
    }
    co_return Error::of(Errc::unsupported, "upstream " + u.url + " refused the token");
}

net::Request Fetcher::request_for(const Upstream& u) {
    net::Request req;
    req.connect_timeout_ms = u.connect_timeout_ms;
    req.first_byte_timeout_ms = u.first_byte_timeout_ms;
    req.stall_timeout_ms = u.stall_timeout_ms;
    req.ca_file = u.ca_file;
    req.verify_tls = u.tls_verify;
    return req;
}

bool Fetcher::wants_basic(const Upstream& u) {
    std::lock_guard lk(cred_mu_);
    return basic_.contains(u.prefix);
}

std::string Fetcher::credentials(const Upstream& u) {
    if (u.credentials_file.empty()) {
        return u.username.empty() ? std::string() : u.username + ":" + u.password;
    }
    std::lock_guard lk(cred_mu_);
    FileCredentials& f = file_creds_[u.prefix];
    const std::uint64_t now = reactor::monotonic_us();
    if (f.checked_us != 0 && now - f.checked_us < 1'000'000) {
        return f.value;
    }
    const bool first = f.checked_us == 0;
    f.checked_us = now;
    // A small file, looked at once a second at most: a stat, and a read
    // only when it changed (the page cache has both).
    struct stat st {};
    if (::stat(u.credentials_file.c_str(), &st) != 0) {
        if (first || f.mtime_ns != -1) {
            RP_LOG_WARN("mirror %s: credentials_file %s is gone; requests go without credentials",
                        u.prefix.c_str(), u.credentials_file.c_str());
        }
        f = FileCredentials{{}, now, -1, 0, 0};
        return {};
    }
    const std::int64_t mtime = st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec;
    if (mtime == f.mtime_ns && static_cast<std::uint64_t>(st.st_size) == f.size &&
        st.st_ino == f.ino) {
        return f.value;
    }
    std::ifstream in(u.credentials_file);
    std::string line;
    std::getline(in, line);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
        line.pop_back();
    }
    if (line.find(':') == std::string::npos) {
        RP_LOG_WARN("mirror %s: credentials_file %s does not start with user:password; "
                    "requests go without credentials",
                    u.prefix.c_str(), u.credentials_file.c_str());
        line.clear();
    }
    f.value = std::move(line);
    f.mtime_ns = mtime;
    f.size = static_cast<std::uint64_t>(st.st_size);
    f.ino = st.st_ino;
    return f.value;
}

net::Request Fetcher::manifest_request(const Upstream& u, const std::string& name,
                                       const std::string& ref, const std::string& accept) const {
    net::Request req = request_for(u);
    req.url = base_url(u);
    req.url.append("/v2/").append(name).append("/manifests/").append(ref);
    req.headers.push_back("Accept: " + accept);
    return req;
}

reactor::Task<Result<std::string>> Fetcher::manifest_digest(const Upstream& u, std::string name,
                                                            std::string ref, std::string accept,
                                                            std::uint32_t deadline_ms) {
    PerShard& s = here();
    net::Request req = manifest_request(u, name, ref, accept);
    req.method = "HEAD";
    req.total_timeout_ms = deadline_ms;
    auto r = co_await send(s, u, std::move(req), scope_for(name));
    if (!r) {
        co_return std::move(r).error();
    }
    if (r->status != 200) {
        co_return answer_error(u, *r, "manifest " + name + ":" + ref);
    }
    const std::string* dg = r->header("Docker-Content-Digest");
    co_return dg != nullptr ? *dg : std::string();
}

reactor::Task<Result<Fetched>> Fetcher::manifest(const Upstream& u, std::string name,
                                                 std::string ref, std::string accept,
                                                 std::size_t body_max) {
    PerShard& s = here();
    net::Request req = manifest_request(u, name, ref, accept);
    req.body_max = body_max;
    auto r = co_await send(s, u, std::move(req), scope_for(name));
    if (!r) {
        co_return std::move(r).error();
    }
    if (r->status != 200) {
        co_return answer_error(u, *r, "manifest " + name + ":" + ref);
    }
    Fetched f;
    f.body = std::move(r->body);
    if (const std::string* ct = r->header("Content-Type")) {
        f.media_type = std::string(util::trim(std::string_view(*ct).substr(0, ct->find(';'))));
    }
    if (const std::string* dg = r->header("Docker-Content-Digest")) {
        f.digest_header = *dg;
    }
    co_return f;
}

reactor::Task<Result<std::unique_ptr<net::Download>>>
Fetcher::blob(const Upstream& u, std::string name, std::string digest, std::uint64_t body_max,
              std::uint64_t from) {
    PerShard& s = here();
    const std::string scope = scope_for(name);
    const std::string key = u.prefix + " " + scope;
    net::Request req = request_for(u);
    req.url = base_url(u);
    req.url.append("/v2/").append(name).append("/blobs/").append(digest);
    req.follow_redirects = true;
    req.body_max = body_max;
    if (from > 0) {
        req.headers.push_back("Range: bytes=" + std::to_string(from) + "-");
    }
    for (int attempt = 0; attempt < 2; ++attempt) {
        std::uint64_t sent = 0;
        net::Request r = authorized(u, key, req, &sent);
        std::unique_ptr<net::Download> d = s.client->download(std::move(r));
        auto h = co_await d->head();
        if (!h) {
            co_return std::move(h).error();
        }
        observe(u, **h);
        const long status = (*h)->status;
        if (status == 200) {
            co_return d;
        }
        if (status == 206 && from > 0) {
            const std::string* cr = (*h)->header("Content-Range");
            if (cr != nullptr && cr->starts_with("bytes " + std::to_string(from) + "-")) {
                co_return d;
            }
            co_return Error::of(Errc::closed, "upstream " + u.url + " resumed " + digest +
                                                  " at the wrong offset");
        }
        util::Result<bool> renewed = false;
        if (status == 401 && attempt == 0) {
            renewed = co_await answer_challenge(s, u, **h, scope, key, sent);
            if (!renewed) {
                co_return std::move(renewed).error();
            }
        }
        if (!*renewed) {
            co_return answer_error(u, **h,
                                   std::string("blob ").append(name).append("@").append(digest));
        }
    }
    co_return Error::of(Errc::unsupported, "upstream " + u.url + " refused the token");
}

reactor::Task<Result<Listed>> Fetcher::listing(const Upstream& u, std::string name,
                                               std::string what, std::string accept,
                                               std::size_t body_max) {
    PerShard& s = here();
    net::Request req = request_for(u);
    req.url = base_url(u);
    req.url.append("/v2/").append(name).append("/").append(what);
    if (!accept.empty()) {
        req.headers.push_back("Accept: " + accept);
    }
    req.body_max = body_max;
    auto r = co_await send(s, u, std::move(req), scope_for(name));
    if (!r) {
        co_return std::move(r).error();
    }
    if (r->status != 200) {
        co_return answer_error(u, *r, name + "/" + what);
    }
    Listed l;
    l.body = std::move(r->body);
    if (const std::string* ct = r->header("Content-Type")) {
        l.content_type = *ct;
    }
    if (const std::string* link = r->header("Link")) {
        l.link = *link;
    }
    l.filters_applied = r->header("OCI-Filters-Applied") != nullptr;
    co_return l;
}

reactor::Task<bool> Fetcher::ping(const Upstream& u, std::uint32_t deadline_ms) {
    PerShard& s = here();
    net::Request req = request_for(u);
    req.url = base_url(u) + "/v2/";
    req.total_timeout_ms = deadline_ms;
    req.body_max = 64U << 10U;
    requests_.fetch_add(1, std::memory_order_relaxed);
    auto r = co_await s.client->fetch(std::move(req));
    if (!r) {
        co_return false;
    }
    observe(u, *r);
    co_return r->status < 500 && r->status != 429;
}

namespace {

// "76;w=21600" -> 76; a plain number too.
std::optional<std::int64_t> leading_number(std::string_view v) {
    v = util::trim(v);
    std::int64_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || p == v.data() || n < 0) {
        return std::nullopt;
    }
    return n;
}

} // namespace

void Fetcher::observe(const Upstream& u, const net::Response& r) {
    const std::string* ra =
        (r.status == 429 || r.status == 503) ? r.header("Retry-After") : nullptr;
    const std::string* rl = r.header("ratelimit-remaining");
    if (ra == nullptr && rl == nullptr) {
        return;
    }
    std::lock_guard lk(limits_mu_);
    Limits& l = limits_[u.prefix];
    if (ra != nullptr) {
        // Seconds; an HTTP date is taken as the mirror's own retry_after_s.
        auto n = leading_number(*ra);
        l.retry_after_s = n && ra->find_first_not_of("0123456789 ") == std::string::npos
                              ? static_cast<std::uint64_t>(*n)
                              : u.retry_after_s;
    }
    if (auto n = rl != nullptr ? leading_number(*rl) : std::nullopt) {
        l.remaining = *n;
        l.remaining_at_us = reactor::monotonic_us();
    }
}

Fetcher::Limits Fetcher::limits(const Upstream& u) const {
    std::lock_guard lk(limits_mu_);
    auto it = limits_.find(u.prefix);
    return it == limits_.end() ? Limits{} : it->second;
}

bool Fetcher::rate_limited(const Upstream& u) const {
    const Limits l = limits(u);
    return l.remaining >= 0 && static_cast<std::uint64_t>(l.remaining) < u.ratelimit_min &&
           reactor::monotonic_us() - l.remaining_at_us < u.retry_after_s * 1'000'000;
}

bool upstream_down(const util::Error& e) noexcept {
    return e.kind == Errc::closed || e.kind == Errc::timeout || e.kind == Errc::busy;
}

} // namespace rp::mirror
