// SPDX-License-Identifier: Apache-2.0
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/client.hh"
#include "reactor/ops.hh"
#include "reactor/shard.hh"
#include "reactor/sync.hh"
#include "reactor/task.hh"

using namespace rp;
using net::Client;
using net::Request;
using net::Response;
using reactor::Shard;
using reactor::Task;
using util::Errc;
using clk = std::chrono::steady_clock;

namespace {

constexpr std::size_t huge_bytes = 5U << 20U;

// A scripted HTTP/1.1 server on 127.0.0.1 with keep-alive, one thread per
// connection. It counts connections and remembers each request's
// Authorization header. Paths:
//   /hello           200 "hello world", X-Test: yes
//   /big             200, 10,000 bytes
//   /huge            200, 5 MiB of a 23-byte pattern
//   /missing         404
//   /stall           reads the request, never answers (until the server stops)
//   /redirect?to=URL 302 to URL
class Server {
  public:
    Server() {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int one = 1;
        (void)::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(fd_, 128) == 0);
        socklen_t len = sizeof a;
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
        port_ = ntohs(a.sin_port);
        acceptor_ = std::thread([this] { accept_loop(); });
    }
    ~Server() {
        stop_ = true;
        (void)::shutdown(fd_, SHUT_RDWR);
        acceptor_.join();
        {
            std::lock_guard lk(mu_);
            for (int c : conns_) {
                (void)::shutdown(c, SHUT_RDWR);
            }
        }
        for (auto& t : workers_) {
            t.join();
        }
        for (int c : conns_) {
            ::close(c);
        }
        ::close(fd_);
    }
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    std::string url(const std::string& path, const char* host = "127.0.0.1") const {
        return std::string("http://") + host + ":" + std::to_string(port_) + path;
    }
    int accepted() const { return accepted_.load(); }
    std::vector<std::string> auth_seen() {
        std::lock_guard lk(mu_);
        return auth_;
    }

  private:
    void accept_loop() {
        for (;;) {
            int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) {
                return;
            }
            ++accepted_;
            std::lock_guard lk(mu_);
            conns_.push_back(c);
            workers_.emplace_back([this, c] { serve(c); });
        }
    }
    void serve(int c) {
        std::string in;
        char buf[4096];
        for (;;) {
            auto end = in.find("\r\n\r\n");
            while (end == std::string::npos) {
                ssize_t n = ::recv(c, buf, sizeof buf, 0);
                if (n <= 0) {
                    return;
                }
                in.append(buf, static_cast<std::size_t>(n));
                end = in.find("\r\n\r\n");
            }
            std::string head = in.substr(0, end);
            in.erase(0, end + 4);
            std::string method = head.substr(0, head.find(' '));
            std::string target = head.substr(method.size() + 1);
            target = target.substr(0, target.find(' '));
            std::string auth = "-";
            if (auto p = head.find("\r\nAuthorization: "); p != std::string::npos) {
                auth = head.substr(p + 17, head.find("\r\n", p + 2) - p - 17);
            }
            {
                std::lock_guard lk(mu_);
                auth_.push_back(target);
                auth_.back().append(" ").append(auth);
            }
            std::string status = "200 OK", body, extra;
            if (target == "/hello") {
                body = "hello world";
                extra = "X-Test: yes\r\n";
            } else if (target == "/big") {
                body.assign(10000, 'b');
            } else if (target == "/huge") {
                body.resize(huge_bytes);
                for (std::size_t i = 0; i < body.size(); ++i) {
                    body[i] = static_cast<char>('a' + i % 23);
                }
            } else if (target == "/missing") {
                status = "404 Not Found";
                body = "{\"errors\":[]}";
            } else if (target == "/stall") {
                while (!stop_) {
                    pollfd p{c, POLLIN, 0};
                    (void)::poll(&p, 1, 50);
                    if ((p.revents & (POLLHUP | POLLERR)) != 0) {
                        return;
                    }
                }
                return;
            } else if (target.starts_with("/redirect?to=")) {
                status = "302 Found";
                extra = "Location: " + target.substr(13) + "\r\n";
            } else {
                status = "404 Not Found";
            }
            std::string out = "HTTP/1.1 ";
            out.append(status).append("\r\nContent-Length: ");
            out.append(std::to_string(body.size())).append("\r\n").append(extra).append("\r\n");
            if (method != "HEAD") {
                out += body;
            }
            if (::send(c, out.data(), out.size(), MSG_NOSIGNAL) !=
                static_cast<ssize_t>(out.size())) {
                return;
            }
        }
    }

    int fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> accepted_{0};
    std::thread acceptor_;
    std::mutex mu_;
    std::vector<int> conns_;
    std::vector<std::thread> workers_;
    std::vector<std::string> auth_;
};

// Runs `body` as a flow on a fresh shard until it returns.
template <typename F> void on_shard(F body) {
    Shard shard(0, 64);
    REQUIRE(shard.init());
    auto flow = [](Shard* s, F f) -> Task<void> {
        co_await f();
        s->request_stop();
    };
    reactor::spawn(flow(&shard, std::move(body)));
    shard.run();
    CHECK(shard.inflight() == 0);
}

Request get(std::string url) {
    Request r;
    r.url = std::move(url);
    return r;
}

} // namespace

TEST_CASE("a GET and a HEAD return status, headers and body; a 404 is an answer, not an error") {
    Server srv;
    util::Result<Response> got = util::Error::of(Errc::system), head = got, missing = got;
    on_shard([&]() -> Task<void> {
        Client c;
        REQUIRE(c.init());
        got = co_await c.fetch(get(srv.url("/hello")));
        Request h = get(srv.url("/hello"));
        h.method = "HEAD";
        head = co_await c.fetch(h);
        missing = co_await c.fetch(get(srv.url("/missing")));
    });
    REQUIRE(got);
    CHECK(got->status == 200);
    CHECK(got->body == "hello world");
    REQUIRE(got->header("x-test") != nullptr);
    CHECK(*got->header("x-test") == "yes");
    CHECK(*got->header("Content-Length") == "11");
    REQUIRE(head);
    CHECK(head->status == 200);
    CHECK(head->body.empty());
    CHECK(*head->header("content-length") == "11");
    REQUIRE(missing);
    CHECK(missing->status == 404);
    CHECK(missing->body == "{\"errors\":[]}");
}

TEST_CASE("sequential transfers reuse one connection; concurrent ones all finish") {
    Server srv;
    std::uint64_t opened_seq = 0;
    int accepted_seq = 0;
    int ok = 0;
    on_shard([&]() -> Task<void> {
        Client c;
        REQUIRE(c.init());
        for (int i = 0; i < 5; ++i) {
            auto r = co_await c.fetch(get(srv.url("/big")));
            ok += r && r->status == 200 && r->body == std::string(10000, 'b') ? 1 : 0;
        }
        opened_seq = c.connections_opened();
        accepted_seq = srv.accepted();
        // 16 at once: each its own flow, all in flight together.
        int done = 0;
        reactor::Latch all;
        auto one = [&]() -> Task<void> {
            auto r = co_await c.fetch(get(srv.url("/hello")));
            ok += r && r->body == "hello world" ? 1 : 0;
            if (++done == 16) {
                all.set();
            }
        };
        for (int i = 0; i < 16; ++i) {
            reactor::spawn(one());
        }
        CHECK(c.in_flight() == 16);
        (void)co_await all.wait();
        CHECK(c.in_flight() == 0);
    });
    CHECK(ok == 5 + 16);
    CHECK(opened_seq == 1);
    CHECK(accepted_seq == 1);
}

TEST_CASE("a body over its limit, a refused connection and a stall are errors of their kind") {
    Server srv;
    // A port with nothing listening: bound, then closed.
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    ::close(s);
    std::string closed_url = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/";

    util::Result<Response> big = util::Error::of(Errc::system), refused = big, stalled = big;
    double stall_s = 0;
    on_shard([&]() -> Task<void> {
        Client c;
        REQUIRE(c.init());
        Request r = get(srv.url("/big"));
        r.body_max = 9999;
        big = co_await c.fetch(r);
        refused = co_await c.fetch(get(closed_url));
        Request st = get(srv.url("/stall"));
        st.stall_timeout_ms = 1000;
        auto t0 = clk::now();
        stalled = co_await c.fetch(st);
        stall_s = std::chrono::duration<double>(clk::now() - t0).count();
    });
    REQUIRE(!big);
    CHECK(big.error().kind == Errc::too_large);
    REQUIRE(!refused);
    CHECK(refused.error().kind == Errc::closed);
    REQUIRE(!stalled);
    CHECK(stalled.error().kind == Errc::timeout);
    CHECK(stall_s >= 0.9);
    CHECK(stall_s < 10);
}

TEST_CASE("a redirect to another host is followed without the Authorization header") {
    Server a, b;
    util::Result<Response> same = util::Error::of(Errc::system), cross = same, unfollowed = same;
    on_shard([&]() -> Task<void> {
        Client c;
        REQUIRE(c.init());
        Request r = get(a.url("/redirect?to=" + a.url("/hello")));
        r.headers.push_back("Authorization: Bearer secret");
        r.follow_redirects = true;
        same = co_await c.fetch(r);
        // "localhost" is another host name than 127.0.0.1, as a CDN would be.
        r.url = a.url("/redirect?to=" + b.url("/hello", "localhost"));
        cross = co_await c.fetch(r);
        r.follow_redirects = false;
        unfollowed = co_await c.fetch(r);
    });
    REQUIRE(same);
    CHECK(same->body == "hello world");
    REQUIRE(cross);
    CHECK(cross->status == 200);
    CHECK(cross->body == "hello world");
    CHECK(cross->effective_url == b.url("/hello", "localhost"));
    REQUIRE(unfollowed);
    CHECK(unfollowed->status == 302);
    CHECK(*unfollowed->header("location") == b.url("/hello", "localhost"));
    // The origin saw the token on every request; the other host never did.
    for (const std::string& s : a.auth_seen()) {
        CHECK(s.ends_with(" Bearer secret"));
    }
    const auto seen_b = b.auth_seen();
    REQUIRE(seen_b.size() == 1);
    CHECK(seen_b[0] == "/hello -");
}

TEST_CASE("a shard that stops ends a transfer in flight with Errc::stopped, at once") {
    Server srv;
    util::Result<Response> r = util::Error::of(Errc::system);
    Shard shard(0, 64);
    REQUIRE(shard.init());
    Client c;
    double took_s = 0;
    auto flow = [&]() -> Task<void> {
        REQUIRE(c.init());
        Request st = get(srv.url("/stall"));
        st.stall_timeout_ms = 3600 * 1000;
        auto t0 = clk::now();
        r = co_await c.fetch(st);
        took_s = std::chrono::duration<double>(clk::now() - t0).count();
    };
    auto stopper = [&]() -> Task<void> {
        (void)co_await reactor::sleep_ms(300);
        shard.request_stop();
    };
    reactor::spawn(flow());
    reactor::spawn(stopper());
    shard.run();
    REQUIRE(!r);
    CHECK(r.error().kind == Errc::stopped);
    CHECK(took_s < 5);
    CHECK(shard.inflight() == 0);
}

TEST_CASE("a download hands its body over as it arrives, holding at most about 1 MiB") {
    Server srv;
    std::string got;
    long status = 0;
    std::uint64_t most_held = 0;
    bool ended = false;
    util::Result<std::size_t> missing_end = util::Error::of(Errc::system);
    long missing_status = 0;
    on_shard([&]() -> Task<void> {
        Client c;
        REQUIRE(c.init());
        Request r = get(srv.url("/huge"));
        r.body_max = huge_bytes;
        auto d = c.download(r);
        auto h = co_await d->head();
        REQUIRE(h);
        status = (*h)->status;
        std::vector<char> buf(64 << 10);
        for (int i = 0; i < 10000; ++i) {
            auto n = co_await d->read(buf.data(), buf.size());
            REQUIRE(n);
            if (*n == 0) {
                ended = true;
                break;
            }
            got.append(buf.data(), *n);
            most_held = std::max(most_held, d->received() - got.size());
            (void)co_await reactor::sleep_ms(1); // a slow reader: the transfer waits for it
        }
        auto m = c.download(get(srv.url("/missing")));
        auto mh = co_await m->head();
        REQUIRE(mh);
        missing_status = (*mh)->status;
        std::string rest;
        for (int i = 0; i < 10; ++i) {
            auto n = co_await m->read(buf.data(), buf.size());
            REQUIRE(n);
            if (*n == 0) {
                missing_end = n;
                break;
            }
            rest.append(buf.data(), *n);
        }
        CHECK(rest == "{\"errors\":[]}");
    });
    CHECK(status == 200);
    CHECK(ended);
    REQUIRE(got.size() == huge_bytes);
    bool pattern = true;
    for (std::size_t i = 0; i < got.size() && pattern; ++i) {
        pattern = got[i] == static_cast<char>('a' + i % 23);
    }
    CHECK(pattern);
    CHECK(most_held <= (1U << 20U) + (64U << 10U));
    CHECK(missing_status == 404);
    CHECK(missing_end);
}

TEST_CASE("a download over its limit fails, and one abandoned midway leaves nothing running") {
    Server srv;
    util::Result<std::size_t> over = util::Error::of(Errc::system);
    std::size_t in_flight_after = 99;
    on_shard([&]() -> Task<void> {
        Client c;
        REQUIRE(c.init());
        Request r = get(srv.url("/huge"));
        r.body_max = 1U << 20U;
        auto d = c.download(r);
        std::vector<char> buf(64 << 10);
        for (int i = 0; i < 1000; ++i) {
            over = co_await d->read(buf.data(), buf.size());
            if (!over || *over == 0) {
                break;
            }
        }
        auto a = c.download(get(srv.url("/huge")));
        (void)co_await a->read(buf.data(), buf.size());
        a.reset(); // abandoned with most of the body unread
        in_flight_after = c.in_flight();
        // The client still works afterwards.
        auto ok = co_await c.fetch(get(srv.url("/hello")));
        CHECK((ok && ok->body == "hello world"));
    });
    REQUIRE(!over);
    CHECK(over.error().kind == Errc::too_large);
    CHECK(in_flight_after == 0);
}
