// SPDX-License-Identifier: Apache-2.0
// `ringport check [--repair] [CONFIG]`: the tree checked with the registry
// stopped (storage/check.cc), one line per problem on stdout, a summary on
// stderr.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <string>
#include <thread>

#include "config.hh"
#include "registry/manifest.hh"
#include "serve.hh"
#include "storage/check.hh"
#include "storage/rebuild.hh"
#include "storage/snapshot.hh"
#include "util/strings.hh"
#include "util/unique_fd.hh"

namespace rp {

namespace {

constexpr const char* check_usage =
    "usage: ringport check [--repair] [--threads N] [--root DIR] [[--config] CONFIG]\n"
    "  Verifies, with the registry stopped, every blob's bytes against its digest\n"
    "  and every link, manifest, tag and unfinished upload of the tree; prints one\n"
    "  line per problem. --repair moves corrupt blobs to <root>/ringport-quarantine/\n"
    "  and removes links to missing blobs, tags whose manifest is gone, uploads\n"
    "  older than storage.upload_purge_age_hours and blob directories without data;\n"
    "  manifests that do not parse or name missing blobs are reported only. Exit\n"
    "  status: 0 when nothing is left wrong, 1 when something is. A running\n"
    "  ringport checks online: [scrub] bytes_per_s, GET /ringport/v1/scrub.\n";

int usage(const std::string& msg) {
    std::fprintf(stderr, "ringport check: %s\n\n%s", msg.c_str(), check_usage);
    return 2;
}

} // namespace

int check_main(int argc, char** argv, const std::map<std::string, std::string>& env) {
    storage::CheckOptions opt;
    opt.threads = std::max(1u, std::thread::hardware_concurrency());
    CliOverrides cli;
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--repair") {
            opt.repair = true;
        } else if (a == "--threads" || a == "--root" || a == "--config") {
            if (i + 1 >= argc) {
                return usage(a + " needs a value");
            }
            std::string v = argv[++i];
            if (a == "--threads") {
                auto n = util::parse_u64(v);
                if (!n || *n < 1 || *n > 256) {
                    return usage("--threads takes a number from 1 to 256");
                }
                opt.threads = static_cast<unsigned>(*n);
            } else {
                (a == "--root" ? cli.root : cli.config_file) = v;
            }
        } else if (a == "--help" || a == "-h") {
            std::fputs(check_usage, stdout);
            return 0;
        } else if (!a.empty() && a[0] != '-' && !cli.config_file) {
            cli.config_file = a;
        } else {
            return usage("unknown argument " + a);
        }
    }
    auto cfg = load_config(cli, env);
    if (!cfg) {
        std::fprintf(stderr, "ringport: %s\n", cfg.error().detail.c_str());
        return 2;
    }
    auto fail = [](const std::string& what) {
        std::fprintf(stderr, "ringport check: %s\n", what.c_str());
        return 2;
    };
    auto lock = lock_root(cfg->storage_root);
    if (!lock) {
        if (lock.error().kind == util::Errc::busy) {
            return fail("a ringport server holds " + cfg->storage_root +
                        "; it checks while it serves: set [scrub] bytes_per_s and follow GET "
                        "/ringport/v1/scrub");
        }
        return fail(lock.error().describe());
    }
    auto v2 = open_v2(cfg->storage_root);
    if (!v2) {
        return fail(v2.error().describe());
    }
    util::UniqueFd v2fd(*v2);
    util::UniqueFd rootfd(::open(cfg->storage_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!rootfd.valid()) {
        return fail("open " + cfg->storage_root + ": " + std::strerror(errno));
    }
    util::UniqueFd qfd;
    if (opt.repair) {
        // The next start reads the tree: nothing journals what a repair changes.
        if (auto r = storage::read_snapshot(rootfd.get(), false); !r) {
            return fail(r.error().describe());
        }
        if (::mkdirat(rootfd.get(), storage::quarantine_dir, 0755) != 0 && errno != EEXIST) {
            return fail(std::string("mkdir ") + storage::quarantine_dir + ": " +
                        std::strerror(errno));
        }
        qfd = util::UniqueFd(
            ::openat(rootfd.get(), storage::quarantine_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!qfd.valid()) {
            return fail(std::string("open ") + storage::quarantine_dir + ": " +
                        std::strerror(errno));
        }
        opt.quarantine_dirfd = qfd.get();
    }
    opt.upload_purge_age_s = static_cast<std::int64_t>(cfg->storage_upload_purge_age_hours) * 3600;
    storage::References refs = registry::stored_references;
    opt.references = &refs;
    storage::CheckProgress progress;
    const auto t0 = std::chrono::steady_clock::now();
    storage::check_tree(v2fd.get(), opt, progress, [](const storage::Finding& f) {
        std::printf("%.*s: %s%s\n", static_cast<int>(f.kind.size()), f.kind.data(), f.what.c_str(),
                    f.repaired ? " (repaired)" : "");
    });
    std::fflush(stdout);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto problems = progress.problems.load();
    const auto repaired = progress.repaired.load();
    std::fprintf(stderr,
                 "ringport check: %llu blob(s), %llu bytes verified in %.2f s (%.0f MB/s); %llu "
                 "repositories; %llu problem(s), %llu repaired; %llu error(s) reading\n",
                 static_cast<unsigned long long>(progress.blobs.load()),
                 static_cast<unsigned long long>(progress.bytes.load()), s,
                 s > 0 ? static_cast<double>(progress.bytes.load()) / s / 1e6 : 0.0,
                 static_cast<unsigned long long>(progress.repositories.load()),
                 static_cast<unsigned long long>(problems),
                 static_cast<unsigned long long>(repaired),
                 static_cast<unsigned long long>(progress.errors.load()));
    return problems == repaired && progress.errors.load() == 0 ? 0 : 1;
}

} // namespace rp
