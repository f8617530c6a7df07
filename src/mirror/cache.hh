// SPDX-License-Identifier: Apache-2.0
#pragma once

// What a mirror's cache keeps: which references are pinned. When each cached
// manifest was last pulled (for eviction, least recently pulled first) is
// storage::Activity's.

#include <string>
#include <string_view>
#include <vector>

namespace rp::mirror {

// `*` matches any run of characters (`/` and `:` included), `?` one. Pure.
bool glob_match(std::string_view pattern, std::string_view s) noexcept;

// Whether any pin matches `ref` ("<upstream repository>:<tag>" or
// "<upstream repository>@<digest>"). Pure.
bool pinned(const std::vector<std::string>& pins, std::string_view ref) noexcept;

} // namespace rp::mirror
