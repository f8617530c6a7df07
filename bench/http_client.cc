// SPDX-License-Identifier: Apache-2.0
#include "http_client.hh"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>

#include "http_parse.hh"

namespace rp::bench {

using util::Errc;
using util::Error;
using util::Result;

Result<Endpoint> resolve(std::string_view url, const std::string& cafile) {
    auto u = parse_url(url);
    if (!u) {
        return Error::of(Errc::invalid,
                         "bad --url (want http://HOST:PORT or https://): " + std::string(url));
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(u->host.c_str(), u->port.c_str(), &hints, &res);
    if (rc != 0 || res == nullptr) {
        return Error::of(Errc::invalid, "cannot resolve " + u->host + ": " + gai_strerror(rc));
    }
    Endpoint ep;
    std::memcpy(&ep.addr, res->ai_addr, res->ai_addrlen);
    ep.addr_len = res->ai_addrlen;
    ::freeaddrinfo(res);
    ep.host = u->host;
    ep.authority = u->authority;
    ep.url = (u->tls ? "https://" : "http://") + u->authority;
    if (u->tls) {
        auto t = TlsClient::create(cafile);
        if (!t) {
            return std::move(t).error();
        }
        ep.tls = std::move(*t);
    }
    return ep;
}

Result<util::UniqueFd> connect_to(const Endpoint& ep) {
    util::UniqueFd fd(::socket(ep.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        return Error::sys(errno, "socket");
    }
    int one = 1;
    (void)::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&ep.addr), ep.addr_len) != 0) {
        return Error::sys(errno, "connect to " + ep.authority + ": " + std::strerror(errno));
    }
    return fd;
}

namespace {

void set_timeouts(int fd, int timeout_ms) {
    timeval tv{};
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

} // namespace

Result<Connection> open_connection(const Endpoint& ep, int timeout_ms) {
    auto fd = connect_to(ep);
    if (!fd) {
        return std::move(fd).error();
    }
    Connection c;
    c.fd = std::move(*fd);
    set_timeouts(c.fd.get(), timeout_ms);
    if (ep.tls) {
        auto ssl = ep.tls->connect(c.fd.get(), ep.host);
        if (!ssl) {
            return std::move(ssl).error();
        }
        c.ssl = std::move(*ssl);
    }
    return c;
}

Result<std::size_t> Connection::recv(char* buf, std::size_t cap) {
    for (int i = 0; i < 1000; ++i) {
        if (ssl) {
            std::size_t n = 0;
            if (SSL_read_ex(ssl.get(), buf, cap, &n) == 1) {
                return n;
            }
            int e = SSL_get_error(ssl.get(), 0);
            if (e == SSL_ERROR_ZERO_RETURN) {
                return std::size_t{0};
            }
            if (e == SSL_ERROR_SYSCALL && errno == 0) {
                return std::size_t{0}; // closed without close_notify
            }
            return Error::of(Errc::closed, "tls recv: " + tls_errors());
        }
        ssize_t n = ::recv(fd.get(), buf, cap, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return Error::sys(errno, std::string("recv: ") + std::strerror(errno));
        }
        return static_cast<std::size_t>(n);
    }
    return Error::of(Errc::closed, "recv: interrupted too often");
}

Result<void> Connection::send_all(std::string_view a, std::string_view b) {
    for (std::string_view part : {a, b}) {
        if (ssl && !part.empty()) {
            std::size_t n = 0;
            if (SSL_write_ex(ssl.get(), part.data(), part.size(), &n) != 1) {
                return Error::of(Errc::closed, "tls send: " + tls_errors());
            }
            continue;
        }
        while (!part.empty()) {
            ssize_t n = ::send(fd.get(), part.data(), part.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return Error::sys(errno, std::string("send: ") + std::strerror(errno));
            }
            part.remove_prefix(static_cast<std::size_t>(n));
        }
    }
    return util::Ok{};
}

namespace {

void keep_head(const ResponseHead& h, SimpleResponse& out) {
    out.status = h.status;
    out.location = std::string(h.location);
    out.link = std::string(link_next(h.link));
    out.digest = std::string(h.digest);
    out.content_length = h.content_length;
}

} // namespace

Result<SimpleResponse> BlockingClient::request(std::string_view method, std::string_view target,
                                               std::string_view headers, std::string_view body) {
    bool reused = conn_.valid();
    bool got_bytes = false;
    auto r = attempt(method, target, headers, body, got_bytes);
    if (!r && reused && !got_bytes) {
        conn_.reset(); // the server closed the idle connection: one fresh try
        r = attempt(method, target, headers, body, got_bytes);
    }
    if (!r) {
        conn_.reset();
    }
    return r;
}

Result<SimpleResponse> BlockingClient::attempt(std::string_view method, std::string_view target,
                                               std::string_view headers, std::string_view body,
                                               bool& got_bytes) {
    if (!conn_.valid()) {
        auto c = open_connection(ep_, timeout_ms_);
        if (!c) {
            return std::move(c).error();
        }
        conn_ = std::move(*c);
    }
    std::string head;
    head.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ");
    head.append(ep_.authority).append("\r\nContent-Length: ").append(std::to_string(body.size()));
    head.append("\r\n").append(ep_.extra_headers).append(headers).append("\r\n");
    if (auto s = conn_.send_all(head, body); !s) {
        return std::move(s).error();
    }
    ResponseReader reader;
    reader.reset(method == "HEAD");
    SimpleResponse out;
    char buf[16384];
    while (!reader.finished()) {
        auto n = conn_.recv(buf, sizeof buf);
        if (!n) {
            return std::move(n).error();
        }
        if (*n == 0) {
            reader.on_eof();
            break;
        }
        got_bytes = true;
        std::string_view in(buf, *n);
        while (!in.empty() && !reader.finished()) {
            std::string_view piece = reader.feed(in);
            out.body.append(piece);
        }
    }
    if (reader.state() != ResponseReader::State::done) {
        return Error::of(Errc::closed, "malformed or truncated response to " + std::string(method) +
                                           " " + std::string(target));
    }
    keep_head(reader.head(), out);
    if (reader.head().close) {
        conn_.reset();
    }
    return out;
}

} // namespace rp::bench
