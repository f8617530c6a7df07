// SPDX-License-Identifier: Apache-2.0
#include "storage/activity.hh"

#include <algorithm>
#include <charconv>
#include <utility>

namespace rp::storage {

namespace {

constexpr std::string_view header = "ringport-activity 1 since=";

std::string key_of(std::string_view repo, char sep, std::string_view ref) {
    std::string k;
    k.reserve(repo.size() + 1 + ref.size());
    k.append(repo).push_back(sep);
    k.append(ref);
    return k;
}

std::string tag_key(std::string_view repo, std::string_view tag) { return key_of(repo, ':', tag); }

std::string digest_key(std::string_view repo, std::string_view digest) {
    return key_of(repo, '@', digest);
}

bool number(std::string_view s, std::int64_t* out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && p == s.data() + s.size() && *out >= 0;
}

// Splits "<repo>:<tag>" or "<repo>@<digest>" (a repository name holds
// neither ':' nor '@'; a digest holds ':' after its '@').
bool split_key(std::string_view key, std::string_view* repo, std::string_view* tag,
               std::string_view* digest) {
    auto at = key.find_first_of(":@");
    if (at == 0 || at == std::string_view::npos || at + 1 == key.size()) {
        return false;
    }
    *repo = key.substr(0, at);
    (key[at] == ':' ? *tag : *digest) = key.substr(at + 1);
    return true;
}

} // namespace

Activity::Stripe& Activity::stripe(const std::string& key) {
    return s_[std::hash<std::string>{}(key) % stripes];
}

const Activity::Stripe& Activity::stripe(const std::string& key) const {
    return s_[std::hash<std::string>{}(key) % stripes];
}

template <typename F> void Activity::update(const std::string& key, F f) {
    bool changed = false;
    {
        Stripe& st = stripe(key);
        std::lock_guard lk(st.mu);
        changed = f(st.at[key]);
    }
    if (changed) {
        std::lock_guard lk(meta_mu_);
        dirty_ = true;
    }
}

Activity::Times Activity::get(const std::string& key) const {
    const Stripe& st = stripe(key);
    std::lock_guard lk(st.mu);
    auto it = st.at.find(key);
    return it == st.at.end() ? Times{} : it->second;
}

void Activity::erase(const std::string& key) {
    bool erased = false;
    {
        Stripe& st = stripe(key);
        std::lock_guard lk(st.mu);
        erased = st.at.erase(key) != 0;
    }
    if (erased) {
        std::lock_guard lk(meta_mu_);
        dirty_ = true;
    }
}

void Activity::tag_pushed(std::string_view repo, std::string_view tag, std::int64_t now) {
    update(tag_key(repo, tag), [now](Times& t) { return std::exchange(t.pushed, now) != now; });
}

void Activity::tag_pulled(std::string_view repo, std::string_view tag, std::int64_t now) {
    update(tag_key(repo, tag), [now](Times& t) { return std::exchange(t.pulled, now) != now; });
}

void Activity::digest_pulled(std::string_view repo, std::string_view digest, std::int64_t now) {
    update(digest_key(repo, digest),
           [now](Times& t) { return std::exchange(t.pulled, now) != now; });
}

void Activity::digest_pushed(std::string_view repo, std::string_view digest, std::int64_t now) {
    update(digest_key(repo, digest),
           [now](Times& t) { return std::exchange(t.pushed, now) != now; });
}

void Activity::tag_pushed_if_unknown(std::string_view repo, std::string_view tag, std::int64_t at) {
    update(tag_key(repo, tag), [at](Times& t) {
        if (t.pushed != 0) {
            return false;
        }
        t.pushed = at;
        return true;
    });
}

Activity::Times Activity::tag(std::string_view repo, std::string_view tag) const {
    return get(tag_key(repo, tag));
}

Activity::Times Activity::digest(std::string_view repo, std::string_view digest) const {
    return get(digest_key(repo, digest));
}

void Activity::forget_tag(std::string_view repo, std::string_view tag) {
    erase(tag_key(repo, tag));
}

void Activity::forget_digest(std::string_view repo, std::string_view digest) {
    erase(digest_key(repo, digest));
}

std::size_t Activity::prune(
    const std::function<bool(std::string_view, std::string_view, std::string_view)>& keep) {
    std::size_t gone = 0;
    for (Stripe& st : s_) {
        std::lock_guard lk(st.mu);
        for (auto it = st.at.begin(); it != st.at.end();) {
            std::string_view repo;
            std::string_view tag;
            std::string_view digest;
            if (!split_key(it->first, &repo, &tag, &digest) || !keep(repo, tag, digest)) {
                it = st.at.erase(it);
                ++gone;
            } else {
                ++it;
            }
        }
    }
    if (gone != 0) {
        std::lock_guard lk(meta_mu_);
        dirty_ = true;
    }
    return gone;
}

std::int64_t Activity::tracking_since() const {
    std::lock_guard lk(meta_mu_);
    return since_;
}

void Activity::begin_tracking(std::int64_t now) {
    std::lock_guard lk(meta_mu_);
    if (since_ == 0) {
        since_ = now;
        dirty_ = true;
    }
}

std::string Activity::serialize() const {
    std::string out(header);
    out += std::to_string(tracking_since());
    out += '\n';
    for (const Stripe& st : s_) {
        std::lock_guard lk(st.mu);
        out.reserve(out.size() + st.at.size() * 96);
        for (const auto& [k, t] : st.at) {
            out.append(std::to_string(t.pulled))
                .append(" ")
                .append(std::to_string(t.pushed))
                .append(" ")
                .append(k)
                .append("\n");
        }
    }
    return out;
}

void Activity::load(std::string_view text) {
    // Bounded: each turn consumes a line.
    while (!text.empty()) {
        auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        if (line.starts_with(header)) {
            std::int64_t since = 0;
            if (number(line.substr(header.size()), &since) && since > 0) {
                std::lock_guard lk(meta_mu_);
                since_ = since_ == 0 ? since : std::min(since_, since);
            }
            continue;
        }
        // "<pulled> <pushed> <key>", or the mirror's earlier "<pulled> <key>".
        Times t;
        std::string_view key;
        auto sp = line.find(' ');
        bool ok = sp != std::string_view::npos && number(line.substr(0, sp), &t.pulled);
        if (ok) {
            key = line.substr(sp + 1);
            if (auto sp2 = key.find(' '); sp2 != std::string_view::npos) {
                ok = number(key.substr(0, sp2), &t.pushed);
                key.remove_prefix(sp2 + 1);
            }
        }
        std::string_view repo;
        std::string_view tag;
        std::string_view digest;
        if (!ok || !split_key(key, &repo, &tag, &digest) || (t.pulled == 0 && t.pushed == 0)) {
            continue;
        }
        update(std::string(key), [&t](Times& cur) {
            cur.pulled = std::max(cur.pulled, t.pulled);
            cur.pushed = std::max(cur.pushed, t.pushed);
            return false;
        });
    }
}

bool Activity::take_dirty() {
    std::lock_guard lk(meta_mu_);
    return std::exchange(dirty_, false);
}

void Activity::mark_dirty() {
    std::lock_guard lk(meta_mu_);
    dirty_ = true;
}

std::size_t Activity::size() const {
    std::size_t n = 0;
    for (const Stripe& st : s_) {
        std::lock_guard lk(st.mu);
        n += st.at.size();
    }
    return n;
}

} // namespace rp::storage
