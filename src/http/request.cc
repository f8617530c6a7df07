// SPDX-License-Identifier: Apache-2.0
#include "http/request.hh"

#include "util/strings.hh"

namespace rp::http {

std::string_view Request::header(std::string_view name) const noexcept {
    for (const Header& h : headers) {
        if (util::iequals(h.name, name)) {
            return h.value;
        }
    }
    return {};
}

bool Request::has_header(std::string_view name) const noexcept {
    for (const Header& h : headers) {
        if (util::iequals(h.name, name)) {
            return true;
        }
    }
    return false;
}

std::vector<std::string_view> Request::header_list(std::string_view name) const {
    std::vector<std::string_view> out;
    for (const Header& h : headers) {
        if (!util::iequals(h.name, name)) {
            continue;
        }
        std::string_view v = h.value;
        while (!v.empty()) {
            auto comma = v.find(',');
            std::string_view item = util::trim(v.substr(0, comma));
            if (!item.empty()) {
                out.push_back(item);
            }
            if (comma == std::string_view::npos) {
                break;
            }
            v.remove_prefix(comma + 1);
        }
    }
    return out;
}

std::optional<std::string> Request::query_param(std::string_view key) const {
    std::string_view q = query;
    while (!q.empty()) {
        auto amp = q.find('&');
        std::string_view kv = q.substr(0, amp);
        auto eq = kv.find('=');
        std::string_view k = kv.substr(0, eq);
        if (k == key) {
            std::string_view v =
                eq == std::string_view::npos ? std::string_view{} : kv.substr(eq + 1);
            auto d = util::percent_decode(v);
            if (!d) {
                return std::nullopt;
            }
            return d;
        }
        if (amp == std::string_view::npos) {
            break;
        }
        q.remove_prefix(amp + 1);
    }
    return std::nullopt;
}

void Request::clear() {
    method.clear();
    target.clear();
    path.clear();
    query.clear();
    headers.clear();
    http_major = 1;
    http_minor = 1;
    keep_alive = true;
    chunked = false;
    content_length.reset();
    expect_continue = false;
}

bool split_target(std::string_view target, std::string& path, std::string& query) {
    auto q = target.find('?');
    std::string_view raw_path = target.substr(0, q);
    query = q == std::string_view::npos ? std::string{} : std::string(target.substr(q + 1));
    auto hash = query.find('#');
    if (hash != std::string::npos) {
        query.resize(hash);
    }
    // A NUL may come through (%00): every name, tag, digest and id is
    // validated against a grammar that excludes it before any use.
    auto decoded = util::percent_decode(raw_path);
    if (!decoded) {
        return false;
    }
    path = std::move(*decoded);
    return true;
}

} // namespace rp::http
