// SPDX-License-Identifier: Apache-2.0
#include "registry/errors.hh"

#include "util/strings.hh"

namespace rp::registry {

const CodeInfo& code_info(Code c) noexcept {
    static constexpr CodeInfo table[] = {
        {"BLOB_UNKNOWN", "blob unknown to registry", 404},
        {"BLOB_UPLOAD_INVALID", "blob upload invalid", 400},
        {"BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", 404},
        {"DIGEST_INVALID", "provided digest did not match uploaded content", 400},
        {"MANIFEST_BLOB_UNKNOWN", "manifest references a manifest or blob unknown to registry",
         400},
        {"MANIFEST_INVALID", "manifest invalid", 400},
        {"MANIFEST_UNKNOWN", "manifest unknown to registry", 404},
        {"NAME_INVALID", "invalid repository name", 400},
        {"NAME_UNKNOWN", "repository name not known to registry", 404},
        {"SIZE_INVALID", "provided length did not match content length", 400},
        {"SIZE_INVALID", "content exceeds the configured size limit", 413},
        {"TAG_INVALID", "manifest tag did not match URI", 400},
        {"UNAUTHORIZED", "authentication required", 401},
        {"DENIED", "requested access to the resource is denied", 403},
        {"UNSUPPORTED", "the operation is unsupported", 405},
        {"TOOMANYREQUESTS", "too many requests", 429},
        {"RANGE_INVALID", "invalid content range", 416},
        {"PAGINATION_NUMBER_INVALID", "invalid number of results requested", 400},
        {"UNAVAILABLE", "service unavailable", 503},
        {"UNKNOWN", "the upstream registry failed", 502},
        {"UNKNOWN", "insufficient storage", 507},
        {"NOT_FOUND", "no such API endpoint", 404},
        {"UNKNOWN", "unknown error", 500},
    };
    static_assert(sizeof table / sizeof table[0] == static_cast<int>(Code::unknown) + 1);
    return table[static_cast<int>(c)];
}

http::Response error_response(Code c, std::string_view detail) {
    const CodeInfo& info = code_info(c);
    http::Response r;
    r.status = info.status;
    r.add("Content-Type", "application/json; charset=utf-8");
    std::string& b = r.body;
    b = R"({"errors":[{"code":")";
    b += info.code;
    b += R"(","message":")";
    b += info.message;
    b += '"';
    if (!detail.empty()) {
        b += R"(,"detail":")";
        util::json_escape(b, detail);
        b += '"';
    }
    b += "}]}\n";
    return r;
}

Code code_for(const util::Error& e, Code not_found) noexcept {
    using util::Errc;
    switch (e.kind) {
    case Errc::not_found: return not_found;
    case Errc::invalid: return Code::manifest_invalid;
    case Errc::digest_mismatch: return Code::digest_invalid;
    case Errc::size_mismatch: return Code::size_invalid;
    case Errc::range: return Code::range_invalid;
    case Errc::too_large: return Code::too_large;
    case Errc::limit: return Code::too_many_requests;
    case Errc::no_space: return Code::storage_full;
    case Errc::busy: return Code::blob_upload_invalid;
    case Errc::unsupported: return Code::unsupported;
    case Errc::stopped: return Code::unavailable;
    case Errc::timeout:
    case Errc::closed:
    case Errc::system: return Code::unknown;
    }
    return Code::unknown;
}

Code mirror_code(const util::Error& e, Code not_found) noexcept {
    switch (e.kind) {
    case util::Errc::not_found: return not_found;
    case util::Errc::stopped: return Code::unavailable;
    case util::Errc::no_space: return Code::storage_full;
    default: return Code::upstream_failed;
    }
}

} // namespace rp::registry
