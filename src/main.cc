// SPDX-License-Identifier: Apache-2.0
// ringport: an OCI / Docker registry on io_uring. CLI, startup and shutdown.

#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "auth/bcrypt.hh"
#include "auth/htpasswd.hh"
#include "serve.hh"
#include "ringport_build_config.hh"
#include "util/strings.hh"

extern char** environ;

namespace rp {
namespace {

constexpr const char* usage_text =
    "usage: ringport <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve [--config FILE] [--listen ADDR] [--root DIR] [--shards N]\n"
    "        run the registry (defaults: 127.0.0.1:5000, /var/lib/registry)\n"
    "  htpasswd [--cost N] FILE USER\n"
    "        add or update USER in the htpasswd FILE with a bcrypt hash ($2y$, cost 10)\n"
    "        of the password read from stdin (one line)\n"
    "  garbage-collect [--dry-run] [--delete-untagged] [--grace DURATION] [CONFIG]\n"
    "        remove unreferenced blobs with the registry stopped (Distribution's\n"
    "        command and output; a running ringport: POST /ringport/v1/gc)\n"
    "  check [--repair] [CONFIG]\n"
    "        verify every blob's digest and every link, manifest and upload with the\n"
    "        registry stopped; --repair quarantines corrupt blobs and drops dangling\n"
    "        links (a running ringport: [scrub] bytes_per_s)\n"
    "  delete-repository NAME [CONFIG]\n"
    "        delete a whole repository with the registry stopped (its blobs go with\n"
    "        the next garbage-collect; a running ringport: DELETE\n"
    "        /ringport/v1/repositories/NAME)\n"
    "  config-example   print every configuration key with its default\n"
    "  version          print the version\n"
    "  help             print this help\n"
    "\n"
    "Configuration precedence: flags, then RINGPORT_* / REGISTRY_* environment,\n"
    "then the TOML file, then defaults. See docs/configuration.md.\n";

int usage_error(const std::string& msg) {
    std::fprintf(stderr, "ringport: %s\n\n%s", msg.c_str(), usage_text);
    return 2;
}

// One line from stdin; on a terminal, prompted and not echoed.
std::optional<std::string> read_password() {
    const bool tty = ::isatty(STDIN_FILENO) == 1;
    termios saved{};
    if (tty && ::tcgetattr(STDIN_FILENO, &saved) == 0) {
        termios quiet = saved;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        (void)::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
        std::fputs("password: ", stderr);
    }
    std::string line;
    bool got = static_cast<bool>(std::getline(std::cin, line));
    if (tty) {
        (void)::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
        std::fputs("\n", stderr);
    }
    if (!got && line.empty()) {
        return std::nullopt;
    }
    if (!line.empty() && line.back() == '\r') {
        line.pop_back();
    }
    return line;
}

int htpasswd_main(int argc, char** argv) {
    int cost = 10;
    std::vector<std::string> args;
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--cost" && i + 1 < argc) {
            auto n = util::parse_u64(argv[++i]);
            if (!n || *n < 4 || *n > 31) {
                return usage_error("--cost expects a number from 4 to 31");
            }
            cost = static_cast<int>(*n);
        } else {
            args.push_back(a);
        }
    }
    if (args.size() != 2) {
        return usage_error("htpasswd needs FILE and USER");
    }
    auto pw = read_password();
    if (!pw || pw->empty()) {
        std::fprintf(stderr, "ringport: no password on stdin\n");
        return 2;
    }
    auto hash = auth::bcrypt_hash(*pw, cost);
    if (!hash) {
        std::fprintf(stderr, "ringport: cannot make a bcrypt hash (no randomness?)\n");
        return 1;
    }
    if (auto r = auth::htpasswd_set(args[0], args[1], *hash); !r) {
        std::fprintf(stderr, "ringport: %s\n", r.error().describe().c_str());
        return 1;
    }
    std::fprintf(stderr, "ringport: %s: set the password of '%s'\n", args[0].c_str(),
                 args[1].c_str());
    return 0;
}

std::map<std::string, std::string> environment() {
    std::map<std::string, std::string> env;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        std::string kv = *e;
        auto eq = kv.find('=');
        if (eq != std::string::npos) {
            env[kv.substr(0, eq)] = kv.substr(eq + 1);
        }
    }
    return env;
}

// Parses `serve` flags; returns an exit code on error, -1 to go on.
int parse_serve_flags(int argc, char** argv, CliOverrides& cli) {
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&](const char* flag) -> const char* {
            if (i + 1 >= argc) {
                return nullptr;
            }
            (void)flag;
            return argv[++i];
        };
        if (a == "--help" || a == "-h") {
            std::fputs(usage_text, stdout);
            return 0;
        }
        const char* v = nullptr;
        if (a == "--config" || a == "--listen" || a == "--root" || a == "--shards") {
            v = value(a.c_str());
            if (v == nullptr) {
                return usage_error(a + " needs a value");
            }
        } else {
            return usage_error("unknown option " + a);
        }
        if (a == "--config") {
            cli.config_file = v;
        } else if (a == "--listen") {
            cli.listen = v;
        } else if (a == "--root") {
            cli.root = v;
        } else {
            char* end = nullptr;
            unsigned long n = std::strtoul(v, &end, 10);
            if (end == v || *end != '\0' || n > 256) {
                return usage_error("--shards expects a number from 0 to 256");
            }
            cli.shards = n;
        }
    }
    return -1;
}

} // namespace

} // namespace rp

int main(int argc, char** argv) {
    using namespace rp;
    if (argc < 2) {
        return usage_error("missing command");
    }
    std::string cmd = argv[1];
    if (cmd == "help" || cmd == "--help" || cmd == "-h") {
        std::fputs(usage_text, stdout);
        return 0;
    }
    if (cmd == "version" || cmd == "--version") {
        std::printf("ringport %s\nsanitize: %s\n", RINGPORT_VERSION, RINGPORT_SANITIZE);
        return 0;
    }
    if (cmd == "htpasswd") {
        return htpasswd_main(argc, argv);
    }
    if (cmd == "garbage-collect") {
        return gc_main(argc, argv, environment());
    }
    if (cmd == "check") {
        return check_main(argc, argv, environment());
    }
    if (cmd == "delete-repository") {
        return delete_repository_main(argc, argv, environment());
    }
    if (cmd == "config-example") {
        std::fputs(example_config().c_str(), stdout);
        return 0;
    }
    if (cmd != "serve") {
        return usage_error("unknown command " + cmd);
    }
    CliOverrides cli;
    if (int rc = parse_serve_flags(argc, argv, cli); rc >= 0) {
        return rc;
    }
    auto cfg = load_config(cli, environment());
    if (!cfg) {
        std::fprintf(stderr, "ringport: %s\n", cfg.error().detail.c_str());
        return 2;
    }
    return serve_main(*cfg);
}
