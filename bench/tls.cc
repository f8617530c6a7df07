// SPDX-License-Identifier: Apache-2.0
#include "tls.hh"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <cstring>

#include "util/assert.hh"

namespace rp::bench {

using util::Errc;
using util::Error;
using util::Result;

std::string tls_errors() {
    std::string out;
    for (int i = 0; i < 8; ++i) {
        unsigned long e = ERR_get_error();
        if (e == 0) {
            break;
        }
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        out.append(out.empty() ? "" : "; ").append(buf);
    }
    ERR_clear_error();
    return out.empty() ? std::string("no detail from OpenSSL") : out;
}

Result<std::shared_ptr<TlsClient>> TlsClient::create(const std::string& cafile) {
    std::shared_ptr<TlsClient> t(new TlsClient());
    t->ctx_ = SSL_CTX_new(TLS_client_method());
    if (t->ctx_ == nullptr) {
        return Error::of(Errc::invalid, "tls: " + tls_errors());
    }
    int ok = cafile.empty() ? SSL_CTX_set_default_verify_paths(t->ctx_)
                            : SSL_CTX_load_verify_locations(t->ctx_, cafile.c_str(), nullptr);
    if (ok != 1) {
        return Error::of(Errc::invalid, "tls: CA file " + cafile + ": " + tls_errors());
    }
    SSL_CTX_set_verify(t->ctx_, SSL_VERIFY_PEER, nullptr);
    (void)SSL_CTX_set_session_cache_mode(t->ctx_, SSL_SESS_CACHE_OFF);
    (void)SSL_CTX_set_options(t->ctx_, SSL_OP_NO_TICKET);
    static const unsigned char alpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    (void)SSL_CTX_set_alpn_protos(t->ctx_, alpn, sizeof alpn);
    return t;
}

TlsClient::~TlsClient() { SSL_CTX_free(ctx_); }

Result<SslPtr> TlsClient::connect(int fd, const std::string& host) const {
    ERR_clear_error();
    SslPtr ssl(SSL_new(ctx_));
    if (!ssl || SSL_set_fd(ssl.get(), fd) != 1) {
        return Error::of(Errc::invalid, "tls: " + tls_errors());
    }
    // The name the certificate must carry: an address or a DNS name.
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1) {
        ERR_clear_error();
        (void)SSL_set_tlsext_host_name(ssl.get(), host.c_str());
        if (X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0) != 1) {
            return Error::of(Errc::invalid, "tls: host " + host + ": " + tls_errors());
        }
    }
    if (SSL_connect(ssl.get()) != 1) {
        long v = SSL_get_verify_result(ssl.get());
        std::string why = tls_errors();
        if (v != X509_V_OK) {
            why += std::string(" (") + X509_verify_cert_error_string(v) + ")";
        }
        return Error::of(Errc::closed, "tls handshake with " + host + ": " + why);
    }
    return ssl;
}

namespace {

int cipher_write(BIO* b, const char* data, std::size_t len, std::size_t* written) {
    static_cast<CipherIo*>(BIO_get_data(b))->out.append(data, len);
    *written = len;
    return 1;
}

int cipher_read(BIO* b, char* data, std::size_t len, std::size_t* got) {
    auto* io = static_cast<CipherIo*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    if (io->in_len == 0) {
        BIO_set_retry_read(b); // more is on its way: SSL_ERROR_WANT_READ
        *got = 0;
        return 0;
    }
    std::size_t n = len < io->in_len ? len : io->in_len;
    std::memcpy(data, io->in, n);
    io->in += n;
    io->in_len -= n;
    *got = n;
    return 1;
}

long cipher_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

BIO_METHOD* cipher_method() {
    static BIO_METHOD* m = [] {
        BIO_METHOD* b = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "cipher-io");
        RP_ASSERT(b != nullptr);
        (void)BIO_meth_set_write_ex(b, cipher_write);
        (void)BIO_meth_set_read_ex(b, cipher_read);
        (void)BIO_meth_set_ctrl(b, cipher_ctrl);
        return b;
    }();
    return m;
}

} // namespace

bool use_cipher_io(SSL* ssl, CipherIo* io) {
    BIO* b = BIO_new(cipher_method());
    if (b == nullptr) {
        return false;
    }
    BIO_set_data(b, io);
    BIO_set_init(b, 1);
    SSL_set_bio(ssl, b, b); // frees the socket BIO, which does not close the fd
    return true;
}

} // namespace rp::bench
