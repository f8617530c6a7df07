// SPDX-License-Identifier: Apache-2.0
// `ringport-bench webhook-sink`: the webhook endpoint of bench/observe.py. It
// takes POSTs of Distribution's notification envelopes on keep-alive
// connections, answers 200 to each and counts the events in them;
// `GET /count` answers {"posts":N,"events":N,"last_ms":N}. It shares the two
// cores with the servers it measures, so it costs little per event: one
// buffer per connection, no parse beyond the head, events counted by their
// `"action":` keys (a Python sink spent about 1 µs of CPU per event here).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "commands.hh"
#include "http_parse.hh"
#include "util/unique_fd.hh"

namespace rp::bench {

namespace {

struct Counts {
    std::atomic<std::uint64_t> posts{0};
    std::atomic<std::uint64_t> events{0};
    std::atomic<std::int64_t> last_ms{0};
};

bool send_all(int fd, std::string_view s) {
    while (!s.empty()) {
        ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
        if (n <= 0 && errno != EINTR) {
            return false;
        }
        s.remove_prefix(n > 0 ? static_cast<std::size_t>(n) : 0);
    }
    return true;
}

// The Content-Length of a request head (0 when absent or malformed).
std::size_t content_length(std::string_view head) {
    for (std::size_t at = head.find("\r\n"); at != std::string_view::npos;) {
        const std::size_t next = head.find("\r\n", at + 2);
        std::string_view line = head.substr(
            at + 2, next == std::string_view::npos ? std::string_view::npos : next - at - 2);
        constexpr std::string_view key = "content-length:";
        if (line.size() > key.size() &&
            std::equal(key.begin(), key.end(), line.begin(),
                       [](char a, char b) { return a == (b | 0x20); })) {
            std::size_t v = 0;
            for (char c : line.substr(key.size())) {
                if (c >= '0' && c <= '9') {
                    v = v * 10 + static_cast<std::size_t>(c - '0');
                }
            }
            return v;
        }
        at = next;
    }
    return 0;
}

std::uint64_t count_events(std::string_view body) {
    constexpr std::string_view key = "\"action\":";
    std::uint64_t n = 0;
    for (std::size_t at = body.find(key); at != std::string_view::npos;
         at = body.find(key, at + key.size())) {
        ++n;
    }
    return n;
}

void serve(util::UniqueFd conn, Counts* counts) {
    int one = 1;
    (void)::setsockopt(conn.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::vector<char> buf(1U << 20U);
    std::size_t have = 0;
    // Bounded: each turn answers one request or ends the connection.
    for (std::uint64_t turn = 0; turn < (1ULL << 62); ++turn) {
        std::string_view in(buf.data(), have);
        std::size_t end = in.find("\r\n\r\n");
        while (end == std::string_view::npos) {
            if (have == buf.size()) {
                buf.resize(buf.size() * 2);
            }
            ssize_t n = ::recv(conn.get(), buf.data() + have, buf.size() - have, 0);
            if (n <= 0) {
                return;
            }
            have += static_cast<std::size_t>(n);
            in = std::string_view(buf.data(), have);
            end = in.find("\r\n\r\n");
        }
        const std::size_t total = end + 4 + content_length(in.substr(0, end + 2));
        if (buf.size() < total) {
            buf.resize(total);
        }
        while (have < total) {
            ssize_t n = ::recv(conn.get(), buf.data() + have, buf.size() - have, 0);
            if (n <= 0) {
                return;
            }
            have += static_cast<std::size_t>(n);
        }
        in = std::string_view(buf.data(), have);
        bool ok = true;
        if (in.starts_with("GET /count")) {
            const std::string body = "{\"posts\":" + std::to_string(counts->posts.load()) +
                                     ",\"events\":" + std::to_string(counts->events.load()) +
                                     ",\"last_ms\":" + std::to_string(counts->last_ms.load()) + "}";
            ok = send_all(conn.get(), "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                      "Content-Length: " +
                                          std::to_string(body.size()) + "\r\n\r\n" + body);
        } else {
            counts->events.fetch_add(count_events(in.substr(end + 4, total - end - 4)));
            counts->posts.fetch_add(1);
            counts->last_ms.store(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count());
            ok = send_all(conn.get(), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
        if (!ok) {
            return;
        }
        std::memmove(buf.data(), buf.data() + total, have - total);
        have -= total;
    }
}

} // namespace

int cmd_webhook_sink(const std::vector<std::string>& args) {
    std::string listen = "127.0.0.1:0";
    if (args.size() == 2 && args[0] == "--listen") {
        listen = args[1];
    } else if (!args.empty()) {
        std::fputs("usage: ringport-bench webhook-sink [--listen 127.0.0.1:PORT]\n", stderr);
        return 2;
    }
    static Counts counts;
    return serve_forever(listen, "webhook-sink", [](util::UniqueFd c) {
        std::thread(serve, std::move(c), &counts).detach();
    });
}

} // namespace rp::bench
