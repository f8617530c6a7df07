// SPDX-License-Identifier: Apache-2.0
// `ringport-bench sendfile-server`: the loopback reference. A minimal
// HTTP/1.1 keep-alive server that answers every request with one file's
// bytes through sendfile(2) and does nothing else, so `pull` against it
// shows what the socket and the page cache allow on this machine.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "commands.hh"
#include "http_parse.hh"
#include "util/unique_fd.hh"

namespace rp::bench {

namespace {

struct Served {
    int file = -1;
    std::uint64_t size = 0;
};

bool send_all(int fd, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
        ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL | MSG_MORE);
        if (n <= 0 && errno != EINTR) {
            return false;
        }
        off += n > 0 ? static_cast<std::size_t>(n) : 0;
    }
    return true;
}

bool answer(int fd, const Served& f, bool head_only) {
    std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                       "Content-Length: " +
                       std::to_string(f.size) + "\r\n\r\n";
    if (!send_all(fd, head)) {
        return false;
    }
    off_t off = 0;
    while (!head_only && static_cast<std::uint64_t>(off) < f.size) {
        ssize_t n = ::sendfile(fd, f.file, &off, f.size - static_cast<std::uint64_t>(off));
        if (n <= 0 && errno != EINTR) {
            return false;
        }
    }
    return true;
}

void serve(util::UniqueFd conn, Served f) {
    int one = 1;
    (void)::setsockopt(conn.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::string buf;
    char chunk[8192];
    for (;;) {
        std::size_t end = buf.find("\r\n\r\n");
        if (end == std::string::npos) {
            ssize_t n = ::recv(conn.get(), chunk, sizeof chunk, 0);
            if (n <= 0 || buf.size() > 65536) {
                return;
            }
            buf.append(chunk, static_cast<std::size_t>(n));
            continue;
        }
        std::string head = buf.substr(0, end + 4);
        buf.erase(0, end + 4);
        bool close = head.find("\r\nConnection: close") != std::string::npos ||
                     head.find("\r\nconnection: close") != std::string::npos;
        if (!answer(conn.get(), f, head.rfind("HEAD ", 0) == 0) || close) {
            return;
        }
    }
}

} // namespace

int listen_on(const std::string& addr, std::string& bound) {
    auto u = parse_url("http://" + (addr.rfind(':', 0) == 0 ? "0.0.0.0" + addr : addr));
    if (!u) {
        return -1;
    }
    sockaddr_in6 a6{};
    sockaddr_in a4{};
    bool v6 = u->host.find(':') != std::string::npos;
    auto port = static_cast<std::uint16_t>(std::stoi(u->port));
    int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = -1;
    if (v6) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons(port);
        rc = ::inet_pton(AF_INET6, u->host.c_str(), &a6.sin6_addr) == 1
                 ? ::bind(fd, reinterpret_cast<sockaddr*>(&a6), sizeof a6)
                 : -1;
    } else {
        a4.sin_family = AF_INET;
        a4.sin_port = htons(port);
        rc = ::inet_pton(AF_INET, u->host.c_str(), &a4.sin_addr) == 1
                 ? ::bind(fd, reinterpret_cast<sockaddr*>(&a4), sizeof a4)
                 : -1;
    }
    if (rc != 0 || ::listen(fd, 1024) != 0) {
        (void)::close(fd);
        return -1;
    }
    sockaddr_storage got{};
    socklen_t len = sizeof got;
    (void)::getsockname(fd, reinterpret_cast<sockaddr*>(&got), &len);
    std::uint16_t p = v6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&got)->sin6_port)
                         : ntohs(reinterpret_cast<sockaddr_in*>(&got)->sin_port);
    bound = (v6 ? "[" + u->host + "]" : u->host) + ":" + std::to_string(p);
    return fd;
}

int cmd_sendfile_server(const std::vector<std::string>& args) {
    std::string listen = "127.0.0.1:0";
    std::string file;
    for (std::size_t i = 0; i + 1 < args.size(); i += 2) {
        if (args[i] == "--listen") {
            listen = args[i + 1];
        } else if (args[i] == "--file") {
            file = args[i + 1];
        }
    }
    if (file.empty() || args.size() % 2 != 0) {
        std::fputs("usage: ringport-bench sendfile-server --listen 127.0.0.1:0 --file F\n", stderr);
        return 2;
    }
    Served f;
    f.file = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (f.file < 0 || ::fstat(f.file, &st) != 0) {
        std::fprintf(stderr, "sendfile-server: cannot open %s: %s\n", file.c_str(),
                     std::strerror(errno));
        return 1;
    }
    f.size = static_cast<std::uint64_t>(st.st_size);
    return serve_forever(listen, "sendfile-server",
                         [f](util::UniqueFd c) { std::thread(serve, std::move(c), f).detach(); });
}

int serve_forever(const std::string& listen, const char* who,
                  const std::function<void(util::UniqueFd)>& on_connection) {
    std::string bound;
    util::UniqueFd lfd(listen_on(listen, bound));
    if (!lfd.valid()) {
        std::fprintf(stderr, "%s: cannot listen on %s\n", who, listen.c_str());
        return 1;
    }
    std::printf("listening on %s\n", bound.c_str());
    (void)std::fflush(stdout);
    for (;;) {
        int c = ::accept4(lfd.get(), nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE) {
                continue;
            }
            return 1;
        }
        on_connection(util::UniqueFd(c));
    }
}

} // namespace rp::bench
