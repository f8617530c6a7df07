// SPDX-License-Identifier: Apache-2.0
#include "net/client.hh"

#include <curl/curl.h>
#include <poll.h>

#include <algorithm>
#include <coroutine>
#include <mutex>
#include <unordered_set>
#include <utility>

#include "reactor/shard.hh"
#include "util/assert.hh"
#include "util/strings.hh"

namespace rp::net {

using util::Errc;
using util::Error;
using util::Result;

const std::string* Response::header(std::string_view name) const noexcept {
    for (auto it = headers.rbegin(); it != headers.rend(); ++it) {
        if (util::iequals(it->name, name)) {
            return &it->value;
        }
    }
    return nullptr;
}

namespace {

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { (void)curl_global_init(CURL_GLOBAL_DEFAULT); });
}

} // namespace

// One transfer: lives in fetch()'s frame until its coroutine resumes.
struct Transfer {
    Request req;
    Response resp;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    std::coroutine_handle<> waiter;
    CURLcode code = CURLE_OK;
    bool done = false;
    bool too_large = false;
    bool stopped = false;
    char errbuf[CURL_ERROR_SIZE] = {};
    // A download's body is handed over as it arrives, at most `pending_max`
    // bytes held; beyond that the transfer pauses until the reader catches up.
    bool streaming = false;
    std::string pending;
    std::size_t pending_max = 1U << 20U;
    std::uint64_t received = 0;
    bool paused = false;
    bool has_body = false;        // a body byte arrived: the final response's head is known
    bool has_status = false;      // a status line arrived
    bool first_byte_late = false; // aborted: no status line within first_byte_timeout_ms
    std::uint64_t started_us = 0;
    reactor::Shard* shard = nullptr; // the client's
    // Resumes whoever waits (fetch's flow, or a download's reader), once,
    // from the shard's loop rather than from inside curl.
    void wake() {
        if (waiter) {
            shard->post_resume(std::exchange(waiter, nullptr));
        }
    }
};

struct Client::Impl {
    CURLM* multi = nullptr;
    reactor::Shard* shard = nullptr;
    std::unordered_set<Transfer*> transfers;
    std::uint64_t connections = 0;
    bool stopping = false;

    // A socket curl asked to watch: one POLL_ADD at a time. It outlives a
    // REMOVE while its poll is in flight (deleted on that completion).
    struct Watch final : reactor::Operation {
        Impl* impl; // valid while !removed
        reactor::Shard* shard;
        int fd;
        int want = 0; // CURL_POLL_IN / OUT / INOUT
        bool armed = false;
        bool rearm = false; // cancelled to change the mask
        bool removed = false;
        bool in_action = false; // curl is handling this socket's event
        Watch(Impl* i, int f) : impl(i), shard(i->shard), fd(f) {}
        void arm() noexcept {
            unsigned mask = 0;
            if ((want & CURL_POLL_IN) != 0) {
                mask |= POLLIN;
            }
            if ((want & CURL_POLL_OUT) != 0) {
                mask |= POLLOUT;
            }
            io_uring_sqe* s = shard->sqe();
            io_uring_prep_poll_add(s, fd, mask);
            io_uring_sqe_set_data(s, static_cast<reactor::Operation*>(this));
            shard->op_started();
            armed = true;
        }
        void complete(int res, std::uint32_t) noexcept override {
            armed = false;
            shard->op_finished();
            if (removed) {
                delete this;
                return;
            }
            // A mask change cancels the poll; the poll may have fired first,
            // so the flag is only for this completion.
            const bool was_rearm = std::exchange(rearm, false);
            if (res == -ECANCELED && was_rearm && !shard->stopping() && !impl->stopping) {
                if (want != 0) {
                    arm();
                }
                return;
            }
            if (res == -ECANCELED || shard->stopping()) {
                impl->stop_all();
                return;
            }
            int ev = 0;
            if (res < 0) {
                ev = CURL_CSELECT_ERR;
            } else {
                const auto r = static_cast<unsigned>(res);
                if ((r & (POLLIN | POLLHUP)) != 0) {
                    ev |= CURL_CSELECT_IN;
                }
                if ((r & POLLOUT) != 0) {
                    ev |= CURL_CSELECT_OUT;
                }
                if ((r & POLLERR) != 0) {
                    ev |= CURL_CSELECT_ERR;
                }
            }
            // Re-armed after curl had its say: the callback may change the
            // mask or remove the socket (which deletes nothing while
            // `armed` is false: see remove()).
            Impl* im = impl;
            in_action = true;
            im->action(fd, ev);
            in_action = false;
            if (removed) {
                delete this;
                return;
            }
            if (!armed && want != 0 && !im->stopping && !shard->stopping()) {
                arm();
            }
        }
    };
    std::unordered_set<Watch*> watches;

    // Forgets a watch: deleted now, or by its in-flight poll's completion.
    void drop(Watch* w) {
        watches.erase(w);
        w->removed = true;
        w->want = 0;
        if (w->armed) {
            shard->cancel(w);
        } else if (!w->in_action) {
            delete w;
        }
    }

    // curl's one timeout. A re-arm leaves the old operation stale (it does
    // nothing when it completes) and cancels it.
    struct TimerOp final : reactor::Operation {
        Impl* impl; // null once stale
        __kernel_timespec ts{};
        explicit TimerOp(Impl* i) : impl(i) {}
        void complete(int res, std::uint32_t) noexcept override {
            reactor::Shard* shard = shard_of;
            shard->op_finished();
            Impl* im = impl;
            delete this;
            if (im == nullptr) {
                return;
            }
            im->timer = nullptr;
            if (res == -ECANCELED || shard->stopping()) {
                im->stop_all();
                return;
            }
            im->action(CURL_SOCKET_TIMEOUT, 0);
        }
        reactor::Shard* shard_of = nullptr;
    };
    TimerOp* timer = nullptr;

    void set_timer(long ms) {
        if (timer != nullptr) {
            timer->impl = nullptr;
            shard->cancel(timer);
            timer = nullptr;
        }
        if (ms < 0 || stopping) {
            return;
        }
        auto* t = new TimerOp(this);
        t->shard_of = shard;
        t->ts.tv_sec = ms / 1000;
        t->ts.tv_nsec = (ms % 1000) * 1000000;
        io_uring_sqe* s = shard->sqe();
        io_uring_prep_timeout(s, &t->ts, 0, 0);
        io_uring_sqe_set_data(s, static_cast<reactor::Operation*>(t));
        shard->op_started();
        timer = t;
    }

    void watch(curl_socket_t fd, int what, Watch* w) {
        if (what == CURL_POLL_REMOVE) {
            if (w == nullptr) {
                return;
            }
            (void)curl_multi_assign(multi, fd, nullptr);
            drop(w);
            return;
        }
        if (w == nullptr) {
            w = new Watch(this, fd);
            watches.insert(w);
            (void)curl_multi_assign(multi, fd, w);
        }
        if (w->want == what && (w->armed || w->in_action)) {
            return;
        }
        w->want = what;
        // Nothing new is armed once stopping: the shard cancels in-flight
        // operations once, so a poll armed after that would hold it open.
        if (w->armed) {
            w->rearm = true;
            shard->cancel(w);
        } else if (!w->in_action && what != CURL_POLL_NONE && !stopping) {
            w->arm();
        }
    }

    void action(curl_socket_t fd, int ev) {
        int running = 0;
        (void)curl_multi_socket_action(multi, fd, ev, &running);
        reap();
    }

    void reap() {
        int left = 0;
        while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
            if (m->msg != CURLMSG_DONE) {
                continue;
            }
            Transfer* t = nullptr;
            (void)curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &t);
            RP_ASSERT(t != nullptr);
            t->code = m->data.result;
            finish(t);
        }
    }

    void finish(Transfer* t) {
        long opened = 0;
        if (curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &opened) == CURLE_OK) {
            connections += static_cast<std::uint64_t>(opened);
        }
        (void)curl_multi_remove_handle(multi, t->easy);
        transfers.erase(t);
        t->done = true;
        t->wake();
    }

    void stop_all() {
        stopping = true;
        if (timer != nullptr) {
            shard->cancel(timer);
            timer->impl = nullptr;
            timer = nullptr; // deleted by its own (cancelled) completion
        }
        std::vector<Transfer*> all(transfers.begin(), transfers.end());
        for (Transfer* t : all) {
            t->stopped = true;
            finish(t);
        }
    }

    static int on_socket(CURL*, curl_socket_t fd, int what, void* userp, void* socketp) {
        static_cast<Impl*>(userp)->watch(fd, what, static_cast<Watch*>(socketp));
        return 0;
    }
    static int on_timer(CURLM*, long ms, void* userp) {
        static_cast<Impl*>(userp)->set_timer(ms);
        return 0;
    }
    static std::size_t on_body(char* p, std::size_t, std::size_t n, void* userp) {
        auto* t = static_cast<Transfer*>(userp);
        if (t->streaming) {
            if (t->received + n > t->req.body_max) {
                t->too_large = true;
                return 0;
            }
            if (!t->pending.empty() && t->pending.size() + n > t->pending_max) {
                t->paused = true; // curl hands the same bytes again after the unpause
                t->wake();
                return CURL_WRITEFUNC_PAUSE;
            }
            t->pending.append(p, n);
            t->received += n;
            t->has_body = true;
            t->wake();
            return n;
        }
        if (t->resp.body.size() + n > t->req.body_max) {
            t->too_large = true;
            return 0; // CURLE_WRITE_ERROR
        }
        t->resp.body.append(p, n);
        return n;
    }
    static std::size_t on_header(char* p, std::size_t, std::size_t n, void* userp) {
        auto* t = static_cast<Transfer*>(userp);
        std::string_view line(p, n);
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
            line.remove_suffix(1);
        }
        if (line.starts_with("HTTP/")) {
            t->has_status = true;
            t->resp.headers.clear(); // a new response: after a redirect or a 100
            return n;
        }
        auto colon = line.find(':');
        if (colon != std::string_view::npos) {
            t->resp.headers.push_back(Header{std::string(util::trim(line.substr(0, colon))),
                                             std::string(util::trim(line.substr(colon + 1)))});
        }
        return n;
    }

    // curl calls it at least about once a second while a transfer runs (the
    // stall check's timer), so the first-byte limit needs no timer of its own.
    static int on_progress(void* userp, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
        auto* t = static_cast<Transfer*>(userp);
        if (!t->has_status && t->req.first_byte_timeout_ms > 0 &&
            reactor::monotonic_us() - t->started_us >= t->req.first_byte_timeout_ms * 1000ULL) {
            t->first_byte_late = true;
            return 1; // CURLE_ABORTED_BY_CALLBACK
        }
        return 0;
    }
};

Client::Client() : impl_(std::make_unique<Impl>()) {}

Client::~Client() {
    if (impl_->multi == nullptr) {
        return;
    }
    impl_->stop_all();
    (void)curl_multi_cleanup(impl_->multi);
    // Sockets curl did not say REMOVE for: their polls end as cancelled.
    std::vector<Impl::Watch*> left(impl_->watches.begin(), impl_->watches.end());
    for (Impl::Watch* w : left) {
        impl_->drop(w);
    }
}

Result<void> Client::init() {
    global_init();
    impl_->shard = reactor::Shard::current();
    RP_ASSERT(impl_->shard != nullptr);
    impl_->multi = curl_multi_init();
    if (impl_->multi == nullptr) {
        return Error::of(Errc::system, "curl_multi_init failed");
    }
    CURLM* m = impl_->multi;
    (void)curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, &Impl::on_socket);
    (void)curl_multi_setopt(m, CURLMOPT_SOCKETDATA, impl_.get());
    (void)curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, &Impl::on_timer);
    (void)curl_multi_setopt(m, CURLMOPT_TIMERDATA, impl_.get());
    (void)curl_multi_setopt(m, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    return util::Ok{};
}

std::uint64_t Client::connections_opened() const noexcept { return impl_->connections; }
std::size_t Client::in_flight() const noexcept { return impl_->transfers.size(); }

namespace {

struct Suspend {
    Transfer* t;
    bool await_ready() const noexcept { return t->done; }
    void await_suspend(std::coroutine_handle<> h) noexcept { t->waiter = h; }
    void await_resume() const noexcept {}
};

Error error_of(const Transfer& t) {
    if (t.stopped) {
        return Error::of(Errc::stopped, "outbound transfer abandoned: stopping");
    }
    if (t.first_byte_late) {
        return Error::of(Errc::timeout,
                         "no answer within " + std::to_string(t.req.first_byte_timeout_ms) + " ms");
    }
    if (t.too_large) {
        return Error::of(Errc::too_large,
                         "upstream body exceeds " + std::to_string(t.req.body_max) + " bytes");
    }
    std::string what = t.errbuf[0] != '\0' ? std::string(t.errbuf) : curl_easy_strerror(t.code);
    switch (t.code) {
    case CURLE_OPERATION_TIMEDOUT: return Error::of(Errc::timeout, what);
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE: return Error::of(Errc::closed, what);
    default: return Error::of(Errc::system, what);
    }
}

} // namespace

namespace {

// Sets up `t`'s easy handle for its request. False when curl cannot.
bool prepare(Transfer& t) {
    t.easy = curl_easy_init();
    if (t.easy == nullptr) {
        return false;
    }
    CURL* e = t.easy;
    const Request& r = t.req;
    (void)curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
    (void)curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
    (void)curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.errbuf);
    (void)curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    (void)curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    (void)curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    (void)curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
    (void)curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    (void)curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, nullptr); // bytes exactly as sent
    (void)curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(r.connect_timeout_ms));
    (void)curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(r.total_timeout_ms));
    // A stall: under 1 byte/s for the stall time (curl counts in seconds).
    (void)curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    (void)curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
                           std::max(1L, static_cast<long>((r.stall_timeout_ms + 999) / 1000)));
    (void)curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, r.follow_redirects ? 1L : 0L);
    (void)curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
    (void)curl_easy_setopt(e, CURLOPT_UNRESTRICTED_AUTH, 0L);
    (void)curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, r.verify_tls ? 1L : 0L);
    (void)curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, r.verify_tls ? 2L : 0L);
    if (!r.ca_file.empty()) {
        (void)curl_easy_setopt(e, CURLOPT_CAINFO, r.ca_file.c_str());
    }
    if (r.method == "HEAD") {
        (void)curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (r.method == "POST") {
        // The body lives in the transfer's request until the transfer ends.
        (void)curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.body.data());
        (void)curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                               static_cast<curl_off_t>(r.body.size()));
        t.headers = curl_slist_append(t.headers, "Expect:"); // no 100-continue round trip
    } else if (r.method != "GET") {
        (void)curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    }
    for (const std::string& h : r.headers) {
        t.headers = curl_slist_append(t.headers, h.c_str());
    }
    if (t.headers != nullptr) {
        (void)curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers);
    }
    (void)curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Client::Impl::on_body);
    (void)curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    (void)curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Client::Impl::on_header);
    (void)curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    t.started_us = reactor::monotonic_us();
    if (r.first_byte_timeout_ms > 0) {
        (void)curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, &Client::Impl::on_progress);
        (void)curl_easy_setopt(e, CURLOPT_XFERINFODATA, &t);
        (void)curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    }
    return true;
}

// The final response's status and URL, once known.
void fill_head(Transfer& t) {
    long status = 0;
    (void)curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
    t.resp.status = status;
    char* url = nullptr;
    if (curl_easy_getinfo(t.easy, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK && url != nullptr) {
        t.resp.effective_url = url;
    }
}

bool failed(const Transfer& t) { return t.code != CURLE_OK || t.stopped || t.too_large; }

} // namespace

reactor::Task<Result<Response>> Client::fetch(Request req) {
    Impl& im = *impl_;
    if (im.stopping) {
        co_return Error::of(Errc::stopped, "outbound transfer refused: stopping");
    }
    Transfer t;
    t.req = std::move(req);
    t.shard = im.shard;
    if (!prepare(t)) {
        co_return Error::of(Errc::system, "curl_easy_init failed");
    }
    Result<Response> out = Error::of(Errc::system);
    if (curl_multi_add_handle(im.multi, t.easy) != CURLM_OK) {
        out = Error::of(Errc::system, "curl_multi_add_handle failed");
    } else {
        im.transfers.insert(&t);
        co_await Suspend{&t};
        if (!failed(t)) {
            fill_head(t);
            out = std::move(t.resp);
        } else {
            out = error_of(t);
        }
    }
    curl_easy_cleanup(t.easy);
    curl_slist_free_all(t.headers);
    co_return out;
}

// A download owns its transfer on the heap: the reader's flow and curl's
// callbacks both reach it, and it outlives neither.
struct Download::State {
    Transfer t;
    bool added = false;
};

Download::Download(Client::Impl* impl, Request req) : st_(std::make_unique<State>()), impl_(impl) {
    Transfer& t = st_->t;
    t.req = std::move(req);
    t.shard = impl->shard;
    t.streaming = true;
    if (impl->stopping) {
        t.stopped = true;
        t.done = true;
        return;
    }
    if (!prepare(t)) {
        t.code = CURLE_FAILED_INIT;
        t.done = true;
        return;
    }
    if (curl_multi_add_handle(impl->multi, t.easy) != CURLM_OK) {
        t.code = CURLE_FAILED_INIT;
        t.done = true;
        return;
    }
    impl->transfers.insert(&t);
    st_->added = true;
}

Download::~Download() {
    Transfer& t = st_->t;
    if (st_->added && !t.done) { // abandoned mid-transfer
        (void)curl_multi_remove_handle(impl_->multi, t.easy);
        impl_->transfers.erase(&t);
    }
    if (t.easy != nullptr) {
        curl_easy_cleanup(t.easy);
    }
    curl_slist_free_all(t.headers);
}

namespace {

struct WaitData {
    Transfer* t;
    bool await_ready() const noexcept { return t->done || !t->pending.empty(); }
    void await_suspend(std::coroutine_handle<> h) noexcept { t->waiter = h; }
    void await_resume() const noexcept {}
};

} // namespace

reactor::Task<Result<const Response*>> Download::head() {
    Transfer& t = st_->t;
    while (!t.done && !t.has_body) {
        co_await WaitData{&t};
    }
    // A transfer that broke after its body began still has a head: the
    // error is the body's, and read() reports it after the bytes that came.
    if (t.done && failed(t) && !t.has_body) {
        co_return error_of(t);
    }
    fill_head(t);
    co_return &t.resp;
}

reactor::Task<Result<std::size_t>> Download::read(char* dst, std::size_t cap) {
    Transfer& t = st_->t;
    while (t.pending.empty() && !t.done) {
        co_await WaitData{&t};
    }
    if (t.pending.empty()) {
        if (failed(t)) {
            co_return error_of(t);
        }
        co_return std::size_t{0};
    }
    std::size_t n = std::min(cap, t.pending.size());
    std::copy_n(t.pending.data(), n, dst);
    t.pending.erase(0, n);
    if (t.paused && t.pending.size() < t.pending_max / 2 && !t.done) {
        t.paused = false;
        (void)curl_easy_pause(t.easy, CURLPAUSE_CONT); // may deliver into `pending` at once
    }
    co_return n;
}

std::uint64_t Download::received() const noexcept { return st_->t.received; }

std::unique_ptr<Download> Client::download(Request req) {
    return std::unique_ptr<Download>(new Download(impl_.get(), std::move(req)));
}

} // namespace rp::net
