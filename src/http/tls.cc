// SPDX-License-Identifier: Apache-2.0
#include "http/tls.hh"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>

#include <cerrno>
#include <cstring>

#include "http/server.hh"
#include "reactor/ops.hh"

namespace rp::http {

using reactor::Task;
using util::Errc;
using util::Error;
using util::Result;

namespace {

// Every error OpenSSL queued on this thread, oldest first, and the queue emptied.
std::string openssl_errors() {
    std::string out;
    for (int i = 0; i < 16; ++i) {
        unsigned long e = ERR_get_error();
        if (e == 0) {
            break;
        }
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) {
            out += "; ";
        }
        out += buf;
    }
    ERR_clear_error();
    return out.empty() ? std::string("no detail from OpenSSL") : out;
}

int protocol_version(const std::string& name) {
    if (name == "tls1.0") {
        return TLS1_VERSION;
    }
    if (name == "tls1.1") {
        return TLS1_1_VERSION;
    }
    if (name == "tls1.2") {
        return TLS1_2_VERSION;
    }
    if (name == "tls1.3") {
        return TLS1_3_VERSION;
    }
    return 0;
}

// ALPN: HTTP/1.1 is all we speak. A client that offers protocols but not
// this one gets the no_application_protocol alert (RFC 7301 §3.2), as Go's
// server (Distribution) sends.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned inlen, void*) {
    static const unsigned char ours[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    unsigned char* chosen = nullptr;
    if (SSL_select_next_proto(&chosen, outlen, ours, sizeof ours, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = chosen;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

std::string common_name(X509* cert) {
    X509_NAME* name = X509_get_subject_name(cert);
    int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (i < 0) {
        return {};
    }
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, data);
    if (n < 0) {
        return {};
    }
    std::string s(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
    OPENSSL_free(utf8);
    return s;
}

std::string describe_cert(SSL_CTX* ctx) {
    X509* cert = SSL_CTX_get0_certificate(ctx);
    if (cert == nullptr) {
        return "no certificate";
    }
    BIO* b = BIO_new(BIO_s_mem());
    if (b == nullptr) {
        return {};
    }
    (void)X509_NAME_print_ex(b, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    (void)BIO_puts(b, ", expires ");
    (void)ASN1_TIME_print(b, X509_get0_notAfter(cert));
    char* p = nullptr;
    long n = BIO_get_mem_data(b, &p);
    std::string s(p, static_cast<std::size_t>(n > 0 ? n : 0));
    BIO_free(b);
    return s;
}

// The context for `cfg`: every file read now, so that a bad file is an
// error here (at startup or reload) rather than at a client's handshake.
Result<SSL_CTX*> build_context(const TlsConfig& cfg) {
    ERR_clear_error();
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == nullptr) {
        return Error::of(Errc::system, "tls: SSL_CTX_new: " + openssl_errors());
    }
    auto fail = [&](const std::string& what) -> Result<SSL_CTX*> {
        SSL_CTX_free(ctx);
        return Error::of(Errc::invalid, "tls: " + what + ": " + openssl_errors());
    };
    int min = protocol_version(cfg.minimum_version);
    if (min == 0 || SSL_CTX_set_min_proto_version(ctx, min) != 1) {
        return fail("minimum version '" + cfg.minimum_version + "'");
    }
    // Modern defaults: forward secrecy and AEAD only. AES-128-GCM first,
    // the fastest with AES-NI; ChaCha20 for clients without it.
    char groups[] = "X25519:P-256:P-384"; // the macro below casts away const
    if (SSL_CTX_set_cipher_list(ctx,
                                "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305") != 1 ||
        SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                      "TLS_CHACHA20_POLY1305_SHA256") != 1 ||
        SSL_CTX_set1_groups_list(ctx, groups) != 1) {
        return fail("cipher defaults");
    }
    std::uint64_t opts = SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                         SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF;
#ifdef SSL_OP_ENABLE_KTLS
    opts |= SSL_OP_ENABLE_KTLS; // used when the kernel's tls module is there
#endif
    (void)SSL_CTX_set_options(ctx, opts);
    // Idle connections hand their record buffers back; reads take whole
    // buffers of records at once (one system call for many records).
    (void)SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);
    (void)SSL_CTX_set_num_tickets(ctx, 0);
    (void)SSL_CTX_set_session_id_context(ctx, reinterpret_cast<const unsigned char*>("ringport"),
                                         8);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg.certificate.c_str()) != 1) {
        return fail("certificate " + cfg.certificate);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg.key.c_str(), SSL_FILETYPE_PEM) != 1) {
        return fail("key " + cfg.key);
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        return fail("key " + cfg.key + " does not match certificate " + cfg.certificate);
    }
    if (cfg.client_auth != ClientAuth::none) {
        STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
        if (names == nullptr) {
            return fail("client CAs");
        }
        for (const std::string& ca : cfg.client_cas) {
            if (SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr) != 1 ||
                SSL_add_file_cert_subjects_to_stack(names, ca.c_str()) != 1) {
                sk_X509_NAME_pop_free(names, X509_NAME_free);
                return fail("client CA bundle " + ca);
            }
        }
        SSL_CTX_set_client_CA_list(ctx, names); // takes ownership
        int mode = SSL_VERIFY_PEER;
        if (cfg.client_auth == ClientAuth::required) {
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        }
        SSL_CTX_set_verify(ctx, mode, nullptr);
        SSL_CTX_set_verify_depth(ctx, 8);
    }
    return ctx;
}

} // namespace

// ---- TlsContext -----------------------------------------------------------

Result<std::unique_ptr<TlsContext>> TlsContext::create(TlsConfig cfg) {
    std::unique_ptr<TlsContext> t(new TlsContext(std::move(cfg)));
    auto ctx = build_context(t->cfg_);
    if (!ctx) {
        return std::move(ctx).error();
    }
    t->ctx_ = *ctx;
    t->description_ = describe_cert(*ctx);
    return t;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

Result<void> TlsContext::reload() {
    auto ctx = build_context(cfg_);
    if (!ctx) {
        return std::move(ctx).error();
    }
    std::string d = describe_cert(*ctx);
    SSL_CTX* old = nullptr;
    {
        std::lock_guard lk(mu_);
        old = ctx_;
        ctx_ = *ctx;
        description_ = std::move(d);
    }
    SSL_CTX_free(old); // sessions made from it hold their own references
    reloads_.fetch_add(1, std::memory_order_relaxed);
    return util::Ok{};
}

SSL* TlsContext::new_session() noexcept {
    std::lock_guard lk(mu_);
    return SSL_new(ctx_);
}

std::string TlsContext::describe() const {
    std::lock_guard lk(mu_);
    return description_;
}

// ---- TlsTransport -------------------------------------------------------

TlsTransport::TlsTransport(ShardServer& srv, int fd, SSL* ssl) noexcept
    : Transport(srv, fd), ssl_(ssl) {
    secure_ = true;
    if (SSL_set_fd(ssl_, fd) != 1) {
        failed_ = true; // open() fails the handshake at once
    }
}

TlsTransport::~TlsTransport() { SSL_free(ssl_); }

Task<int> TlsTransport::wait_for(int rc, int timeout_ms) noexcept {
    int e = SSL_get_error(ssl_, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (timeout_ms <= 0) {
            co_return -ETIME;
        }
        int p = co_await reactor::poll(fd_.get(), e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                                       timeout_ms);
        co_return p > 0 ? 1 : (p == 0 ? -ETIME : p);
    }
    failed_ = true;
    if (e == SSL_ERROR_ZERO_RETURN) {
        failed_ = false; // the peer's close_notify: a clean end
        co_return 0;
    }
    if (e == SSL_ERROR_SYSCALL) {
        int err = errno;
        ERR_clear_error();
        co_return err != 0 ? -err : -ECONNRESET;
    }
    ERR_clear_error();
    co_return -EPROTO;
}

namespace {

int ms_left(std::uint64_t deadline_us) {
    std::uint64_t now = reactor::monotonic_us();
    return now >= deadline_us ? 0 : static_cast<int>((deadline_us - now + 999) / 1000);
}

} // namespace

Task<Result<void>> TlsTransport::open(int timeout_ms) noexcept {
    if (failed_) {
        co_return Error::of(Errc::system, "tls: cannot attach the socket");
    }
    const std::uint64_t deadline =
        reactor::monotonic_us() + static_cast<std::uint64_t>(timeout_ms) * 1000;
    // Bounded: each turn either completes a handshake step or waits.
    for (int turn = 0; turn < 100000; ++turn) {
        ERR_clear_error();
        int rc = SSL_accept(ssl_);
        if (rc == 1) {
            X509* peer = SSL_get0_peer_certificate(ssl_);
            if (peer != nullptr && SSL_get_verify_result(ssl_) == X509_V_OK) {
                peer_subject_ = common_name(peer);
            }
            co_return util::Ok{};
        }
        int e = SSL_get_error(ssl_, rc);
        std::string why;
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            bool plain_http =
                e == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) == SSL_R_HTTP_REQUEST;
            why = e == SSL_ERROR_SSL ? openssl_errors() : std::string();
            if (plain_http) {
                // What Go's server says, so a client with the wrong scheme
                // learns why instead of seeing the connection drop.
                static constexpr char msg[] =
                    "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: "
                    "close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
                (void)co_await reactor::send(fd_.get(), msg, sizeof msg - 1, timeout_ms);
            }
        }
        int w = co_await wait_for(rc, ms_left(deadline));
        if (w != 1) {
            failed_ = true;
            if (w == -ETIME || w == -ECANCELED) {
                co_return Error::of(Errc::timeout, "tls handshake not completed in time");
            }
            co_return Error::of(
                Errc::invalid,
                "tls handshake failed: " +
                    (why.empty() ? std::string(std::strerror(w < 0 ? -w : EPIPE)) : why));
        }
    }
    failed_ = true;
    co_return Error::of(Errc::timeout, "tls handshake made no progress");
}

Task<int> TlsTransport::recv(char* buf, std::size_t cap, int timeout_ms) noexcept {
    const std::uint64_t deadline =
        reactor::monotonic_us() + static_cast<std::uint64_t>(timeout_ms) * 1000;
    std::size_t got = 0;
    // Bounded: each turn decrypts a record or waits for the socket.
    for (int turn = 0; turn < 1000000 && got < cap; ++turn) {
        ERR_clear_error();
        std::size_t n = 0;
        int rc = SSL_read_ex(ssl_, buf + got, cap - got, &n);
        if (rc == 1) {
            got += n;
            continue; // take whatever else is already here, up to cap
        }
        if (got > 0) {
            break; // hand over what we have; the next call meets the rest
        }
        int w = co_await wait_for(rc, ms_left(deadline));
        if (w != 1) {
            co_return w;
        }
    }
    co_return static_cast<int>(got);
}

Task<int> TlsTransport::send(const char* data, std::size_t len, int timeout_ms) noexcept {
    // Each wait is bounded by timeout_ms, as a plain send's.
    for (int turn = 0; turn < 1000000; ++turn) {
        ERR_clear_error();
        std::size_t n = 0;
        int rc = SSL_write_ex(ssl_, data, len, &n); // all of it (no partial writes)
        if (rc == 1) {
            sent_ += len;
            co_return static_cast<int>(len);
        }
        int w = co_await wait_for(rc, timeout_ms);
        if (w != 1) {
            failed_ = true;
            co_return w == 0 ? -EPIPE : w;
        }
    }
    failed_ = true;
    co_return -ETIME;
}

Task<bool> TlsTransport::wait_readable(int timeout_ms) noexcept {
    if (SSL_has_pending(ssl_) == 1) {
        co_return true;
    }
    int p = co_await reactor::poll(fd_.get(), POLLIN, timeout_ms);
    co_return p > 0 && (p & POLLIN) != 0;
}

Task<Result<void>> TlsTransport::send_file(int file_fd, std::uint64_t off, std::uint64_t len,
                                           int timeout_ms) noexcept {
#ifndef OPENSSL_NO_KTLS
    if (BIO_get_ktls_send(SSL_get_wbio(ssl_)) != 0) {
        // Kernel TLS: the kernel encrypts, so the file goes out zero-copy
        // by the plain path (every earlier SSL_write was whole: nothing is
        // left in OpenSSL's buffers).
        co_return co_await splice_file_to_socket(srv_, file_fd, off, len, fd_.get(), timeout_ms,
                                                 sent_);
    }
#endif
    // User-space encryption: the file is read in pieces into one of the
    // shard's large buffers (a small one when they are all lent), so memory
    // stays bounded whatever the blob's size.
    std::unique_ptr<char[]> big = srv_.take_big_buffer();
    std::size_t cap = srv_.config().body_buffer_bytes;
    std::unique_ptr<char[]> small;
    char* buf = big.get();
    if (!big) {
        cap = 16384;
        small = std::make_unique<char[]>(cap);
        buf = small.get();
    }
    Result<void> result = util::Ok{};
    while (len > 0) {
        auto want = static_cast<unsigned>(len < cap ? len : cap);
        int n = co_await reactor::read(file_fd, buf, want, off);
        if (n <= 0) {
            result = n == 0 ? Error::of(Errc::size_mismatch, "file shorter than expected")
                            : Error::sys(n, "read");
            break;
        }
        int s = co_await send(buf, static_cast<std::size_t>(n), timeout_ms);
        if (s < 0) {
            result = io_error(s, "tls send");
            break;
        }
        off += static_cast<std::uint64_t>(n);
        len -= static_cast<std::uint64_t>(n);
    }
    if (big) {
        srv_.give_big_buffer(std::move(big));
    }
    co_return result;
}

Task<void> TlsTransport::close() noexcept {
    if (!failed_ && !cut_ && SSL_is_init_finished(ssl_) == 1) {
        ERR_clear_error();
        (void)SSL_shutdown(ssl_); // one try: send close_notify if the socket takes it
        ERR_clear_error();
    }
    co_await Transport::close();
}

} // namespace rp::http
