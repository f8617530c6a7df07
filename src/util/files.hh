// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>
#include <string_view>

#include "util/result.hh"

namespace rp::util {

// The whole of a small file (a config file's companion: htpasswd, JWKS),
// read blocking; the error names the path, after `what` ("htpasswd file ").
// Not for the data path.
Result<std::string> read_whole_file(const std::string& path, std::string_view what = {});

} // namespace rp::util
