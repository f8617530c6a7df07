// SPDX-License-Identifier: Apache-2.0
// Manifest PUT (validation, storage) and DELETE.
#include <ctime>

#include "registry/manifest.hh"
#include "registry/registry.hh"
#include "storage/names.hh"

namespace rp::registry {

using reactor::Task;
using storage::Digest;
using util::Errc;

namespace {

// Every blob a manifest needs must be in the repository (foreign layers,
// with `urls`, excepted); every child of an index must be a manifest there.
std::optional<Digest> first_missing(const ParsedManifest& p, const storage::Index& idx,
                                    std::string_view repo) {
    for (const Descriptor& d : p.blobs) {
        if (!d.has_urls && !idx.has_layer(repo, d.digest)) {
            return d.digest;
        }
    }
    for (const Descriptor& d : p.children) {
        if (!idx.manifest(repo, d.digest)) {
            return d.digest;
        }
    }
    return std::nullopt;
}

} // namespace

Task<void> Registry::put_manifest(http::Exchange& ex, const Route& r) noexcept {
    bool by_digest = r.ref.find(':') != std::string::npos;
    std::optional<Digest> want;
    if (by_digest) {
        auto d = Digest::parse(r.ref);
        if (!d) {
            co_await fail(ex, Code::digest_invalid, "invalid digest");
            co_return;
        }
        want = std::move(*d);
    } else if (!storage::valid_tag(r.ref)) {
        co_await fail(ex, Code::tag_invalid, "invalid tag");
        co_return;
    }
    auto body = co_await read_manifest_body(ex);
    if (!body) {
        if (body.error().kind == Errc::too_large) {
            co_await fail(ex, Code::too_large, body.error().detail);
        } else if (body.error().kind == Errc::invalid) {
            co_await fail(ex, Code::manifest_invalid, body.error().detail);
        }
        co_return; // a peer that went away gets no answer
    }
    auto parsed = parse_manifest(*body, ex.request().header("Content-Type"));
    if (!parsed) {
        co_await fail(ex, Code::manifest_invalid, parsed.error().detail);
        co_return;
    }
    if (parsed->schema1) {
        co_await fail(ex, Code::manifest_invalid, "Docker schema 1 manifests are not accepted");
        co_return;
    }
    Digest d = storage::digest_of(want ? want->algorithm() : storage::Algorithm::sha256, *body);
    if (want && !(d == *want)) {
        co_await fail(ex, Code::digest_invalid, "manifest does not match digest " + want->str());
        co_return;
    }
    // Uses of what it references, from the check until it is stored: a
    // garbage collection removes none of them meanwhile (and one that is
    // removing one now finishes first, so the check sees it gone).
    std::vector<storage::Store::BlobUse> uses;
    uses.reserve(parsed->blobs.size() + parsed->children.size());
    for (const Descriptor& b : parsed->blobs) {
        uses.push_back(co_await store_.use_blob(b.digest));
    }
    for (const Descriptor& c : parsed->children) {
        uses.push_back(co_await store_.use_blob(c.digest));
    }
    if (auto missing = first_missing(*parsed, store_.index(), r.name)) {
        co_await fail(ex, Code::manifest_blob_unknown, missing->str());
        co_return;
    }
    auto info = std::make_shared<storage::ManifestInfo>(std::move(parsed->info));
    info->digest = d;
    info->size = body->size();
    info->body = std::make_shared<const std::string>(std::move(*body));
    std::optional<std::string> subject;
    if (info->subject) {
        subject = info->subject->str();
    }
    auto put = co_await store_.put_manifest(r.name, info,
                                            by_digest ? std::nullopt : std::optional(r.ref), true);
    if (!put) {
        co_await fail(ex, code_for(put.error(), Code::manifest_blob_unknown), put.error().detail);
        co_return;
    }
    // What retention goes by: the tag's push (keep_last, older_than), and
    // the manifest's and its children's (an untagged manifest's last use).
    const auto now = now_s();
    if (!by_digest) {
        activity_.tag_pushed(r.name, r.ref, now);
    }
    activity_.digest_pushed(r.name, d.str(), now);
    if (cfg_.insights) {
        insights_.pushed(r.name, now);
    }
    for (const Digest& child : info->children) {
        activity_.digest_pushed(r.name, child.str(), now);
    }
    if (observed()) {
        co_await on_manifest_push(ex, r.name, r.ref, *info, *parsed);
    }
    http::Response resp = empty_response(201);
    resp.add("Location", "/v2/" + r.name + "/manifests/" + d.str());
    resp.add("Docker-Content-Digest", d.str());
    if (subject) {
        resp.add("OCI-Subject", *subject);
    }
    co_await reply(ex, std::move(resp));
}

Task<void> Registry::delete_manifest(http::Exchange& ex, const Route& r) noexcept {
    if (!cfg_.delete_enabled) {
        co_await fail(ex, Code::unsupported, "deletes are disabled");
        co_return;
    }
    if (r.ref.find(':') != std::string::npos) {
        auto d = Digest::parse(r.ref);
        if (!d) {
            co_await fail(ex, Code::digest_invalid, "invalid digest");
            co_return;
        }
        auto del = co_await remove_manifest(r.name, *d, Origin{&ex, {}});
        if (!del) {
            co_await fail(ex, code_for(del.error(), Code::manifest_unknown), r.ref);
            co_return;
        }
        co_await reply(ex, empty_response(202));
        co_return;
    }
    if (!storage::valid_tag(r.ref)) {
        co_await fail(ex, Code::manifest_unknown, "invalid tag");
        co_return;
    }
    auto del = co_await remove_tag(r.name, r.ref, Origin{&ex, {}});
    if (!del) {
        co_await fail(ex, code_for(del.error(), Code::manifest_unknown), r.ref);
        co_return;
    }
    co_await reply(ex, empty_response(202));
}

} // namespace rp::registry
