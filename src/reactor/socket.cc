// SPDX-License-Identifier: Apache-2.0
#include "reactor/socket.hh"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "util/strings.hh"

namespace rp::reactor {

util::Result<ListenAddr> parse_listen_addr(std::string_view s) {
    ListenAddr a;
    std::string_view host, port;
    if (!s.empty() && s.front() == '[') {
        auto close = s.find(']');
        if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
            return util::Error::of(util::Errc::invalid, "bad IPv6 listen address");
        }
        host = s.substr(1, close - 1);
        port = s.substr(close + 2);
    } else {
        auto colon = s.rfind(':');
        if (colon == std::string_view::npos) {
            return util::Error::of(util::Errc::invalid, "listen address needs HOST:PORT");
        }
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
    }
    auto p = util::parse_u64(port);
    if (!p || *p > 65535) {
        return util::Error::of(util::Errc::invalid, "bad port");
    }
    a.port = static_cast<std::uint16_t>(*p);
    if (host.empty()) {
        a.host = "0.0.0.0";
    } else if (host == "localhost") {
        a.host = "127.0.0.1";
    } else {
        a.host = std::string(host);
    }
    in6_addr v6{};
    in_addr v4{};
    if (inet_pton(AF_INET, a.host.c_str(), &v4) != 1 &&
        inet_pton(AF_INET6, a.host.c_str(), &v6) != 1) {
        return util::Error::of(util::Errc::invalid, "listen host must be a numeric address");
    }
    return a;
}

util::Result<util::UniqueFd> listen_tcp(const ListenAddr& addr, int backlog, std::string* bound) {
    sockaddr_storage ss{};
    socklen_t len = 0;
    int family = AF_INET;
    if (addr.host.find(':') != std::string::npos) {
        family = AF_INET6;
        auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(addr.port);
        (void)inet_pton(AF_INET6, addr.host.c_str(), &s6->sin6_addr);
        len = sizeof *s6;
    } else {
        auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
        s4->sin_family = AF_INET;
        s4->sin_port = htons(addr.port);
        (void)inet_pton(AF_INET, addr.host.c_str(), &s4->sin_addr);
        len = sizeof *s4;
    }
    util::UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) {
        return util::Error::sys(errno, "socket");
    }
    int one = 1;
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        return util::Error::sys(errno, "bind " + addr.host + ":" + std::to_string(addr.port));
    }
    if (::listen(fd.get(), backlog) != 0) {
        return util::Error::sys(errno, "listen");
    }
    sockaddr_storage got{};
    socklen_t glen = sizeof got;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&got), &glen) != 0) {
        return util::Error::sys(errno, "getsockname");
    }
    std::uint16_t port = family == AF_INET6
                             ? ntohs(reinterpret_cast<sockaddr_in6*>(&got)->sin6_port)
                             : ntohs(reinterpret_cast<sockaddr_in*>(&got)->sin_port);
    if (bound != nullptr) {
        *bound =
            (family == AF_INET6 ? "[" + addr.host + "]" : addr.host) + ":" + std::to_string(port);
    }
    return fd;
}

} // namespace rp::reactor
