// SPDX-License-Identifier: Apache-2.0
#include "mirror/cache.hh"

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

} // namespace rp::mirror
