// SPDX-License-Identifier: Apache-2.0
#include "mirror/flights.hh"

#include <algorithm>
#include <utility>

#include "reactor/shard.hh"

namespace rp::mirror {

using util::Errc;

bool Freshness::fresh(const std::string& repo, const std::string& tag, std::uint64_t ttl_s) const {
    std::lock_guard lk(mu_);
    auto it = at_us_.find(repo + ":" + tag);
    return it != at_us_.end() && reactor::monotonic_us() - it->second < ttl_s * 1'000'000;
}

void Freshness::confirmed(const std::string& repo, const std::string& tag) {
    std::lock_guard lk(mu_);
    at_us_[repo + ":" + tag] = reactor::monotonic_us();
}

Flights::Ticket Flights::join(const std::string& key) {
    std::lock_guard lk(mu_);
    auto [it, fresh] = in_flight_.try_emplace(key);
    if (fresh) {
        it->second = std::make_shared<Flight>();
        return Ticket{it->second, true};
    }
    coalesced_.fetch_add(1, std::memory_order_relaxed);
    return Ticket{it->second, false};
}

reactor::Task<util::Result<void>> Flights::follow(const Ticket& t) {
    if (!co_await t.flight->landed.wait()) {
        co_return util::Error::of(Errc::stopped, "stopping");
    }
    co_return t.flight->result;
}

void Flights::land(const std::string& key, const std::shared_ptr<Flight>& f, util::Result<void> r) {
    {
        std::lock_guard lk(mu_);
        in_flight_.erase(key); // later requests see the store (or start afresh after an error)
    }
    f->result = std::move(r);
    f->landed.set();
    f->headed.set();
    f->bytes.close(); // a reader it wakes finds `landed` set and the result
}

bool Flights::in_flight(const std::string& key) const {
    std::lock_guard lk(mu_);
    return in_flight_.contains(key);
}

void Flights::cut_readers() {
    std::lock_guard lk(mu_);
    for (auto& [key, f] : in_flight_) {
        f->bytes.close();
    }
}

bool NotFound::remembered(const std::string& key, std::uint64_t ttl_s) const {
    if (!seen_.get(key, ttl_s)) {
        return false;
    }
    hits_.fetch_add(1, std::memory_order_relaxed);
    return true;
}

bool Breaker::open(const Upstream& u) const {
    if (!is_open(u)) {
        return false;
    }
    short_circuits_.fetch_add(1, std::memory_order_relaxed);
    return true;
}

bool Breaker::is_open(const Upstream& u) const {
    std::lock_guard lk(mu_);
    auto it = by_prefix_.find(u.prefix);
    return it != by_prefix_.end() && it->second.down;
}

bool Breaker::failed(const Upstream& u, std::uint64_t wait_s) {
    std::lock_guard lk(mu_);
    State& st = by_prefix_[u.prefix];
    st.down = true;
    st.retry_at_us =
        std::max(st.retry_at_us,
                 reactor::monotonic_us() + std::min<std::uint64_t>(wait_s, 3600) * 1'000'000);
    return !std::exchange(st.probing, true);
}

void Breaker::succeeded(const Upstream& u) {
    std::lock_guard lk(mu_);
    auto it = by_prefix_.find(u.prefix);
    if (it != by_prefix_.end()) {
        it->second.down = false;
        it->second.retry_at_us = 0;
    }
}

std::uint64_t Breaker::wait_us(const Upstream& u) const {
    std::lock_guard lk(mu_);
    auto it = by_prefix_.find(u.prefix);
    const std::uint64_t now = reactor::monotonic_us();
    return it == by_prefix_.end() || it->second.retry_at_us <= now ? 0
                                                                   : it->second.retry_at_us - now;
}

bool Breaker::probe_done(const Upstream& u) {
    std::lock_guard lk(mu_);
    State& st = by_prefix_[u.prefix];
    if (st.down) {
        return false;
    }
    st.probing = false;
    return true;
}

} // namespace rp::mirror
