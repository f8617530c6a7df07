// SPDX-License-Identifier: Apache-2.0
#include "storage/names.hh"

namespace rp::storage {

static bool alnum_lower(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool valid_component(std::string_view c) noexcept {
    if (c.empty() || !alnum_lower(c.front()) || !alnum_lower(c.back())) {
        return false;
    }
    std::size_t i = 0;
    while (i < c.size()) {
        if (alnum_lower(c[i])) {
            ++i;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        std::size_t j = i;
        while (j < c.size() && !alnum_lower(c[j])) {
            ++j;
        }
        std::string_view sep = c.substr(i, j - i);
        bool ok = sep == "." || sep == "_" || sep == "__" ||
                  sep.find_first_not_of('-') == std::string_view::npos;
        if (!ok) {
            return false;
        }
        i = j;
    }
    return true;
}

bool valid_repo_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > repo_name_bytes_max) {
        return false;
    }
    while (true) {
        auto slash = name.find('/');
        if (!valid_component(name.substr(0, slash))) {
            return false;
        }
        if (slash == std::string_view::npos) {
            return true;
        }
        name.remove_prefix(slash + 1);
    }
}

bool valid_tag(std::string_view tag) noexcept {
    if (tag.empty() || tag.size() > tag_bytes_max) {
        return false;
    }
    for (std::size_t i = 0; i < tag.size(); ++i) {
        char c = tag[i];
        bool word =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        if (word || (i > 0 && (c == '.' || c == '-'))) {
            continue;
        }
        return false;
    }
    return true;
}

bool repo_name_less(std::string_view a, std::string_view b) noexcept {
    std::size_t n = a.size() < b.size() ? a.size() : b.size();
    for (std::size_t i = 0; i < n; ++i) {
        if (a[i] == b[i]) {
            continue;
        }
        if (a[i] == '/') {
            return true;
        }
        if (b[i] == '/') {
            return false;
        }
        return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[i]);
    }
    return a.size() < b.size();
}

} // namespace rp::storage
