// SPDX-License-Identifier: Apache-2.0
#include "auth/basic.hh"

#include <openssl/evp.h>

#include <cstring>
#include <ctime>

#include "auth/bcrypt.hh"
#include "util/strings.hh"

namespace rp::auth {

namespace {

std::int64_t now_ms() {
    timespec ts{};
    (void)::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string_view scheme_of(std::string_view header, std::string_view& rest) noexcept {
    header = util::trim(header);
    std::size_t sp = header.find(' ');
    if (sp == std::string_view::npos) {
        rest = {};
        return header;
    }
    rest = util::trim(header.substr(sp + 1));
    return header.substr(0, sp);
}

// Strict RFC 4648 base64 (padding required); nullopt on anything else.
std::optional<std::string> base64_decode(std::string_view in) {
    if (in.empty() || in.size() % 4 != 0 || in.size() > 4096) {
        return std::nullopt;
    }
    std::string out(in.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
    if (n < 0) {
        return std::nullopt;
    }
    // EVP_DecodeBlock counts padding as zero bytes: drop them.
    std::size_t pad = in.back() == '=' ? (in[in.size() - 2] == '=' ? 2 : 1) : 0;
    for (std::size_t i = 0; i + pad < in.size(); ++i) {
        if (in[i] == '=') {
            return std::nullopt; // padding only at the end
        }
    }
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

} // namespace

HeaderKind authorization_kind(std::string_view header) noexcept {
    if (util::trim(header).empty()) {
        return HeaderKind::none;
    }
    std::string_view rest;
    std::string_view scheme = scheme_of(header, rest);
    if (rest.empty()) {
        return HeaderKind::malformed;
    }
    if (util::iequals(scheme, "Basic")) {
        return HeaderKind::basic;
    }
    if (util::iequals(scheme, "Bearer")) {
        return HeaderKind::bearer;
    }
    return HeaderKind::malformed;
}

std::optional<BasicCredentials> parse_basic(std::string_view header) {
    std::string_view rest;
    if (!util::iequals(scheme_of(header, rest), "Basic")) {
        return std::nullopt;
    }
    auto plain = base64_decode(rest);
    if (!plain) {
        return std::nullopt;
    }
    std::size_t colon = plain->find(':');
    if (colon == std::string::npos || colon == 0) {
        return std::nullopt;
    }
    for (char c : *plain) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            return std::nullopt; // control characters in a user or password: refuse
        }
    }
    BasicCredentials c;
    c.user = plain->substr(0, colon);
    c.password = plain->substr(colon + 1);
    return c;
}

std::string_view client_address(std::string_view peer) noexcept {
    if (!peer.empty() && peer.front() == '[') {
        std::size_t close = peer.find(']');
        return close == std::string_view::npos ? peer : peer.substr(1, close - 1);
    }
    std::size_t colon = peer.rfind(':');
    return colon == std::string_view::npos ? peer : peer.substr(0, colon);
}

std::size_t BasicAuthenticator::KeyHash::operator()(const Key& k) const noexcept {
    std::size_t h = 0;
    std::memcpy(&h, k.data(), sizeof h); // already a keyed hash: any 8 bytes will do
    return h;
}

BasicAuthenticator::BasicAuthenticator(std::unique_ptr<HtpasswdFile> file, BasicConfig cfg,
                                       reactor::ThreadPool& pool)
    : file_(std::move(file)), cfg_(cfg), pool_(pool) {}

const std::string& BasicAuthenticator::dummy_hash(int cost) {
    // A hash of the file's own cost for a password nobody has: an unknown
    // user costs what a known one does, so timing does not tell which exist.
    std::lock_guard lk(mu_);
    auto it = dummy_hashes_.find(cost);
    if (it == dummy_hashes_.end()) {
        it = dummy_hashes_.emplace(cost, bcrypt_hash("ringport: no such user", cost).value_or(""))
                 .first;
    }
    return it->second;
}

bool BasicAuthenticator::take_attempt(std::string_view addr, int& retry_after_s) {
    const double rate = cfg_.failures_per_minute / 60000.0; // attempts per ms
    std::int64_t now = now_ms();
    std::lock_guard lk(mu_);
    if (buckets_.size() >= 100000) {
        // Bounded: forget the buckets that have refilled; only when every one
        // is in use does a flood of addresses forget them all.
        for (auto it = buckets_.begin(); it != buckets_.end();) {
            bool full = it->second.tokens + (now - it->second.at_ms) * rate >=
                        static_cast<double>(cfg_.failures_per_minute);
            it = full ? buckets_.erase(it) : std::next(it);
        }
        if (buckets_.size() >= 100000) {
            buckets_.clear();
        }
    }
    auto [it, fresh] = buckets_.try_emplace(std::string(addr));
    Bucket& b = it->second;
    if (fresh) {
        b.tokens = cfg_.failures_per_minute;
    } else {
        b.tokens = std::min<double>(cfg_.failures_per_minute, b.tokens + (now - b.at_ms) * rate);
    }
    b.at_ms = now;
    if (b.tokens < 1.0) {
        retry_after_s = static_cast<int>((1.0 - b.tokens) / rate / 1000.0) + 1;
        return false;
    }
    b.tokens -= 1.0; // taken before the check, so concurrent guesses count too
    return true;
}

void BasicAuthenticator::give_back(std::string_view addr) {
    std::lock_guard lk(mu_);
    auto it = buckets_.find(std::string(addr));
    if (it != buckets_.end()) {
        it->second.tokens = std::min<double>(cfg_.failures_per_minute, it->second.tokens + 1.0);
    }
}

void BasicAuthenticator::remember(const Key& k, const std::string& hash) {
    std::int64_t now_s = now_ms() / 1000;
    std::lock_guard lk(mu_);
    if (good_.size() >= cfg_.cache_max) {
        for (auto it = good_.begin(); it != good_.end();) {
            it = it->second.expires_s <= now_s ? good_.erase(it) : std::next(it);
        }
        if (good_.size() >= cfg_.cache_max) {
            good_.erase(good_.begin()); // still full: forget one
        }
    }
    good_[k] = Good{hash, now_s + cfg_.cache_ttl_s};
}

reactor::Task<BasicAuthenticator::Result> BasicAuthenticator::check(BasicCredentials cred,
                                                                    std::string peer) {
    struct Wipe { // the password leaves memory on every way out
        std::string& s;
        ~Wipe() { OPENSSL_cleanse(s.data(), s.size()); }
    } wipe{cred.password};
    const std::string addr(client_address(peer));
    Result out;
    std::optional<std::string> hash = file_->hash_of(cred.user);
    const Key key = keyed_(cred.user, cred.password);
    // A check remembered as good: no bcrypt, and no failure budget spent.
    if (hash) {
        std::lock_guard lk(mu_);
        auto g = good_.find(key);
        if (g != good_.end() && g->second.expires_s > now_ms() / 1000 &&
            secret_equal(g->second.hash, *hash)) {
            out.outcome = Outcome::ok;
            out.user = cred.user;
            co_return out;
        }
    }
    if (!take_attempt(addr, out.retry_after_s)) {
        rate_limited_.fetch_add(1, std::memory_order_relaxed);
        out.outcome = Outcome::rate_limited;
        co_return out;
    }
    std::shared_ptr<Flight> flight;
    bool mine = false;
    {
        std::lock_guard lk(mu_);
        auto [it, fresh] = flights_.try_emplace(key);
        if (fresh) {
            it->second = std::make_shared<Flight>();
            mine = true;
        }
        flight = it->second;
    }
    if (mine) {
        // However many addresses ask at once, so many checks wait for the pool.
        if (verifying_.fetch_add(1, std::memory_order_relaxed) >= kVerifyingMax) {
            verifying_.fetch_sub(1, std::memory_order_relaxed);
            {
                std::lock_guard lk(mu_);
                flights_.erase(key);
            }
            flight->done.set(); // waiters see ok == false and count a failure
            give_back(addr);
            rate_limited_.fetch_add(1, std::memory_order_relaxed);
            out.outcome = Outcome::rate_limited;
            out.retry_after_s = 1;
            co_return out;
        }
        bool ok = false;
        const std::string& against = hash ? *hash : dummy_hash(file_->max_cost());
        co_await pool_.run([&] { ok = bcrypt_verify(cred.password, against) && hash.has_value(); });
        verifying_.fetch_sub(1, std::memory_order_relaxed);
        verifications_.fetch_add(1, std::memory_order_relaxed);
        if (ok) {
            remember(key, *hash);
        }
        {
            std::lock_guard lk(mu_);
            flight->ok = ok;
            flights_.erase(key);
        }
        flight->done.set();
    } else {
        (void)co_await flight->done.wait();
    }
    if (!flight->ok) {
        failures_.fetch_add(1, std::memory_order_relaxed);
        out.outcome = Outcome::bad_credentials;
        co_return out;
    }
    give_back(addr);
    out.outcome = Outcome::ok;
    out.user = cred.user;
    co_return out;
}

} // namespace rp::auth
