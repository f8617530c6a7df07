// SPDX-License-Identifier: Apache-2.0
#include "mirror/cache.hh"

#include <charconv>
#include <utility>

namespace rp::mirror {

bool glob_match(std::string_view p, std::string_view s) noexcept {
    // Iterative, with one backtrack point: linear in practice, never recursive.
    std::size_t pi = 0;
    std::size_t si = 0;
    std::size_t star = std::string_view::npos;
    std::size_t mark = 0;
    while (si < s.size()) {
        if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
            ++pi;
            ++si;
        } else if (pi < p.size() && p[pi] == '*') {
            star = pi++;
            mark = si;
        } else if (star != std::string_view::npos) {
            pi = star + 1;
            si = ++mark;
        } else {
            return false;
        }
    }
    while (pi < p.size() && p[pi] == '*') {
        ++pi;
    }
    return pi == p.size();
}

bool pinned(const std::vector<std::string>& pins, std::string_view ref) noexcept {
    for (const std::string& p : pins) {
        if (glob_match(p, ref)) {
            return true;
        }
    }
    return false;
}

namespace {
std::string key_of(std::string_view repo, std::string_view digest) {
    std::string k(repo);
    k.push_back('@');
    k.append(digest);
    return k;
}
} // namespace

void AccessTimes::pulled(std::string_view repo, std::string_view digest, std::int64_t now_s) {
    std::lock_guard lk(mu_);
    std::int64_t& t = at_[key_of(repo, digest)];
    if (t != now_s) {
        t = now_s;
        dirty_ = true;
    }
}

std::int64_t AccessTimes::last(std::string_view repo, std::string_view digest) const {
    std::lock_guard lk(mu_);
    auto it = at_.find(key_of(repo, digest));
    return it == at_.end() ? 0 : it->second;
}

void AccessTimes::forget(std::string_view repo, std::string_view digest) {
    std::lock_guard lk(mu_);
    if (at_.erase(key_of(repo, digest)) != 0) {
        dirty_ = true;
    }
}

std::string AccessTimes::serialize() const {
    std::lock_guard lk(mu_);
    std::string out;
    out.reserve(at_.size() * 100);
    for (const auto& [k, t] : at_) {
        out.append(std::to_string(t)).append(" ").append(k).append("\n");
    }
    return out;
}

void AccessTimes::load(std::string_view text) {
    std::lock_guard lk(mu_);
    while (!text.empty()) {
        auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        auto sp = line.find(' ');
        if (sp == std::string_view::npos || line.find('@', sp) == std::string_view::npos) {
            continue;
        }
        std::int64_t t = 0;
        auto [p, ec] = std::from_chars(line.data(), line.data() + sp, t);
        if (ec != std::errc() || p != line.data() + sp) {
            continue;
        }
        std::int64_t& cur = at_[std::string(line.substr(sp + 1))];
        if (t > cur) {
            cur = t;
        }
    }
}

bool AccessTimes::take_dirty() {
    std::lock_guard lk(mu_);
    return std::exchange(dirty_, false);
}

std::size_t AccessTimes::size() const {
    std::lock_guard lk(mu_);
    return at_.size();
}

} // namespace rp::mirror
