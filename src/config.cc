// SPDX-License-Identifier: Apache-2.0
#include "config.hh"

#include <toml++/toml.h>

#include <vector>

#include "config_tables.hh"
#include "reactor/socket.hh"
#include "util/strings.hh"

namespace rp {

using util::Errc;
using util::Error;
using util::Result;

namespace {

enum class Kind { string, uint, boolean };

struct Key {
    const char* section;
    const char* name;
    Kind kind;
    std::uint64_t min;
    std::uint64_t max;
    const char* help;
    std::string Config::*s = nullptr;
    std::uint64_t Config::*u = nullptr;
    bool Config::*b = nullptr;
    const char* registry_env = nullptr; // Distribution's name for the same setting
};

Key str_key(const char* sec, const char* name, std::string Config::*m, const char* help,
            const char* reg = nullptr) {
    Key k{sec, name, Kind::string, 0, 0, help};
    k.s = m;
    k.registry_env = reg;
    return k;
}

Key uint_key(const char* sec, const char* name, std::uint64_t Config::*m, std::uint64_t min,
             std::uint64_t max, const char* help, const char* reg = nullptr) {
    Key k{sec, name, Kind::uint, min, max, help};
    k.u = m;
    k.registry_env = reg;
    return k;
}

Key bool_key(const char* sec, const char* name, bool Config::*m, const char* help,
             const char* reg = nullptr) {
    Key k{sec, name, Kind::boolean, 0, 0, help};
    k.b = m;
    k.registry_env = reg;
    return k;
}

const std::vector<Key>& keys() {
    static const std::vector<Key> k = {
        str_key("http", "listen", &Config::http_listen,
                "address to listen on: HOST:PORT, [V6]:PORT or :PORT (all interfaces)",
                "REGISTRY_HTTP_ADDR"),
        uint_key("http", "shards", &Config::http_shards, 0, 256,
                 "reactor threads, each with its own io_uring; 0 means one per core"),
        uint_key("http", "connections_per_shard_max", &Config::http_connections_per_shard_max, 1,
                 1u << 20, "open connections per shard; more are answered 503 and closed"),
        uint_key("http", "header_bytes_max", &Config::http_header_bytes_max, 1024, 1u << 24,
                 "largest request head (request line and headers); larger gets 431"),
        uint_key("http", "url_bytes_max", &Config::http_url_bytes_max, 256, 1u << 20,
                 "longest request target; longer gets 414"),
        uint_key("http", "idle_timeout_ms", &Config::http_idle_timeout_ms, 1, 86400000,
                 "a keep-alive connection with no request for this long is closed"),
        uint_key("http", "header_timeout_ms", &Config::http_header_timeout_ms, 1, 86400000,
                 "a request head must arrive within this time of its first byte (408)"),
        uint_key("http", "body_timeout_ms", &Config::http_body_timeout_ms, 1, 86400000,
                 "a body or a response that makes no progress for this long is cut"),
        uint_key("http", "drain_timeout_ms", &Config::http_drain_timeout_ms, 0, 86400000,
                 "on SIGTERM, in-flight requests get this long to finish"),
        bool_key("http", "access_log", &Config::http_access_log, "one log line per request"),
        str_key("storage", "root", &Config::storage_root,
                "registry root; the tree is <root>/docker/registry/v2 as Distribution lays it out",
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"),
        bool_key("storage", "delete_enabled", &Config::storage_delete_enabled,
                 "allow manifest, tag and blob deletes (off: 405 UNSUPPORTED)",
                 "REGISTRY_STORAGE_DELETE_ENABLED"),
        uint_key("storage", "manifest_bytes_max", &Config::storage_manifest_bytes_max, 1024,
                 1u << 30, "largest manifest accepted (413 SIZE_INVALID)"),
        uint_key("storage", "blob_bytes_max", &Config::storage_blob_bytes_max, 1, UINT64_MAX,
                 "largest blob accepted (413 SIZE_INVALID)"),
        uint_key(
            "storage", "uploads_max", &Config::storage_uploads_max, 1, 1u << 20,
            "upload sessions holding memory at once; when full, the idlest idle one is released, "
            "and only when every one is in use is a new one refused (429 TOOMANYREQUESTS)"),
        uint_key("storage", "upload_purge_age_hours", &Config::storage_upload_purge_age_hours, 1,
                 1u << 20, "unfinished uploads older than this are removed"),
        uint_key("storage", "upload_idle_timeout_s", &Config::storage_upload_idle_timeout_s, 1,
                 604800,
                 "an upload session no request used for this long gives up its memory and "
                 "descriptors; its data stays on disk and the next request resumes it"),
        uint_key("storage", "manifest_cache_bytes_max", &Config::storage_manifest_cache_bytes_max,
                 0, UINT64_MAX, "manifest bytes kept in memory; the rest is read from disk"),
        bool_key("storage", "index_snapshot", &Config::storage_index_snapshot,
                 "keep a snapshot of the index on disk (saved in the background and at a clean "
                 "stop; a journal names the repositories written since) and start from it, "
                 "also after a crash (off: always read every link at startup)"),
        bool_key("storage", "read_only", &Config::storage_read_only,
                 "maintenance mode: reads are served, every write gets 405 UNSUPPORTED",
                 "REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED"),
        uint_key("storage", "index_snapshot_interval_s", &Config::storage_index_snapshot_interval_s,
                 1, 86400,
                 "how often the snapshot is saved while something was written since the last "
                 "save; a start after a crash reads again what was written since"),
        uint_key("gc", "interval_s", &Config::gc_interval_s, 0, 31536000,
                 "garbage collection while serving, every this many seconds; 0: only on "
                 "demand (POST /ringport/v1/gc, or `ringport garbage-collect` while stopped)"),
        uint_key("gc", "grace_s", &Config::gc_grace_s, 0, 31536000,
                 "blobs, links and manifests used (uploaded, linked, mounted, pushed, asked "
                 "for with HEAD) this recently are kept, so a push under way never loses "
                 "what it uploaded before its manifest"),
        bool_key("gc", "delete_untagged", &Config::gc_delete_untagged,
                 "scheduled runs also delete manifests no tag reaches (platforms of tagged "
                 "indexes and referrers of live manifests are kept)"),
        uint_key("retention", "interval_s", &Config::retention_interval_s, 0, 31536000,
                 "retention policies ([[retention.policy]]) are applied every this many "
                 "seconds; 0: only on demand (POST /ringport/v1/retention)"),
        bool_key("retention", "dry_run", &Config::retention_dry_run,
                 "scheduled retention runs only report what they would delete (GET "
                 "/ringport/v1/retention)"),
        uint_key("retention", "activity_save_s", &Config::retention_activity_save_s, 1, 86400,
                 "tag push and pull times are kept in memory and saved to "
                 "<root>/.ringport.activity this often while they changed (a kill -9 loses "
                 "at most this much of them)"),
        bool_key("insights", "enabled", &Config::insights_enabled,
                 "count pulls per day per repository and tag, and last push and pull per "
                 "repository (off: the pull path skips them; stored bytes are counted either "
                 "way, by the index)"),
        uint_key("insights", "days", &Config::insights_days, 1, 3660,
                 "pulls per day (per repository and per tag) are kept this many days, with "
                 "the registry's stored bytes per day, in <root>/.ringport.insights (saved "
                 "with the activity)"),
        uint_key("scrub", "bytes_per_s", &Config::scrub_bytes_per_s, 0, UINT64_MAX,
                 "the online scrub reads and verifies this many blob bytes per second, on a "
                 "thread at nice 19, and reports what it finds (GET /ringport/v1/scrub; "
                 "repairs are `ringport check --repair`'s); 0: off"),
        uint_key("scrub", "interval_s", &Config::scrub_interval_s, 1, 31536000,
                 "the pause between the end of a scrub pass and the start of the next"),
        uint_key("notifications", "spool_bytes_max", &Config::notifications_spool_bytes_max,
                 1U << 20U, UINT64_MAX,
                 "webhook events wait in <root>/.ringport.spool until every endpoint took "
                 "them; past this size the oldest are dropped (and counted)"),
        str_key("audit", "path", &Config::audit_path,
                "the audit log: one JSON line per push, mount, delete, retention or GC "
                "deletion, refused login or access, and admin action; reopened on SIGHUP "
                "(\"\": none)"),
        uint_key("runtime", "ring_entries", &Config::runtime_ring_entries, 2, 32768,
                 "submission queue entries of each shard's io_uring"),
        uint_key("runtime", "blocking_threads", &Config::runtime_blocking_threads, 1, 256,
                 "helper threads for the blocking calls io_uring cannot make (recursive "
                 "removes, the journal's first write after a save)"),
        uint_key("runtime", "background_threads", &Config::runtime_background_threads, 0, 256,
                 "threads for background work at nice 19 (snapshot saves, purges, the "
                 "verification) and for the startup index load; 0 means one per core"),
        str_key("tls", "certificate", &Config::tls_certificate,
                "PEM certificate chain (leaf first, ECDSA or RSA); set, the listener speaks TLS "
                "only; reloaded with the key on SIGHUP",
                "REGISTRY_HTTP_TLS_CERTIFICATE"),
        str_key("tls", "key", &Config::tls_key, "PEM private key of the certificate",
                "REGISTRY_HTTP_TLS_KEY"),
        str_key("tls", "client_cas", &Config::tls_client_cas,
                "PEM bundles client certificates must chain to (mTLS), comma separated; "
                "Distribution's list form \"[a.pem, b.pem]\" is accepted",
                "REGISTRY_HTTP_TLS_CLIENTCAS"),
        str_key("tls", "client_auth", &Config::tls_client_auth,
                "client certificates: none, optional (verified when sent) or required; empty "
                "means required when client_cas is set, as Distribution does"),
        str_key("tls", "minimum_version", &Config::tls_minimum_version,
                "oldest protocol accepted: tls1.2 or tls1.3 (tls1.0 and tls1.1 are accepted "
                "as names, but OpenSSL's security level refuses them)",
                "REGISTRY_HTTP_TLS_MINIMUMTLS"),
        uint_key("tls", "handshake_timeout_ms", &Config::tls_handshake_timeout_ms, 1, 3600000,
                 "a TLS handshake must complete in this time, or the connection is closed"),
        str_key("auth", "scheme", &Config::auth_scheme,
                "none (anyone may do anything), htpasswd (Basic auth, bcrypt) or certificate "
                "(the client certificate's name is the user; needs tls.client_cas)",
                "REGISTRY_AUTH"),
        str_key("auth", "htpasswd_path", &Config::auth_htpasswd_path,
                "htpasswd file of bcrypt hashes (make one with `ringport htpasswd FILE USER`); "
                "read again when it changes",
                "REGISTRY_AUTH_HTPASSWD_PATH"),
        str_key("auth", "realm", &Config::auth_realm, "the realm of the Basic challenge",
                "REGISTRY_AUTH_HTPASSWD_REALM"),
        uint_key("auth", "failures_per_minute", &Config::auth_failures_per_minute, 1, 1u << 30,
                 "failed logins a client address may make per minute (a burst of as many); "
                 "more get 429 without a password check"),
        uint_key("auth", "cache_ttl_s", &Config::auth_cache_ttl_s, 0, 3600,
                 "a good password check is remembered this long (keyed hash, never the "
                 "password), so a pull of many layers pays one bcrypt"),
        bool_key("auth", "certificate_users", &Config::auth_certificate_users,
                 "a verified client certificate's common name is the user when the request "
                 "carries no other credentials"),
        bool_key("auth", "mount_without_from", &Config::auth_mount_without_from,
                 "cross-repository mounts without `from` (the registry finds a repository "
                 "holding the blob that the caller may pull); off: such a mount is an upload"),
        str_key("auth", "token_realm", &Config::auth_token_realm,
                "scheme token: the token endpoint clients are sent to (an external issuer); "
                "empty with token_issue: this registry's own, at token_path",
                "REGISTRY_AUTH_TOKEN_REALM"),
        str_key("auth", "token_service", &Config::auth_token_service,
                "the service tokens are for (their audience)", "REGISTRY_AUTH_TOKEN_SERVICE"),
        str_key("auth", "token_issuer", &Config::auth_token_issuer,
                "the issuer tokens must name (iss)", "REGISTRY_AUTH_TOKEN_ISSUER"),
        str_key("auth", "token_rootcertbundle", &Config::auth_token_rootcertbundle,
                "PEM certificates whose keys sign tokens, and the roots of x5c chains",
                "REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE"),
        str_key("auth", "token_jwks", &Config::auth_token_jwks,
                "a JWKS file of keys that sign tokens", "REGISTRY_AUTH_TOKEN_JWKS"),
        uint_key("auth", "token_leeway_s", &Config::auth_token_leeway_s, 0, 3600,
                 "clock skew allowed on a token's exp, nbf and iat"),
        uint_key("auth", "token_max_lifetime_s", &Config::auth_token_max_lifetime_s, 60, 31536000,
                 "a token whose expiry is further away than this is refused"),
        bool_key("auth", "token_issue", &Config::auth_token_issue,
                 "run the built-in token issuer (signs in with htpasswd_path or the client "
                 "certificate, grants what [[access]] allows)"),
        str_key("auth", "token_path", &Config::auth_token_path,
                "where the built-in issuer answers (GET, and the OAuth2 POST form)"),
        str_key("auth", "token_signing_key", &Config::auth_token_signing_key,
                "PEM private key the built-in issuer signs with (ECDSA, Ed25519 or RSA); empty: "
                "a new P-256 key at each start (tokens die with the process)"),
        uint_key("auth", "token_ttl_s", &Config::auth_token_ttl_s, 10, 86400,
                 "lifetime of the built-in issuer's access tokens"),
        uint_key("auth", "token_refresh_ttl_s", &Config::auth_token_refresh_ttl_s, 60, 31536000,
                 "lifetime of its refresh tokens (docker login keeps one)"),
        uint_key("catalog", "max_entries", &Config::catalog_max_entries, 1, 1u << 20,
                 "largest catalog page; a larger n is clamped", "REGISTRY_CATALOG_MAXENTRIES"),
        str_key("log", "level", &Config::log_level, "debug, info, warn or error",
                "REGISTRY_LOG_LEVEL"),
        str_key("log", "format", &Config::log_format,
                "text, or json: one object per line with time, level and msg; access lines "
                "have their fields (request_id, method, target, status, ...)",
                "REGISTRY_LOG_FORMATTER"),
        bool_key("ui", "enabled", &Config::ui_enabled,
                 "serve the web UI at /ui/ (it reads the admin API with the signed-in user's "
                 "rights; off: /ui/ is 404)"),
        str_key("ui", "listen", &Config::ui_listen,
                "serve the web UI on an address of its own (HOST:PORT), with the admin API it "
                "reads and of /v2/ only blob reads; /ui/ on http.listen is then 404. Empty: "
                "/ui/ on http.listen"),
        uint_key("ui", "session_ttl_s", &Config::ui_session_ttl_s, 60, 86400,
                 "a web UI sign-in lasts this long (a session cookie; kept in memory, so a "
                 "restart signs everyone out)"),
    };
    return k;
}

std::string key_path(const Key& k) { return std::string(k.section) + "." + k.name; }

std::string env_name(const Key& k) {
    std::string s = "RINGPORT_" + std::string(k.section) + "_" + k.name;
    for (char& c : s) {
        c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
    }
    return s;
}

Result<void> set_from_string(Config& cfg, const Key& k, std::string_view v,
                             const std::string& where) {
    switch (k.kind) {
    case Kind::string: cfg.*(k.s) = std::string(v); return util::Ok{};
    case Kind::boolean: {
        std::string l = util::to_lower(util::trim(v));
        if (l == "true" || l == "1" || l == "yes" || l == "on") {
            cfg.*(k.b) = true;
        } else if (l == "false" || l == "0" || l == "no" || l == "off") {
            cfg.*(k.b) = false;
        } else {
            return Error::of(Errc::invalid,
                             where + ": expected true or false, got '" + std::string(v) + "'");
        }
        return util::Ok{};
    }
    case Kind::uint: {
        auto n = util::parse_u64(util::trim(v));
        if (!n || *n < k.min || *n > k.max) {
            return Error::of(Errc::invalid,
                             where + ": expected an integer in [" + std::to_string(k.min) + ", " +
                                 std::to_string(k.max) + "], got '" + std::string(v) + "'");
        }
        cfg.*(k.u) = *n;
        return util::Ok{};
    }
    }
    return util::Ok{};
}

Result<void> set_from_toml(Config& cfg, const Key& k, const toml::node& node) {
    std::string where = "config key " + key_path(k);
    switch (k.kind) {
    case Kind::string:
        if (auto v = node.value<std::string>()) {
            cfg.*(k.s) = *v;
            return util::Ok{};
        }
        return Error::of(Errc::invalid, where + ": expected a string");
    case Kind::boolean:
        if (auto v = node.value<bool>(); v && node.is_boolean()) {
            cfg.*(k.b) = *v;
            return util::Ok{};
        }
        return Error::of(Errc::invalid, where + ": expected true or false");
    case Kind::uint:
        if (auto v = node.value<std::int64_t>(); v && node.is_integer() && *v >= 0) {
            return set_from_string(cfg, k, std::to_string(*v), where);
        }
        return Error::of(Errc::invalid, where + ": expected a non-negative integer");
    }
    return util::Ok{};
}

const Key* find_key(std::string_view section, std::string_view name) {
    for (const Key& k : keys()) {
        if (section == k.section && name == k.name) {
            return &k;
        }
    }
    return nullptr;
}

Result<void> apply_file(Config& cfg, const std::string& path) {
    toml::table tbl;
    try {
        tbl = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
        std::string msg = "config file " + path + ": " + std::string(e.description());
        const auto& src = e.source();
        msg += " (line " + std::to_string(src.begin.line) + ", column " +
               std::to_string(src.begin.column) + ")";
        return Error::of(Errc::invalid, msg);
    } catch (const std::exception& e) {
        return Error::of(Errc::invalid, "config file " + path + ": " + e.what());
    }
    for (auto&& [section, node] : tbl) {
        if (section.str() == "access" || section.str() == "groups") {
            if (auto r = config_tables::apply_access(cfg, path, section.str(), node); !r) {
                return r;
            }
            continue;
        }
        if (section.str() == "mirror") {
            const toml::array* a = node.as_array();
            if (a == nullptr || !a->is_array_of_tables()) {
                return Error::of(Errc::invalid, "config file " + path +
                                                    ": 'mirror' must be an array of tables "
                                                    "([[mirror]])");
            }
            for (std::size_t i = 0; i < a->size(); ++i) {
                auto u = config_tables::parse_mirror(*a->get(i)->as_table(),
                                                     "mirror[" + std::to_string(i) + "]");
                if (!u) {
                    return std::move(u).error();
                }
                cfg.mirrors.push_back(std::move(*u));
            }
            continue;
        }
        const toml::table* t = node.as_table();
        if (t == nullptr) {
            return Error::of(Errc::invalid, "config file " + path + ": unknown key '" +
                                                std::string(section.str()) + "'");
        }
        for (auto&& [name, value] : *t) {
            if (section.str() == "retention" && name.str() == "policy") {
                const toml::array* a = value.as_array();
                if (a == nullptr || !a->is_array_of_tables()) {
                    return Error::of(Errc::invalid,
                                     "config file " + path +
                                         ": 'retention.policy' must be an array of tables "
                                         "([[retention.policy]])");
                }
                for (std::size_t i = 0; i < a->size(); ++i) {
                    auto p = config_tables::parse_policy(
                        *a->get(i)->as_table(), "retention.policy[" + std::to_string(i) + "]");
                    if (!p) {
                        return std::move(p).error();
                    }
                    cfg.retention_policies.push_back(std::move(*p));
                }
                continue;
            }
            if (section.str() == "notifications") {
                auto n = config_tables::apply_notifications(cfg, name.str(), value);
                if (!n) {
                    return Error::of(Errc::invalid,
                                     "config file " + path + ": " + n.error().detail);
                }
                if (*n) {
                    continue;
                }
            }
            const Key* k = find_key(section.str(), name.str());
            if (k == nullptr) {
                return Error::of(Errc::invalid, "config file " + path + ": unknown key '" +
                                                    std::string(section.str()) + "." +
                                                    std::string(name.str()) + "'");
            }
            auto r = set_from_toml(cfg, *k, value);
            if (!r) {
                return r;
            }
        }
    }
    return util::Ok{};
}

Result<void> apply_env(Config& cfg, const std::map<std::string, std::string>& env) {
    for (const Key& k : keys()) {
        if (k.registry_env != nullptr) {
            auto it = env.find(k.registry_env);
            if (it != env.end()) {
                auto r = set_from_string(cfg, k, it->second,
                                         std::string("environment ") + k.registry_env);
                if (!r) {
                    return r;
                }
            }
        }
    }
    for (const auto& [name, value] : env) {
        if (name.rfind("RINGPORT_", 0) != 0) {
            continue;
        }
        const Key* hit = nullptr;
        for (const Key& k : keys()) {
            if (env_name(k) == name) {
                hit = &k;
            }
        }
        if (hit == nullptr) {
            return Error::of(Errc::invalid, "unknown environment setting " + name);
        }
        auto r = set_from_string(cfg, *hit, value, "environment " + name);
        if (!r) {
            return r;
        }
    }
    return util::Ok{};
}

Result<void> validate(const Config& cfg) {
    auto a = reactor::parse_listen_addr(cfg.http_listen);
    if (!a) {
        return Error::of(Errc::invalid,
                         "http.listen '" + cfg.http_listen + "': " + a.error().detail);
    }
    if (!cfg.ui_listen.empty()) {
        auto u = reactor::parse_listen_addr(cfg.ui_listen);
        if (!u) {
            return Error::of(Errc::invalid,
                             "ui.listen '" + cfg.ui_listen + "': " + u.error().detail);
        }
        if (u->port != 0 && u->port == a->port && u->host == a->host) {
            return Error::of(Errc::invalid, "ui.listen '" + cfg.ui_listen +
                                                "' is http.listen's address: leave ui.listen empty "
                                                "to serve the UI there under /ui/");
        }
    }
    if (cfg.storage_root.empty()) {
        return Error::of(Errc::invalid, "storage.root must not be empty");
    }
    if (auto m = mirror::validate(cfg.mirrors); !m) {
        return m;
    }
    // Distribution's formatter names: logstash is taken as json.
    if (cfg.log_format != "text" && cfg.log_format != "json" && cfg.log_format != "logstash") {
        return Error::of(Errc::invalid,
                         "log.format '" + cfg.log_format + "': expected text or json");
    }
    if (cfg.tls_certificate.empty() != cfg.tls_key.empty()) {
        return Error::of(Errc::invalid, "tls.certificate and tls.key go together");
    }
    if (cfg.tls_certificate.empty() && !cfg.tls_client_cas.empty()) {
        return Error::of(Errc::invalid, "tls.client_cas needs tls.certificate and tls.key");
    }
    const std::string& ca = cfg.tls_client_auth;
    if (!ca.empty() && ca != "none" && ca != "optional" && ca != "required") {
        return Error::of(Errc::invalid,
                         "tls.client_auth '" + ca + "': expected none, optional or required");
    }
    if ((ca == "optional" || ca == "required") && client_ca_files(cfg).empty()) {
        return Error::of(Errc::invalid, "tls.client_auth '" + ca + "' needs tls.client_cas");
    }
    const std::string& as = cfg.auth_scheme;
    if (as != "none" && as != "htpasswd" && as != "certificate" && as != "token") {
        return Error::of(Errc::invalid,
                         "auth.scheme '" + as + "': expected none, htpasswd, certificate or token");
    }
    if (as == "token" && cfg.auth_token_realm.empty() && !cfg.auth_token_issue) {
        return Error::of(Errc::invalid, "auth.scheme token needs auth.token_realm (an external "
                                        "issuer) or auth.token_issue = true (the built-in one)");
    }
    if (cfg.auth_token_issue && as != "token") {
        return Error::of(Errc::invalid, "auth.token_issue needs auth.scheme token");
    }
    if (cfg.auth_token_path.empty() || cfg.auth_token_path.front() != '/' ||
        cfg.auth_token_path.rfind("/v2", 0) == 0) {
        return Error::of(Errc::invalid, "auth.token_path must be an absolute path outside /v2/");
    }
    if (as == "htpasswd" && cfg.auth_htpasswd_path.empty()) {
        return Error::of(Errc::invalid, "auth.scheme htpasswd needs auth.htpasswd_path");
    }
    if (as == "certificate" && client_auth_mode(cfg) == "none") {
        return Error::of(Errc::invalid, "auth.scheme certificate needs tls.client_cas");
    }
    if (as == "none" && !cfg.access.rules.empty()) {
        return Error::of(Errc::invalid,
                         "[[access]] rules need an auth.scheme (htpasswd, certificate or token)");
    }
    for (std::size_t i = 0; i < cfg.access.rules.size(); ++i) {
        for (const std::string& w : cfg.access.rules[i].who) {
            if (w.rfind("group:", 0) == 0 && cfg.access.groups.count(w.substr(6)) == 0) {
                return Error::of(Errc::invalid, "access[" + std::to_string(i) +
                                                    "].who: no group '" + w.substr(6) +
                                                    "' in [groups]");
            }
        }
    }
    const std::string& mv = cfg.tls_minimum_version;
    if (mv != "tls1.0" && mv != "tls1.1" && mv != "tls1.2" && mv != "tls1.3") {
        return Error::of(Errc::invalid, "tls.minimum_version '" + mv +
                                            "': expected tls1.2 or tls1.3 (or tls1.0, tls1.1)");
    }
    const std::string& l = cfg.log_level;
    if (l != "debug" && l != "info" && l != "warn" && l != "error") {
        return Error::of(Errc::invalid,
                         "log.level '" + l + "': expected debug, info, warn or error");
    }
    return util::Ok{};
}

} // namespace

bool listen_is_loopback(const Config& cfg) { return address_is_loopback(cfg.http_listen); }

bool address_is_loopback(const std::string& listen) {
    auto a = reactor::parse_listen_addr(listen);
    if (!a) {
        return false;
    }
    const std::string& h = a->host;
    return h.rfind("127.", 0) == 0 || h == "::1" || h == "localhost";
}

std::string plain_auth_warning(const Config& cfg) {
    if (cfg.auth_scheme == "none" || !cfg.tls_certificate.empty()) {
        return {};
    }
    std::string open;
    if (!listen_is_loopback(cfg)) {
        open = "http.listen " + cfg.http_listen;
    } else if (cfg.ui_enabled && !cfg.ui_listen.empty() && !address_is_loopback(cfg.ui_listen)) {
        open = "ui.listen " + cfg.ui_listen;
    } else {
        return {};
    }
    return "!!! auth.scheme " + cfg.auth_scheme + " on a plain-HTTP listener (" + open +
           ") that other machines can reach: passwords and tokens cross the network in clear "
           "text. Set tls.certificate and tls.key. !!!";
}

std::vector<std::string> client_ca_files(const Config& cfg) {
    std::string_view v = util::trim(cfg.tls_client_cas);
    if (v.size() >= 2 && v.front() == '[' && v.back() == ']') {
        v = v.substr(1, v.size() - 2);
    }
    std::vector<std::string> out;
    while (!v.empty()) {
        std::size_t comma = v.find(',');
        std::string_view p = util::trim(v.substr(0, comma));
        v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
        if (p.size() >= 2 && (p.front() == '"' || p.front() == '\'') && p.back() == p.front()) {
            p = p.substr(1, p.size() - 2);
        }
        if (!p.empty()) {
            out.emplace_back(p);
        }
    }
    return out;
}

std::string client_auth_mode(const Config& cfg) {
    if (!cfg.tls_client_auth.empty()) {
        return cfg.tls_client_auth;
    }
    return client_ca_files(cfg).empty() ? "none" : "required";
}

Result<Config> load_config(const CliOverrides& cli, const std::map<std::string, std::string>& env) {
    Config cfg;
    if (cli.config_file) {
        auto r = apply_file(cfg, *cli.config_file);
        if (!r) {
            return std::move(r).error();
        }
    }
    auto e = apply_env(cfg, env);
    if (!e) {
        return std::move(e).error();
    }
    if (cli.listen) {
        cfg.http_listen = *cli.listen;
    }
    if (cli.root) {
        cfg.storage_root = *cli.root;
    }
    if (cli.shards) {
        cfg.http_shards = *cli.shards;
    }
    auto v = validate(cfg);
    if (!v) {
        return std::move(v).error();
    }
    return cfg;
}

std::string example_config() {
    Config d;
    std::string out = "# ringport configuration. Every key, with its default.\n"
                      "# Precedence: command-line flags, then environment, then this file,\n"
                      "# then defaults. Environment: RINGPORT_<SECTION>_<KEY>, e.g.\n"
                      "# RINGPORT_HTTP_LISTEN; Distribution's REGISTRY_* names are accepted\n"
                      "# where noted.\n";
    std::string section;
    for (const Key& k : keys()) {
        if (section != k.section) {
            section = k.section;
            out += "\n[" + section + "]\n";
        }
        out += "# " + std::string(k.help) + "\n# env: " + env_name(k);
        if (k.registry_env != nullptr) {
            out += ", " + std::string(k.registry_env);
        }
        out += "\n";
        std::string value;
        switch (k.kind) {
        case Kind::string: value = "\"" + d.*(k.s) + "\""; break;
        case Kind::uint: value = std::to_string(d.*(k.u)); break;
        case Kind::boolean: value = d.*(k.b) ? "true" : "false"; break;
        }
        out += k.name + std::string(" = ") + value + "\n";
    }
    out +=
        "\n# Retention policies: one [[retention.policy]] table each (file only). A\n"
        "# repository takes the first policy naming it. A tag goes when a delete rule\n"
        "# holds for it (with only keep_last: when it is not among the last N pushed)\n"
        "# and no keep rule protects it; a manifest its deleted tags leave unreached\n"
        "# (with its platforms and referrers) goes with them; then garbage collection\n"
        "# frees the blobs. Mirror caches are never touched (they evict on their own).\n"
        "# [[retention.policy]]\n"
        "# repositories = [\"ci/**\"]        # `*` within a path component, `**` across\n"
        "# keep_last = 10                   # the 10 most recently pushed tags stay\n"
        "# keep_tags = [\"latest\", \"v*\"]   # tags matching these always stay\n"
        "# delete_older_than_days = 30      # tags pushed longer ago go\n"
        "# delete_not_pulled_days = 14      # tags not pulled for this long go (counted\n"
        "#                                  # from when pull tracking began at the latest)\n"
        "# delete_untagged_days = 7         # manifests no tag reaches, unused this long, go\n"
        "\n# Webhooks: Distribution's notifications, one [[notifications.endpoints]]\n"
        "# table each (file only), with Distribution's keys. Events are spooled on\n"
        "# disk first (push, mount and delete durably, before the request is\n"
        "# answered) and delivered in order, at least once, each with its stable id.\n"
        "# [notifications.events]\n"
        "# includereferences = false       # a manifest push lists its config and layers\n"
        "# [[notifications.endpoints]]\n"
        "# name = \"ci\"\n"
        "# url = \"https://hooks.example/registry\"\n"
        "# headers = { Authorization = [\"Bearer ...\"] }\n"
        "# timeout = \"5s\"                 # one POST's limit\n"
        "# threshold = 3                   # failures retried at once before backing off\n"
        "# backoff = \"1s\"                 # the first back-off, doubling up to 10s\n"
        "# ignoredmediatypes = [\"application/octet-stream\"]\n"
        "# ignore = { mediatypes = [], actions = [\"pull\"] }\n"
        "# disabled = false\n"
        "# batch_events = 1                # events per envelope (Distribution: 1)\n"
        "# max_age_s = 86400               # an event this old is dropped, not retried\n"
        "\n# Pull-through mirrors: one [[mirror]] table per upstream (file only).\n"
        "# Its cache is stored as ordinary repositories under the prefix. A request\n"
        "# is routed by path prefix (/v2/docker.io/library/alpine/...), else by\n"
        "# containerd's ?ns= (looked up in prefix and hosts; unknown: 404), else to\n"
        "# the default mirror unless the repository exists here as hosted content.\n"
        "# Pushes under a prefix are refused.\n"
        "# [[mirror]]\n"
        "# prefix = \"docker.io\"\n"
        "# url = \"https://registry-1.docker.io\"\n"
        "# hosts = [\"docker.io\", \"index.docker.io\", \"registry-1.docker.io\"]\n"
        "# default = true\n"
        "# implicit_library = true   # \"alpine\" is \"library/alpine\"; default: on for "
        "docker.io\n"
        "# tag_ttl_s = 60            # a cached tag is revalidated (HEAD) after this long\n"
        "# not_found_ttl_s = 30      # an upstream 404 is remembered this long (0: never)\n"
        "# deadline_ms = 1000        # a cached tag's revalidation waits this long, then it is "
        "served stale\n"
        "# retry_after_s = 10        # after an upstream failure, cached tags are served "
        "without asking it this long\n"
        "# list_ttl_s = 30           # the upstream's tag lists and referrers, kept this "
        "long per query\n"
        "# max_stale_s = 604800      # a cached tag older than this is not served stale\n"
        "# ratelimit_min = 10        # below this ratelimit-remaining, cached tags are not "
        "revalidated\n"
        "# cache_bytes_max = 0       # bytes (0: no limit); past evict_high_percent of it the\n"
        "#                           # least recently pulled go, down to evict_low_percent\n"
        "# evict_high_percent = 90\n"
        "# evict_low_percent = 80\n"
        "# pins = [\"library/alpine:*\"]   # never evicted (globs over repository:tag, @digest)\n"
        "# prewarm = [\"library/alpine:3.20\"]  # fetched at start and every prewarm_interval_s\n"
        "# prewarm_interval_s = 3600\n"
        "# username = \"bot\"          # credentials: Basic auth, or for the token realm\n"
        "# password = \"...\"\n"
        "# credentials_file = \"/etc/ringport/hub.cred\"  # \"user:password\", re-read when "
        "it changes (instead of username/password)\n"
        "# auth_hosts = [\"auth.example.com\"]  # token realms trusted besides the "
        "upstream's own registrable domain\n"
        "# ca_file = \"/etc/ssl/upstream-ca.pem\"  # default: the system's CAs\n"
        "# tls_verify = true\n"
        "# connect_timeout_ms = 5000\n"
        "# first_byte_timeout_ms = 30000  # no status line this long: the request fails\n"
        "# stall_timeout_ms = 30000  # no byte this long: fails (a blob transfer resumes)\n";
    return out;
}

} // namespace rp
