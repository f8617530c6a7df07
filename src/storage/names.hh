// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <string_view>

namespace rp::storage {

constexpr std::size_t repo_name_bytes_max = 255;
constexpr std::size_t tag_bytes_max = 128;

// OCI distribution-spec grammars. A name that passes can never escape the
// root: components are [a-z0-9]+ joined by . _ __ or -+, separated by '/'.
//   name: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
//   tag:  [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
bool valid_repo_name(std::string_view name) noexcept;
bool valid_tag(std::string_view tag) noexcept;

// Distribution's catalog order: lexical by path component, so "a/b" sorts
// before "a-b" (as if '/' were the smallest character).
bool repo_name_less(std::string_view a, std::string_view b) noexcept;

struct RepoNameLess {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const noexcept {
        return repo_name_less(a, b);
    }
};

} // namespace rp::storage
