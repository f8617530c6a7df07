// SPDX-License-Identifier: Apache-2.0
// What the registry tells its observers: webhook events in Distribution's
// shape (observe/notify.hh) and audit records (observe/audit.hh). A write's
// event is on disk before the write is answered; a pull's is only queued.
#include "registry/manifest.hh"
#include "registry/registry.hh"
#include "util/strings.hh"

namespace rp::registry {

using observe::Action;
using reactor::Task;

namespace {

constexpr std::string_view blob_media_type = "application/octet-stream";

std::string_view duty_actor(std::string_view duty) {
    return duty == "retention" ? "ringport:retention" : duty == "gc" ? "ringport:gc" : "";
}

} // namespace

void Registry::content_url(const http::Exchange& ex, observe::Event& e,
                           std::string_view kind) const {
    const http::Request& req = ex.request();
    std::string_view host = req.header("X-Forwarded-Host");
    if (host.empty()) {
        host = req.header("Host");
    }
    std::string_view proto = req.header("X-Forwarded-Proto");
    if (proto != "http" && proto != "https") {
        proto = ex.secure() ? "https" : "http";
    }
    e.url_scheme = proto;
    e.url_host = host;
    e.url_kind = kind;
}

observe::Event Registry::event_of(const Origin& o, Action a, const std::string& repo) const {
    observe::Event e;
    e.action = a;
    e.repository = repo;
    if (o.ex != nullptr) {
        const http::Exchange& ex = *o.ex;
        const http::Request& req = ex.request();
        e.request.id = ex.request_id();
        // As Distribution's RemoteAddr: the first X-Forwarded-For address,
        // else X-Real-Ip, else the connection's peer.
        std::string_view fwd = req.header("X-Forwarded-For");
        fwd = util::trim(fwd.substr(0, fwd.find(',')));
        const std::string_view real = util::trim(req.header("X-Real-Ip"));
        e.request.addr = !fwd.empty() ? fwd : !real.empty() ? real : std::string_view(ex.peer());
        e.request.host = req.header("Host");
        e.request.method = req.method;
        e.request.useragent = req.header("User-Agent");
        e.actor = ex.user();
    } else {
        e.actor = duty_actor(o.duty);
    }
    return e;
}

observe::Event Registry::content_event(const http::Exchange& ex, Action a, const std::string& repo,
                                       std::string_view media_type, const std::string& digest,
                                       std::uint64_t size, std::string_view kind) const {
    observe::Event e = event_of(Origin{&ex, {}}, a, repo);
    e.media_type = media_type;
    e.digest = digest;
    e.size = size;
    content_url(ex, e, kind);
    return e;
}

void Registry::audit(const Origin& o, observe::AuditRecord r) noexcept {
    if (audit_ == nullptr) {
        return;
    }
    if (o.ex != nullptr) {
        const http::Exchange& ex = *o.ex;
        r.user = ex.user();
        r.certificate = ex.peer_subject();
        r.addr = ex.peer();
        r.request_id = ex.request_id();
        r.method = ex.request().method;
    } else {
        r.user = duty_actor(o.duty);
    }
    audit_->write(r);
}

Task<void> Registry::publish(std::uint64_t seq) noexcept {
    if (notifier_ != nullptr && seq != 0) {
        (void)co_await notifier_->durable(seq);
    }
}

Task<void> Registry::on_manifest_push(http::Exchange& ex, const std::string& repo,
                                      const std::string& ref, const storage::ManifestInfo& m,
                                      const ParsedManifest& p) noexcept {
    const bool by_tag = ref.find(':') == std::string::npos;
    const std::string& digest = m.digest.str();
    observe::AuditRecord a;
    a.action = "push";
    a.outcome = "ok";
    a.status = 201;
    a.repository = repo;
    a.reference = ref;
    a.digest = digest;
    a.size = m.size;
    a.media_type = m.media_type;
    audit(Origin{&ex, {}}, a);
    if (notifier_ == nullptr || !notifier_->wanted(Action::push, m.media_type)) {
        co_return;
    }
    observe::Event e =
        content_event(ex, Action::push, repo, m.media_type, digest, m.size, "manifests");
    if (by_tag) {
        e.tag = ref;
    }
    if (notifier_->include_references()) {
        e.references.reserve(p.blobs.size() + p.children.size());
        for (const auto* list : {&p.blobs, &p.children}) {
            for (const Descriptor& d : *list) {
                e.references.push_back(
                    observe::Descriptor{d.media_type, d.digest.str(), d.size, d.extra_json});
            }
        }
    }
    co_await publish(notifier_->record(e));
}

Task<void> Registry::on_blob_push(http::Exchange& ex, const std::string& repo,
                                  const storage::Digest& d, std::uint64_t size) noexcept {
    const std::string& digest = d.str();
    observe::AuditRecord a;
    a.action = "push";
    a.outcome = "ok";
    a.status = 201;
    a.repository = repo;
    a.digest = digest;
    a.size = size;
    audit(Origin{&ex, {}}, a);
    if (notifier_ == nullptr || !notifier_->wanted(Action::push, blob_media_type)) {
        co_return;
    }
    co_await publish(notifier_->record(
        content_event(ex, Action::push, repo, blob_media_type, digest, size, "blobs")));
}

Task<void> Registry::on_blob_mount(http::Exchange& ex, const std::string& repo,
                                   const storage::Digest& d,
                                   const std::optional<std::string>& from) noexcept {
    auto size = co_await store_.blob_size(d);
    const std::string& digest = d.str();
    observe::AuditRecord a;
    a.action = "mount";
    a.outcome = "ok";
    a.status = 201;
    a.repository = repo;
    a.digest = digest;
    a.size = size ? *size : 0;
    a.from = from ? std::string_view(*from) : std::string_view();
    audit(Origin{&ex, {}}, a);
    if (notifier_ == nullptr || !notifier_->wanted(Action::mount, blob_media_type)) {
        co_return;
    }
    observe::Event e =
        content_event(ex, Action::mount, repo, blob_media_type, digest, size ? *size : 0, "blobs");
    if (from) {
        e.from_repository = *from;
    }
    co_await publish(notifier_->record(e));
}

void Registry::on_manifest_pull(const http::Exchange& ex, const std::string& repo,
                                const std::string& ref, const storage::ManifestInfo& m) noexcept {
    if (notifier_ == nullptr || !notifier_->wanted(Action::pull, m.media_type)) {
        return;
    }
    observe::Event e =
        content_event(ex, Action::pull, repo, m.media_type, m.digest.str(), m.size, "manifests");
    if (ref.find(':') == std::string::npos) {
        e.tag = ref;
    }
    (void)notifier_->record(e);
}

void Registry::on_blob_pull(const http::Exchange& ex, const std::string& repo,
                            const storage::Digest& d, std::uint64_t size) noexcept {
    if (notifier_ == nullptr || !notifier_->wanted(Action::pull, blob_media_type)) {
        return;
    }
    (void)notifier_->record(
        content_event(ex, Action::pull, repo, blob_media_type, d.str(), size, "blobs"));
}

std::uint64_t Registry::on_delete(const Origin& o, const std::string& repo, std::string_view tag,
                                  std::string_view digest, std::string_view what) noexcept {
    observe::AuditRecord a;
    a.action = o.duty == "retention" ? "retention-delete" : "delete";
    a.outcome = "ok";
    a.status = o.ex != nullptr ? 202 : 0;
    a.repository = repo;
    a.reference = tag;
    a.digest = digest;
    a.detail = what;
    audit(o, a);
    if (notifier_ == nullptr || !notifier_->wanted(Action::del, {})) {
        return 0;
    }
    observe::Event e = event_of(o, Action::del, repo);
    e.tag = tag;
    e.digest = digest;
    return notifier_->record(e);
}

void Registry::audit_request(const http::Exchange& ex, RouteKind kind, const std::string& name,
                             const std::string& ref) noexcept {
    if (audit_ == nullptr) {
        return;
    }
    const http::Request& req = ex.request();
    const int status = ex.status();
    const bool read = req.method == "GET" || req.method == "HEAD";
    const bool admin = kind == RouteKind::gc || kind == RouteKind::retention ||
                       kind == RouteKind::scrub || kind == RouteKind::repository ||
                       kind == RouteKind::repository_tag || kind == RouteKind::repository_manifest;
    observe::AuditRecord a;
    a.status = status;
    a.repository = name;
    a.reference = ref;
    if (kind == RouteKind::session && req.method == "POST") {
        a.action = "sign_in"; // the web UI's: the name tried is the record's user
        a.outcome = status < 300 ? "ok" : "failed";
    } else if (kind == RouteKind::session) {
        return; // who is signed in, or signing out
    } else if (status == 401 && req.has_header("Authorization")) {
        a.action = "authenticate"; // credentials given and refused
        a.outcome = "failed";
    } else if (status == 401 || status == 403) {
        if (status == 401 && read && !admin) {
            return; // the challenge every client meets first, without credentials
        }
        a.action = "authorize";
        a.outcome = "denied";
    } else if (admin && !read) {
        a.action = "admin";
        a.outcome = status < 400 ? "ok" : "error";
        a.detail = req.target;
    } else if (!read && status >= 400 && kind != RouteKind::not_found) {
        a.action = req.method == "DELETE" ? "delete" : "push";
        a.outcome = "error";
    } else {
        return;
    }
    audit(Origin{&ex, {}}, a);
}

} // namespace rp::registry
