// SPDX-License-Identifier: Apache-2.0
#pragma once

// The web UI's files, compiled into the binary from src/ui/app/ by
// tools/embed_assets.py: no file is read at run time.

#include <span>
#include <string_view>

namespace rp::ui {

struct Asset {
    std::string_view name; // the file's base name: /ui/assets/<name>
    std::string_view type; // Content-Type
    std::string_view body;
    std::string_view gzip; // the body gzipped (level 9), for clients that accept it
    std::string_view etag; // strong, quoted: the first 128 bits of the body's SHA-256
};

// Every asset, sorted by name.
std::span<const Asset> assets() noexcept;
// One asset by name, or null.
const Asset* find_asset(std::string_view name) noexcept;

} // namespace rp::ui
