// SPDX-License-Identifier: Apache-2.0
#include "util/result.hh"

#include <cstring>

namespace rp::util {

std::string Error::describe() const {
    std::string s;
    switch (kind) {
    case Errc::system: s = "system error"; break;
    case Errc::not_found: s = "not found"; break;
    case Errc::invalid: s = "invalid"; break;
    case Errc::digest_mismatch: s = "digest mismatch"; break;
    case Errc::size_mismatch: s = "size mismatch"; break;
    case Errc::range: s = "range"; break;
    case Errc::too_large: s = "too large"; break;
    case Errc::limit: s = "limit reached"; break;
    case Errc::timeout: s = "timeout"; break;
    case Errc::closed: s = "connection closed"; break;
    case Errc::no_space: s = "no space left"; break;
    case Errc::busy: s = "busy"; break;
    case Errc::stopped: s = "stopped"; break;
    case Errc::unsupported: s = "unsupported"; break;
    }
    if (sys_errno != 0) {
        s += ": ";
        s += std::strerror(sys_errno);
    }
    if (!detail.empty()) {
        s += ": ";
        s += detail;
    }
    return s;
}

} // namespace rp::util
