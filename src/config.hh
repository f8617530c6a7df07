// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "auth/access.hh"
#include "mirror/router.hh"
#include "observe/notify.hh"
#include "storage/retention.hh"
#include "util/result.hh"

namespace rp {

// Every setting, with its default. ringport.example.toml (written by
// `ringport config-example`) lists the same keys; a test keeps them in step.
struct Config {
    // [http]
    std::string http_listen = "127.0.0.1:5000";
    std::uint64_t http_shards = 0; // 0: one per core
    std::uint64_t http_connections_per_shard_max = 16384;
    std::uint64_t http_header_bytes_max = 65536;
    std::uint64_t http_url_bytes_max = 8192;
    std::uint64_t http_idle_timeout_ms = 60000;
    std::uint64_t http_header_timeout_ms = 10000;
    std::uint64_t http_body_timeout_ms = 30000;
    std::uint64_t http_drain_timeout_ms = 10000;
    bool http_access_log = true;
    // [storage]
    std::string storage_root = "/var/lib/registry";
    bool storage_delete_enabled = true;
    std::uint64_t storage_manifest_bytes_max = 4u << 20;
    std::uint64_t storage_blob_bytes_max = 64ull << 30;
    std::uint64_t storage_uploads_max = 1024;
    std::uint64_t storage_upload_purge_age_hours = 168;
    std::uint64_t storage_upload_idle_timeout_s = 300;
    std::uint64_t storage_manifest_cache_bytes_max = 256u << 20;
    bool storage_index_snapshot = true;
    std::uint64_t storage_index_snapshot_interval_s = 60;
    // [runtime]
    std::uint64_t runtime_ring_entries = 1024;
    std::uint64_t runtime_blocking_threads = 2;
    std::uint64_t runtime_background_threads = 0; // 0: one per core
    // [tls]: one listener is TLS when certificate is set
    std::string tls_certificate;
    std::string tls_key;
    std::string tls_client_cas;  // PEM bundles, comma separated (or Distribution's "[a, b]")
    std::string tls_client_auth; // "", none, optional, required ("": required with client_cas)
    std::string tls_minimum_version = "tls1.2";
    std::uint64_t tls_handshake_timeout_ms = 10000;
    // [auth]
    std::string auth_scheme = "none"; // none, htpasswd, certificate
    std::string auth_htpasswd_path;
    std::string auth_realm = "ringport";
    std::uint64_t auth_failures_per_minute = 10;
    std::uint64_t auth_cache_ttl_s = 60;
    std::string auth_token_realm;
    std::string auth_token_service = "ringport";
    std::string auth_token_issuer = "ringport";
    std::string auth_token_rootcertbundle;
    std::string auth_token_jwks;
    std::uint64_t auth_token_leeway_s = 60;
    std::uint64_t auth_token_max_lifetime_s = 86400;
    std::string auth_token_path = "/auth/token";
    std::string auth_token_signing_key;
    std::uint64_t auth_token_ttl_s = 300;
    std::uint64_t auth_token_refresh_ttl_s = 604800;
    // [[access]] and [groups] (file only)
    auth::AccessConfig access;
    // [gc]
    std::uint64_t gc_interval_s = 0;
    std::uint64_t gc_grace_s = 3600; // gc_delete_untagged is with the flags below
    // [retention]
    std::uint64_t retention_interval_s = 0;
    std::uint64_t retention_activity_save_s = 60;
    std::uint64_t insights_days = 30;
    bool insights_enabled = true;
    // [scrub]
    std::uint64_t scrub_bytes_per_s = 0;
    std::uint64_t scrub_interval_s = 86400;
    // [[retention.policy]] (file only)
    std::vector<storage::RetentionPolicy> retention_policies;
    // [notifications]: Distribution's webhooks, spooled on disk
    std::uint64_t notifications_spool_bytes_max = 1ULL << 30;
    // [[notifications.endpoints]] and [notifications.events] (file only)
    std::vector<observe::Endpoint> notification_endpoints;
    // [audit]
    std::string audit_path; // "": no audit log
    // [catalog]
    std::uint64_t catalog_max_entries = 1000;
    // [ui] (ui_enabled is with the flags below)
    std::string ui_listen; // "": under /ui/ on http.listen; else a listener of its own
    std::uint64_t ui_session_ttl_s = 3600;
    // [log]
    std::string log_level = "info";
    std::string log_format = "text"; // text or json
    // flags of [auth], [storage], [gc] and [retention], kept together (fewer padding bytes)
    bool auth_certificate_users = true;
    bool auth_mount_without_from = true;
    bool auth_token_issue = false;
    bool storage_read_only = false;
    bool gc_delete_untagged = false;
    bool retention_dry_run = false;
    bool notifications_include_references = false;
    bool ui_enabled = true; // [ui] enabled
    // [[mirror]]: pull-through upstreams (file only; validated by mirror::validate)
    std::vector<mirror::Upstream> mirrors;
};

struct CliOverrides {
    std::optional<std::string> config_file;
    std::optional<std::string> listen;
    std::optional<std::string> root;
    std::optional<std::uint64_t> shards;
};

// Defaults, then the TOML file, then the environment (RINGPORT_<SECTION>_<KEY>
// and Distribution's REGISTRY_* names), then CLI flags. An unknown key (in
// the file or as a RINGPORT_* variable) or a bad value is an error that names it.
util::Result<Config> load_config(const CliOverrides& cli,
                                 const std::map<std::string, std::string>& env);

// Whether http.listen is reachable only from this machine (127.0.0.0/8, ::1).
bool listen_is_loopback(const Config& cfg);
// Whether an address (HOST:PORT) is reachable only from this machine.
bool address_is_loopback(const std::string& listen);
// The warning for credentials on a plain listener others can reach, or "".
std::string plain_auth_warning(const Config& cfg);

// tls.client_cas as a list of paths.
std::vector<std::string> client_ca_files(const Config& cfg);
// tls.client_auth with its default applied: none, optional or required.
std::string client_auth_mode(const Config& cfg);

// The documented key list, rendered as a commented TOML file.
std::string example_config();

} // namespace rp
