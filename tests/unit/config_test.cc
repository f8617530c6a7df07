// SPDX-License-Identifier: Apache-2.0
#include "config.hh"

#include <unistd.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

using namespace rp;

namespace {

std::string write_temp(const std::string& text) {
    char path[] = "/tmp/rp-config-test-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    close(fd);
    return path;
}

// The error loading `text` as the config file gives ("" when it loads).
std::string load_error(const std::string& text) {
    std::string f = write_temp(text);
    CliOverrides cli;
    cli.config_file = f;
    auto r = load_config(cli, {});
    std::remove(f.c_str());
    return r ? std::string() : r.error().detail;
}

} // namespace

TEST_CASE("with nothing set, the embedded defaults apply") {
    auto c = load_config({}, {});
    REQUIRE(c);
    CHECK(c->http_listen == "127.0.0.1:5000");
    CHECK(c->storage_root == "/var/lib/registry");
    CHECK(c->storage_delete_enabled);
    CHECK(c->catalog_max_entries == 1000);
}

TEST_CASE("flags beat the environment, which beats the file") {
    std::string f =
        write_temp("[http]\nlisten = \"127.0.0.1:1\"\nshards = 3\n[storage]\nroot = \"/f\"\n");
    CliOverrides cli;
    cli.config_file = f;
    cli.root = "/flag";
    auto c = load_config(
        cli, {{"RINGPORT_HTTP_LISTEN", "127.0.0.1:2"}, {"RINGPORT_STORAGE_ROOT", "/env"}});
    REQUIRE(c);
    CHECK(c->http_listen == "127.0.0.1:2");
    CHECK(c->http_shards == 3);
    CHECK(c->storage_root == "/flag");
    std::remove(f.c_str());
}

TEST_CASE("Distribution's REGISTRY_* names set the same settings") {
    auto c = load_config({}, {{"REGISTRY_HTTP_ADDR", ":5001"},
                              {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/r"},
                              {"REGISTRY_STORAGE_DELETE_ENABLED", "false"},
                              {"REGISTRY_CATALOG_MAXENTRIES", "7"}});
    REQUIRE(c);
    CHECK(c->http_listen == ":5001");
    CHECK(c->storage_root == "/r");
    CHECK_FALSE(c->storage_delete_enabled);
    CHECK(c->catalog_max_entries == 7);
}

TEST_CASE("unknown keys and bad values are errors that name them") {
    std::string f = write_temp("[http]\nlistne = \"x\"\n");
    CliOverrides cli;
    cli.config_file = f;
    auto c = load_config(cli, {});
    REQUIRE_FALSE(c);
    CHECK(c.error().detail.find("http.listne") != std::string::npos);
    std::remove(f.c_str());

    auto e = load_config({}, {{"RINGPORT_HTTP_LISTN", "x"}});
    REQUIRE_FALSE(e);
    CHECK(e.error().detail.find("RINGPORT_HTTP_LISTN") != std::string::npos);

    auto v = load_config({}, {{"RINGPORT_HTTP_SHARDS", "many"}});
    REQUIRE_FALSE(v);
    CHECK(v.error().detail.find("RINGPORT_HTTP_SHARDS") != std::string::npos);

    auto l = load_config({}, {{"RINGPORT_HTTP_LISTEN", "nowhere"}});
    REQUIRE_FALSE(l);
    CHECK(l.error().detail.find("http.listen") != std::string::npos);

    std::string g = write_temp("[http]\nshards = \"two\"\n");
    cli.config_file = g;
    auto t = load_config(cli, {});
    REQUIRE_FALSE(t);
    CHECK(t.error().detail.find("http.shards") != std::string::npos);
    std::remove(g.c_str());
}

TEST_CASE("[[mirror]] tables load in order; a bad one is an error that names it") {
    std::string f = write_temp("[[mirror]]\n"
                               "prefix = \"docker.io\"\n"
                               "url = \"https://registry-1.docker.io\"\n"
                               "hosts = [\"docker.io\", \"index.docker.io\"]\n"
                               "default = true\n"
                               "[[mirror]]\n"
                               "prefix = \"ghcr.io\"\n"
                               "url = \"https://ghcr.io\"\n"
                               "implicit_library = false\n"
                               "tag_ttl_s = 5\n"
                               "not_found_ttl_s = 0\n"
                               "deadline_ms = 250\n"
                               "retry_after_s = 3\n");
    CliOverrides cli;
    cli.config_file = f;
    auto c = load_config(cli, {});
    REQUIRE(c);
    REQUIRE(c->mirrors.size() == 2);
    CHECK(c->mirrors[0].prefix == "docker.io");
    CHECK(c->mirrors[0].hosts.size() == 2);
    CHECK(c->mirrors[0].is_default);
    CHECK_FALSE(c->mirrors[0].implicit_library.has_value());
    CHECK(c->mirrors[1].url == "https://ghcr.io");
    CHECK(c->mirrors[1].implicit_library == std::optional<bool>(false));
    CHECK(c->mirrors[0].tag_ttl_s == 60);
    CHECK(c->mirrors[1].tag_ttl_s == 5);
    CHECK(c->mirrors[0].not_found_ttl_s == 30);
    CHECK(c->mirrors[1].not_found_ttl_s == 0);
    CHECK(c->mirrors[0].deadline_ms == 1000);
    CHECK(c->mirrors[1].deadline_ms == 250);
    CHECK(c->mirrors[0].retry_after_s == 10);
    CHECK(c->mirrors[1].retry_after_s == 3);
    std::remove(f.c_str());

    auto fails = [&](const std::string& text) {
        std::string g = write_temp(text);
        cli.config_file = g;
        auto r = load_config(cli, {});
        std::remove(g.c_str());
        REQUIRE_FALSE(r);
        return r.error().detail;
    };
    CHECK(fails("[[mirror]]\nprefix = \"a\"\nurl = \"http://a\"\ncolour = 1\n")
              .find("mirror[0].colour") != std::string::npos);
    CHECK(fails("[[mirror]]\nprefix = \"a\"\n").find("required") != std::string::npos);
    CHECK(fails("[[mirror]]\nprefix = \"a\"\nurl = \"http://a\"\ntag_ttl_s = -1\n")
              .find("mirror[0].tag_ttl_s") != std::string::npos);
    CHECK(fails("[[mirror]]\nprefix = \"a\"\nurl = \"http://a\"\ndeadline_ms = 0\n")
              .find("mirror[0].deadline_ms") != std::string::npos);
    CHECK(fails("[[mirror]]\nprefix = \"a\"\nurl = \"http://a\"\nhosts = \"a\"\n")
              .find("mirror[0].hosts") != std::string::npos);
    CHECK(fails("[mirror]\nprefix = \"a\"\n").find("[[mirror]]") != std::string::npos);
    CHECK(fails("[[mirror]]\nprefix = \"a\"\nurl = \"http://a\"\n"
                "[[mirror]]\nprefix = \"a/b\"\nurl = \"http://b\"\n")
              .find("overlaps") != std::string::npos);
}

TEST_CASE("[[mirror]] credentials, TLS settings and timeouts load; contradictions are errors") {
    std::string f = write_temp("[[mirror]]\n"
                               "prefix = \"priv.example\"\n"
                               "url = \"https://priv.example\"\n"
                               "username = \"bot\"\n"
                               "password = \"pw\"\n"
                               "auth_hosts = [\"auth.other.example\"]\n"
                               "ca_file = \"/etc/ca.pem\"\n"
                               "tls_verify = false\n"
                               "connect_timeout_ms = 100\n"
                               "first_byte_timeout_ms = 200\n"
                               "stall_timeout_ms = 300\n"
                               "[[mirror]]\n"
                               "prefix = \"file.example\"\n"
                               "url = \"https://file.example\"\n"
                               "credentials_file = \"/run/secrets/cred\"\n");
    CliOverrides cli;
    cli.config_file = f;
    auto c = load_config(cli, {});
    std::remove(f.c_str());
    REQUIRE(c);
    REQUIRE(c->mirrors.size() == 2);
    const auto& a = c->mirrors[0];
    CHECK((a.username == "bot" && a.password == "pw"));
    CHECK(a.auth_hosts == std::vector<std::string>{"auth.other.example"});
    CHECK(a.ca_file == "/etc/ca.pem");
    CHECK_FALSE(a.tls_verify);
    CHECK(a.connect_timeout_ms == 100);
    CHECK(a.first_byte_timeout_ms == 200);
    CHECK(a.stall_timeout_ms == 300);
    const auto& b = c->mirrors[1];
    CHECK(b.credentials_file == "/run/secrets/cred");
    CHECK(b.tls_verify);
    CHECK(b.connect_timeout_ms == 5000);
    CHECK(b.first_byte_timeout_ms == 30000);

    auto fails = [&](const std::string& keys) {
        std::string g = write_temp("[[mirror]]\nprefix = \"a\"\nurl = \"http://a\"\n" + keys);
        cli.config_file = g;
        auto r = load_config(cli, {});
        std::remove(g.c_str());
        REQUIRE_FALSE(r);
        return r.error().detail;
    };
    CHECK(fails("username = \"u\"\n").find("go together") != std::string::npos);
    CHECK(
        fails("username = \"u\"\npassword = \"p\"\ncredentials_file = \"/f\"\n").find("not both") !=
        std::string::npos);
    CHECK(fails("stall_timeout_ms = 0\n").find("mirror[0].stall_timeout_ms") != std::string::npos);
    CHECK(fails("tls_verify = \"no\"\n").find("mirror[0].tls_verify") != std::string::npos);
    CHECK(fails("auth_hosts = [1]\n").find("mirror[0].auth_hosts") != std::string::npos);
    CHECK(fails("evict_low_percent = 95\n").find("below evict_high_percent") != std::string::npos);
    CHECK(fails("evict_high_percent = 0\n").find("mirror[0].evict_high_percent") !=
          std::string::npos);
    CHECK(fails("cache_bytes_max = -1\n").find("mirror[0].cache_bytes_max") != std::string::npos);
    CHECK(fails("prewarm = [\"alpine\"]\n").find("not <repository>:<tag>") != std::string::npos);
}

TEST_CASE("[[mirror]] cache limits, pins and pre-warm load") {
    std::string f = write_temp("[[mirror]]\nprefix = \"a\"\nurl = \"http://a\"\n"
                               "cache_bytes_max = 1000000\nevict_high_percent = 70\n"
                               "evict_low_percent = 40\npins = [\"library/*\"]\n"
                               "prewarm = [\"library/alpine:3.20\", \"x@sha256:ab\"]\n"
                               "prewarm_interval_s = 0\n");
    CliOverrides cli;
    cli.config_file = f;
    auto c = load_config(cli, {});
    std::remove(f.c_str());
    REQUIRE(c);
    const auto& u = c->mirrors.at(0);
    CHECK(u.cache_bytes_max == 1000000);
    CHECK(u.evict_high_percent == 70);
    CHECK(u.evict_low_percent == 40);
    CHECK(u.pins == std::vector<std::string>{"library/*"});
    CHECK(u.prewarm.size() == 2);
    CHECK(u.prewarm_interval_s == 0);
}

TEST_CASE("[[retention.policy]] tables load in order; a bad one is an error that names it") {
    std::string f = write_temp("[retention]\ninterval_s = 3600\ndry_run = true\n"
                               "[[retention.policy]]\nrepositories = [\"ci/**\"]\n"
                               "keep_last = 3\nkeep_tags = [\"latest\", \"v*\"]\n"
                               "delete_older_than_days = 30\n"
                               "[[retention.policy]]\nrepositories = [\"**\"]\n"
                               "delete_not_pulled_days = 90\ndelete_untagged_days = 7\n");
    CliOverrides cli;
    cli.config_file = f;
    auto c = load_config(cli, {});
    std::remove(f.c_str());
    REQUIRE(c);
    CHECK(c->retention_interval_s == 3600);
    CHECK(c->retention_dry_run);
    REQUIRE(c->retention_policies.size() == 2);
    const auto& p = c->retention_policies[0];
    CHECK(p.repositories == std::vector<std::string>{"ci/**"});
    CHECK(p.keep_last == 3);
    CHECK(p.keep_tags == std::vector<std::string>{"latest", "v*"});
    CHECK(p.older_than_days == 30);
    CHECK(c->retention_policies[1].not_pulled_days == 90);
    CHECK(c->retention_policies[1].untagged_days == 7);

    struct Bad {
        const char* text;
        const char* names;
    };
    for (const Bad& b : {
             Bad{"[[retention.policy]]\nrepositories = [\"a\"]\nkeep_lots = 1\n",
                 "retention.policy[0].keep_lots"},
             Bad{"[[retention.policy]]\nrepositories = [\"a\"]\nkeep_last = 0\n",
                 "retention.policy[0].keep_last"},
             Bad{"[[retention.policy]]\nkeep_last = 2\n", "repositories"},
             Bad{"[[retention.policy]]\nrepositories = [\"a\"]\nkeep_tags = [\"x\"]\n",
                 "deletes nothing"},
             Bad{"[retention]\npolicy = 3\n", "[[retention.policy]]"},
         }) {
        std::string g = write_temp(b.text);
        CliOverrides cl;
        cl.config_file = g;
        auto r = load_config(cl, {});
        std::remove(g.c_str());
        CAPTURE(b.text);
        REQUIRE_FALSE(r);
        CHECK(r.error().detail.find(b.names) != std::string::npos);
    }
}

TEST_CASE("the example file in the repository is what the binary documents, and it loads") {
    std::ifstream in(RINGPORT_SOURCE_ROOT "/ringport.example.toml");
    REQUIRE(in.good());
    std::stringstream ss;
    ss << in.rdbuf();
    CHECK(ss.str() == example_config());
    CliOverrides cli;
    cli.config_file = RINGPORT_SOURCE_ROOT "/ringport.example.toml";
    CHECK(load_config(cli, {}));
}

TEST_CASE("[tls] from Distribution's variables: client CAs as a list, auth required with them") {
    auto c = load_config({}, {{"REGISTRY_HTTP_TLS_CERTIFICATE", "/c.pem"},
                              {"REGISTRY_HTTP_TLS_KEY", "/k.pem"},
                              {"REGISTRY_HTTP_TLS_CLIENTCAS", "[/a.pem, \"/b.pem\"]"},
                              {"REGISTRY_HTTP_TLS_MINIMUMTLS", "tls1.3"}});
    REQUIRE(c);
    CHECK(c->tls_certificate == "/c.pem");
    CHECK(c->tls_key == "/k.pem");
    CHECK(client_ca_files(*c) == std::vector<std::string>{"/a.pem", "/b.pem"});
    CHECK(client_auth_mode(*c) == "required"); // Distribution requires them when CAs are set
    CHECK(c->tls_minimum_version == "tls1.3");

    auto plain = load_config({}, {{"RINGPORT_TLS_CERTIFICATE", "/c.pem"},
                                  {"RINGPORT_TLS_KEY", "/k.pem"},
                                  {"RINGPORT_TLS_CLIENT_CAS", "/a.pem,/b.pem"},
                                  {"RINGPORT_TLS_CLIENT_AUTH", "optional"}});
    REQUIRE(plain);
    CHECK(client_ca_files(*plain).size() == 2);
    CHECK(client_auth_mode(*plain) == "optional");
    auto none = load_config({}, {});
    REQUIRE(none);
    CHECK(client_auth_mode(*none) == "none");
    CHECK(none->tls_minimum_version == "tls1.2");
}

TEST_CASE("[tls] contradictions are errors that name the key") {
    auto half = load_config({}, {{"REGISTRY_HTTP_TLS_KEY", "/k.pem"}});
    REQUIRE_FALSE(half);
    CHECK(half.error().detail.find("tls.certificate and tls.key") != std::string::npos);
    auto cas = load_config({}, {{"RINGPORT_TLS_CLIENT_CAS", "/a.pem"}});
    REQUIRE_FALSE(cas);
    CHECK(cas.error().detail.find("tls.client_cas needs") != std::string::npos);
    auto mode = load_config({}, {{"RINGPORT_TLS_CERTIFICATE", "/c"},
                                 {"RINGPORT_TLS_KEY", "/k"},
                                 {"RINGPORT_TLS_CLIENT_AUTH", "sometimes"}});
    REQUIRE_FALSE(mode);
    CHECK(mode.error().detail.find("tls.client_auth 'sometimes'") != std::string::npos);
    auto ver = load_config({}, {{"RINGPORT_TLS_CERTIFICATE", "/c"},
                                {"RINGPORT_TLS_KEY", "/k"},
                                {"REGISTRY_HTTP_TLS_MINIMUMTLS", "sslv3"}});
    REQUIRE_FALSE(ver);
    CHECK(ver.error().detail.find("tls.minimum_version 'sslv3'") != std::string::npos);
}

TEST_CASE("auth on a plain listener others can reach is warned about; loopback or TLS is not") {
    auto with = [](std::map<std::string, std::string> env) {
        env["RINGPORT_AUTH_SCHEME"] = "htpasswd";
        env["RINGPORT_AUTH_HTPASSWD_PATH"] = "/h";
        auto c = load_config({}, env);
        REQUIRE(c);
        return plain_auth_warning(*c);
    };
    CHECK(with({{"RINGPORT_HTTP_LISTEN", "127.0.0.1:5000"}}).empty());
    CHECK(with({{"RINGPORT_HTTP_LISTEN", "[::1]:5000"}}).empty());
    CHECK(with({{"RINGPORT_HTTP_LISTEN", "localhost:5000"}}).empty());
    CHECK(with({{"RINGPORT_HTTP_LISTEN", ":5000"}}).find("clear text") != std::string::npos);
    CHECK(with({{"RINGPORT_HTTP_LISTEN", "0.0.0.0:5000"}}).find("0.0.0.0:5000") !=
          std::string::npos);
    CHECK(with({{"RINGPORT_HTTP_LISTEN", "10.1.2.3:443"},
                {"RINGPORT_TLS_CERTIFICATE", "/c"},
                {"RINGPORT_TLS_KEY", "/k"}})
              .empty());
    auto none = load_config({}, {{"RINGPORT_HTTP_LISTEN", ":5000"}});
    REQUIRE(none);
    CHECK(plain_auth_warning(*none).empty()); // no credentials to leak
    // The UI on an address of its own that others can reach takes passwords too.
    CHECK(with({{"RINGPORT_UI_LISTEN", "0.0.0.0:5001"}}).find("ui.listen 0.0.0.0:5001") !=
          std::string::npos);
    CHECK(with({{"RINGPORT_UI_LISTEN", "127.0.0.1:5001"}}).empty());
    CHECK(with({{"RINGPORT_UI_LISTEN", "0.0.0.0:5001"}, {"RINGPORT_UI_ENABLED", "false"}}).empty());
}

TEST_CASE("ui.listen: empty serves /ui/ on http.listen; else a valid address not http.listen's") {
    auto def = load_config({}, {});
    REQUIRE(def);
    CHECK(def->ui_listen.empty());
    auto own = load_config({}, {{"RINGPORT_UI_LISTEN", "127.0.0.1:5001"}});
    REQUIRE(own);
    CHECK(own->ui_listen == "127.0.0.1:5001");
    auto bad = load_config({}, {{"RINGPORT_UI_LISTEN", "nowhere"}});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().detail.find("ui.listen 'nowhere'") != std::string::npos);
    auto same = load_config(
        {}, {{"RINGPORT_HTTP_LISTEN", "127.0.0.1:5000"}, {"RINGPORT_UI_LISTEN", "127.0.0.1:5000"}});
    REQUIRE_FALSE(same);
    CHECK(same.error().detail.find("leave ui.listen empty") != std::string::npos);
}

TEST_CASE("[[notifications.endpoints]] take Distribution's keys and durations; [audit] a path") {
    std::string f = write_temp(
        "[notifications]\nspool_bytes_max = 2097152\n"
        "[notifications.events]\nincludereferences = true\n"
        "[[notifications.endpoints]]\nname = \"ci\"\nurl = \"https://hooks.example/r\"\n"
        "headers = { Authorization = [\"Bearer t\"], X-One = \"v\" }\n"
        "timeout = \"1m30s\"\nthreshold = 5\nbackoff = \"250ms\"\n"
        "ignoredmediatypes = [\"application/octet-stream\"]\n"
        "ignore = { mediatypes = [\"a/b\"], actions = [\"pull\", \"mount\"] }\n"
        "batch_events = 20\nmax_age_s = 3600\n"
        "[[notifications.endpoints]]\nname = \"off\"\nurl = \"http://h/\"\ndisabled = true\n"
        "[audit]\npath = \"/var/log/ringport/audit.jsonl\"\n");
    CliOverrides cli;
    cli.config_file = f;
    auto c = load_config(cli, {});
    std::remove(f.c_str());
    REQUIRE(c);
    CHECK(c->notifications_spool_bytes_max == 2097152);
    CHECK(c->notifications_include_references);
    CHECK(c->audit_path == "/var/log/ringport/audit.jsonl");
    REQUIRE(c->notification_endpoints.size() == 2);
    const auto& e = c->notification_endpoints[0];
    CHECK(e.name == "ci");
    CHECK(e.url == "https://hooks.example/r");
    CHECK(e.headers == std::vector<std::string>{"Authorization: Bearer t", "X-One: v"});
    CHECK(e.timeout_ms == 90000);
    CHECK(e.threshold == 5);
    CHECK(e.backoff_ms == 250);
    auto types = e.ignored_media_types; // the two keys' lists, in either order
    std::sort(types.begin(), types.end());
    CHECK(types == std::vector<std::string>{"a/b", "application/octet-stream"});
    CHECK(e.ignored_actions == std::vector<std::string>{"pull", "mount"});
    CHECK(e.batch_events == 20);
    CHECK(e.max_age_s == 3600);
    CHECK_FALSE(e.disabled);
    CHECK(c->notification_endpoints[1].disabled);
    CHECK(c->notification_endpoints[1].timeout_ms == 5000); // the default

    struct Bad {
        const char* text;
        const char* names;
    };
    const char* ep = "[[notifications.endpoints]]\nname = \"x\"\nurl = \"http://h/\"\n";
    for (const Bad& b : {
             Bad{"[[notifications.endpoints]]\nurl = \"http://h/\"\n", "name and url"},
             Bad{"[notifications]\nendpoints = 3\n", "[[notifications.endpoints]]"},
             Bad{"[notifications.events]\nincluderefs = true\n", "includereferences"},
         }) {
        CAPTURE(b.text);
        CHECK(load_error(b.text).find(b.names) != std::string::npos);
    }
    for (const Bad& b : {
             Bad{"timeout = \"0s\"\n", "endpoints[0].timeout"},
             Bad{"backoff = \"3d\"\n", "endpoints[0].backoff"},
             Bad{"threshold = -1\n", "endpoints[0].threshold"},
             Bad{"batch_events = 0\n", "endpoints[0].batch_events"},
             Bad{"headers = { \"Bad Name\" = \"v\" }\n", "endpoints[0].headers"},
             Bad{"headers = { X = \"a\\nb\" }\n", "line breaks"},
             Bad{"ignore = { actions = [\"fetch\"] }\n", "fetch"},
             Bad{"ignore = { kinds = [] }\n", "ignore.kinds"},
         }) {
        CAPTURE(b.text);
        CHECK(load_error(std::string(ep) + b.text).find(b.names) != std::string::npos);
    }
}
