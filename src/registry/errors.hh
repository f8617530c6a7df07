// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>
#include <string_view>

#include "http/response.hh"
#include "util/result.hh"

namespace rp::registry {

// The OCI error table (distribution-spec "Error Codes", plus Distribution's
// extras), with Distribution's HTTP status for each (its errcode package).
enum class Code {
    blob_unknown,
    blob_upload_invalid,
    blob_upload_unknown,
    digest_invalid,
    manifest_blob_unknown,
    manifest_invalid,
    manifest_unknown,
    name_invalid,
    name_unknown,
    size_invalid,
    too_large, // SIZE_INVALID with 413: over a configured limit
    tag_invalid,
    unauthorized,
    denied,
    unsupported,
    too_many_requests,
    range_invalid,
    pagination_number_invalid,
    unavailable,
    upstream_failed, // UNKNOWN with 502: a mirror's upstream failed or sent bad content
    storage_full,
    not_found,
    unknown,
};

struct CodeInfo {
    const char* code;
    const char* message;
    int status;
};

const CodeInfo& code_info(Code c) noexcept;

// An OCI error response: {"errors":[{"code","message","detail"}]}.
http::Response error_response(Code c, std::string_view detail = {});

// Maps a storage failure to the OCI code a client should see; `fallback` is
// the code for "not found" in the calling context (BLOB_UNKNOWN, ...).
Code code_for(const util::Error& e, Code not_found) noexcept;
// The code for a failed pull-through fetch: `not_found` for an upstream 404,
// UNAVAILABLE when stopping, storage full, else upstream_failed (502).
Code mirror_code(const util::Error& e, Code not_found) noexcept;

} // namespace rp::registry
