// SPDX-License-Identifier: Apache-2.0
#include "storage/insights.hh"

#include <algorithm>
#include <charconv>

namespace rp::storage {

namespace {

constexpr std::string_view insights_header = "ringport-insights 1";

// Adds one to today's count (the days are oldest first; a day only moves on).
void bump(Insights::Days& days, std::int32_t day) {
    if (!days.empty() && days.back().first == day) {
        ++days.back().second;
    } else if (days.empty() || days.back().first < day) {
        days.emplace_back(day, 1);
    } else { // the clock went back: count it where it belongs
        auto it = std::lower_bound(days.begin(), days.end(), std::make_pair(day, std::uint64_t{0}));
        if (it != days.end() && it->first == day) {
            ++it->second;
        } else {
            days.insert(it, {day, 1});
        }
    }
}

std::uint64_t sum(const Insights::Days& days) {
    std::uint64_t n = 0;
    for (const auto& [day, count] : days) {
        n += count;
    }
    return n;
}

void drop_before(Insights::Days& days, std::int32_t first) {
    auto it = std::lower_bound(days.begin(), days.end(), std::make_pair(first, std::uint64_t{0}));
    days.erase(days.begin(), it);
}

// "<day>:<count>,<day>:<count>" (or "-" for none).
void put_days(std::string& out, const Insights::Days& days) {
    if (days.empty()) {
        out += '-';
        return;
    }
    for (std::size_t i = 0; i < days.size(); ++i) {
        if (i != 0) {
            out += ',';
        }
        out += std::to_string(days[i].first);
        out += ':';
        out += std::to_string(days[i].second);
    }
}

template <typename T> bool number(std::string_view s, T* out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && p == s.data() + s.size();
}

bool parse_days(std::string_view s, Insights::Days* out) {
    out->clear();
    if (s == "-") {
        return true;
    }
    while (!s.empty()) {
        auto comma = s.find(',');
        std::string_view item = s.substr(0, comma);
        auto colon = item.find(':');
        std::int32_t day = 0;
        std::uint64_t count = 0;
        if (colon == std::string_view::npos || !number(item.substr(0, colon), &day) ||
            !number(item.substr(colon + 1), &count) ||
            (!out->empty() && out->back().first >= day)) {
            return false;
        }
        out->emplace_back(day, count);
        s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
    }
    return true;
}

// Merges `from` into `into`: per day, the sum (pulls saved before and
// counted since), or with `keep_into` the value `into` has (today's stored
// bytes are the current ones).
void merge(Insights::Days& into, const Insights::Days& from, bool keep_into = false) {
    Insights::Days out;
    out.reserve(into.size() + from.size());
    std::size_t i = 0, j = 0;
    while (i < into.size() || j < from.size()) {
        if (j == from.size() || (i < into.size() && into[i].first < from[j].first)) {
            out.push_back(into[i++]);
        } else if (i == into.size() || from[j].first < into[i].first) {
            out.push_back(from[j++]);
        } else {
            out.emplace_back(into[i].first,
                             keep_into ? into[i].second : into[i].second + from[j].second);
            ++i;
            ++j;
        }
    }
    into = std::move(out);
}

} // namespace

Insights::Stripe& Insights::stripe(std::string_view repo) {
    return s_[std::hash<std::string_view>{}(repo) % stripes];
}

const Insights::Stripe& Insights::stripe(std::string_view repo) const {
    return s_[std::hash<std::string_view>{}(repo) % stripes];
}

void Insights::dirty() { dirty_.store(true, std::memory_order_relaxed); }

void Insights::set_keep_days(std::int32_t days) {
    std::lock_guard lk(meta_mu_);
    keep_days_ = std::max<std::int32_t>(days, 1);
}

std::int32_t Insights::keep_days() const {
    std::lock_guard lk(meta_mu_);
    return keep_days_;
}

void Insights::pulled(std::string_view repo, std::string_view tag, std::int64_t now) {
    const std::int32_t day = day_of(now);
    {
        Stripe& st = stripe(repo);
        std::lock_guard lk(st.mu);
        auto it = st.repos.find(repo);
        if (it == st.repos.end()) {
            it = st.repos.emplace(std::string(repo), RepoEntry{}).first;
        }
        RepoEntry& e = it->second;
        e.at.last_pull = std::max(e.at.last_pull, now);
        bump(e.days, day);
        bump(st.total, day);
        if (!tag.empty()) {
            auto t = e.tags.find(tag);
            if (t == e.tags.end()) {
                t = e.tags.emplace(std::string(tag), Days{}).first;
            }
            bump(t->second, day);
        }
    }
    dirty();
}

void Insights::pushed(std::string_view repo, std::int64_t now) {
    {
        Stripe& st = stripe(repo);
        std::lock_guard lk(st.mu);
        RepoEntry& e = st.repos[std::string(repo)];
        e.at.last_push = std::max(e.at.last_push, now);
    }
    dirty();
}

void Insights::stored(std::int64_t now, std::uint64_t bytes) {
    const std::int32_t day = day_of(now);
    std::lock_guard lk(meta_mu_);
    if (!stored_.empty() && stored_.back().first == day) {
        if (stored_.back().second == bytes) {
            return;
        }
        stored_.back().second = bytes;
    } else if (stored_.empty() || stored_.back().first < day) {
        stored_.emplace_back(day, bytes);
    } else {
        return; // the clock went back: today's value is kept
    }
    drop_before(stored_, day - keep_days_ + 1);
    dirty();
}

Insights::Repo Insights::repo(std::string_view name) const {
    const Stripe& st = stripe(name);
    std::lock_guard lk(st.mu);
    auto it = st.repos.find(name);
    if (it == st.repos.end()) {
        return {};
    }
    Repo r = it->second.at;
    r.pulls = sum(it->second.days);
    return r;
}

std::unordered_map<std::string, Insights::Repo> Insights::repos() const {
    std::unordered_map<std::string, Repo> out;
    for (const Stripe& st : s_) {
        std::lock_guard lk(st.mu);
        for (const auto& [name, e] : st.repos) {
            Repo r = e.at;
            r.pulls = sum(e.days);
            out.emplace(name, r);
        }
    }
    return out;
}

Insights::Days Insights::repo_pulls(std::string_view name) const {
    const Stripe& st = stripe(name);
    std::lock_guard lk(st.mu);
    auto it = st.repos.find(name);
    return it == st.repos.end() ? Days{} : it->second.days;
}

Insights::Days Insights::tag_pulls(std::string_view repo, std::string_view tag) const {
    const Stripe& st = stripe(repo);
    std::lock_guard lk(st.mu);
    auto it = st.repos.find(repo);
    if (it == st.repos.end()) {
        return {};
    }
    auto t = it->second.tags.find(tag);
    return t == it->second.tags.end() ? Days{} : t->second;
}

std::uint64_t Insights::tag_pull_total(std::string_view repo, std::string_view tag) const {
    return sum(tag_pulls(repo, tag));
}

Insights::Days Insights::pulls() const {
    std::map<std::int32_t, std::uint64_t> by_day;
    for (const Stripe& st : s_) {
        std::lock_guard lk(st.mu);
        for (const auto& [day, count] : st.total) {
            by_day[day] += count;
        }
    }
    return Days(by_day.begin(), by_day.end());
}

Insights::Days Insights::stored_bytes() const {
    std::lock_guard lk(meta_mu_);
    return stored_;
}

void Insights::forget_repo(std::string_view name) {
    Stripe& st = stripe(name);
    std::lock_guard lk(st.mu);
    if (auto it = st.repos.find(name); it != st.repos.end()) {
        st.repos.erase(it);
        dirty();
    }
}

void Insights::forget_tag(std::string_view repo, std::string_view tag) {
    Stripe& st = stripe(repo);
    std::lock_guard lk(st.mu);
    auto it = st.repos.find(repo);
    if (it == st.repos.end()) {
        return;
    }
    if (auto t = it->second.tags.find(tag); t != it->second.tags.end()) {
        it->second.tags.erase(t);
        dirty();
    }
}

void Insights::prune(std::int64_t now,
                     const std::function<bool(std::string_view, std::string_view)>& keep) {
    const std::int32_t first = day_of(now) - keep_days() + 1;
    bool changed = false;
    for (Stripe& st : s_) {
        // The names are copied out and `keep` asked without the stripe's
        // lock (it asks the index): pulls on the stripe never wait for it.
        std::vector<std::pair<std::string, std::string>> names; // (repo, tag); tag "" = repo
        {
            std::lock_guard lk(st.mu);
            const std::size_t days_before = st.total.size();
            drop_before(st.total, first);
            changed = changed || days_before != st.total.size();
            for (auto& [name, e] : st.repos) {
                const std::size_t before = e.days.size();
                drop_before(e.days, first);
                changed = changed || before != e.days.size();
                names.emplace_back(name, std::string());
                for (auto t = e.tags.begin(); t != e.tags.end();) {
                    drop_before(t->second, first);
                    if (t->second.empty()) {
                        t = e.tags.erase(t);
                        changed = true;
                    } else {
                        names.emplace_back(name, t->first);
                        ++t;
                    }
                }
            }
        }
        std::erase_if(names, [&](const auto& n) { return keep(n.first, n.second); });
        std::lock_guard lk(st.mu);
        for (const auto& [repo, tag] : names) {
            auto it = st.repos.find(repo);
            if (it == st.repos.end()) {
                continue;
            }
            changed = true;
            if (tag.empty()) {
                st.repos.erase(it);
            } else {
                it->second.tags.erase(tag);
            }
        }
    }
    std::lock_guard lk(meta_mu_);
    const std::size_t before = stored_.size();
    drop_before(stored_, first);
    if (changed || before != stored_.size()) {
        dirty();
    }
}

// Lines: "s <days>" (stored bytes), "p <days>" (the registry's pulls),
// "r <last_push> <last_pull> <days> <repo>", "t <days> <repo>:<tag>". A
// repository name holds no ':' and no space.
std::string Insights::serialize() const {
    std::string out(insights_header);
    out += '\n';
    {
        std::lock_guard lk(meta_mu_);
        out += "s ";
        put_days(out, stored_);
        out += '\n';
    }
    out += "p ";
    put_days(out, pulls());
    out += '\n';
    for (const Stripe& st : s_) {
        std::lock_guard lk(st.mu);
        for (const auto& [name, e] : st.repos) {
            out +=
                "r " + std::to_string(e.at.last_push) + ' ' + std::to_string(e.at.last_pull) + ' ';
            put_days(out, e.days);
            out += ' ';
            out += name;
            out += '\n';
            for (const auto& [tag, days] : e.tags) {
                out += "t ";
                put_days(out, days);
                out += ' ';
                out += name;
                out += ':';
                out += tag;
                out += '\n';
            }
        }
    }
    return out;
}

void Insights::load(std::string_view text) {
    auto nl = text.find('\n');
    if (text.substr(0, nl) != insights_header) {
        return; // not ours, or a later version: start afresh
    }
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    Days days;
    while (!text.empty()) {
        nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        std::vector<std::string_view> f;
        for (std::size_t at = 0; at <= line.size() && f.size() < 5;) {
            auto sp = line.find(' ', at);
            f.push_back(line.substr(at, sp == std::string_view::npos ? sp : sp - at));
            at = sp == std::string_view::npos ? line.size() + 1 : sp + 1;
        }
        if (f.size() == 2 && f[0] == "s" && parse_days(f[1], &days)) {
            std::lock_guard lk(meta_mu_);
            merge(stored_, days, true);
        } else if (f.size() == 2 && f[0] == "p" && parse_days(f[1], &days)) {
            std::lock_guard lk(s_[0].mu); // pulls() sums the stripes
            merge(s_[0].total, days);
        } else if (f.size() == 5 && f[0] == "r" && !f[4].empty() && parse_days(f[3], &days)) {
            std::int64_t push = 0, pull = 0;
            if (!number(f[1], &push) || !number(f[2], &pull)) {
                continue;
            }
            Stripe& st = stripe(f[4]);
            std::lock_guard lk(st.mu);
            RepoEntry& e = st.repos[std::string(f[4])];
            e.at.last_push = std::max(e.at.last_push, push);
            e.at.last_pull = std::max(e.at.last_pull, pull);
            merge(e.days, days);
        } else if (f.size() == 3 && f[0] == "t" && parse_days(f[1], &days)) {
            auto colon = f[2].find(':');
            if (colon == 0 || colon == std::string_view::npos || colon + 1 == f[2].size()) {
                continue;
            }
            std::string_view repo = f[2].substr(0, colon);
            Stripe& st = stripe(repo);
            std::lock_guard lk(st.mu);
            merge(st.repos[std::string(repo)].tags[std::string(f[2].substr(colon + 1))], days);
        }
    }
}

bool Insights::take_dirty() { return dirty_.exchange(false, std::memory_order_relaxed); }

void Insights::mark_dirty() { dirty(); }

} // namespace rp::storage
