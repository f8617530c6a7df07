// SPDX-License-Identifier: Apache-2.0
#pragma once

// The web UI's answers. The app is one page: /ui/assets/<name> serves its
// files, and every other path under /ui/ serves the page itself, whose
// script draws what the URL names (so a deep link survives a reload). The
// app reads everything it shows from the admin API and the OCI API, with
// the caller's own rights: these answers hold no registry data, and need
// no authentication.
//
// Every answer carries a strict Content-Security-Policy (no inline script
// or style, nothing from another origin, no framing), nosniff and
// Referrer-Policy; files are revalidated by a strong ETag (304) and sent
// gzipped to clients that accept it.

#include <string_view>

#include "http/request.hh"
#include "http/response.hh"

namespace rp::ui {

// "/ui" and everything under "/ui/".
bool is_ui_path(std::string_view path) noexcept;

// The answer to a request for a UI path (is_ui_path). Pure. With
// `preload_list`, the landing page's answer asks the browser to fetch the
// repository list's first page while the app loads (a Link header): only
// when that fetch will be allowed (an unauthorised preload could make the
// browser ask for a password in its own dialog).
http::Response serve(const http::Request& req, bool preload_list = true);

// The policy every UI answer carries (also checked by the tests).
inline constexpr std::string_view content_security_policy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'";

// Whether the request's Accept-Encoding accepts gzip (a q of 0 refuses it).
bool accepts_gzip(const http::Request& req);
// Whether the request's If-None-Match names `etag` (or is "*"); weak forms match.
bool etag_listed(const http::Request& req, std::string_view etag);

} // namespace rp::ui
