// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/result.hh"
#include "util/unique_fd.hh"

namespace rp::reactor {

struct ListenAddr {
    std::string host; // numeric IPv4 or IPv6 (without brackets)
    std::uint16_t port = 0;
};

// Parses "HOST:PORT", "[V6]:PORT" or ":PORT" (all interfaces, as Distribution's
// `:5000`). Numeric hosts only, plus "localhost".
util::Result<ListenAddr> parse_listen_addr(std::string_view s);

// A non-blocking listening TCP socket. `bound` receives "host:port" with the
// port the kernel chose when PORT was 0.
util::Result<util::UniqueFd> listen_tcp(const ListenAddr& addr, int backlog, std::string* bound);

} // namespace rp::reactor
