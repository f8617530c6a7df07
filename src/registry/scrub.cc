// SPDX-License-Identifier: Apache-2.0
// The online scrub: storage::check_tree on a thread of the runtime's
// (spawn_thread, at nice 19), reading blobs at [scrub] bytes_per_s, a pass
// every interval_s, reporting only (GET /ringport/v1/scrub and a warning per
// finding). Repairs are `ringport check --repair`'s, with the registry stopped.
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <ctime>

#include "registry/json.hh"
#include "registry/manifest.hh"
#include "registry/registry.hh"
#include "util/log.hh"

namespace rp::registry {

using reactor::Task;

namespace {

constexpr std::size_t findings_max = 1000;

} // namespace

void Registry::scrub(const std::atomic<bool>& stop) noexcept {
    (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 19);
    auto pause = [&stop](std::int64_t seconds) {
        for (std::int64_t i = 0; i < seconds * 10 && !stop.load(); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    };
    // Bounded: the index loads within the start's own limits; a stop ends it.
    while (!ready_.is_set() && !stop.load()) {
        pause(1);
    }
    storage::References refs = stored_references;
    for (std::uint64_t pass = 1; pass < (1ULL << 40) && !stop.load(); ++pass) {
        auto progress = std::make_shared<storage::CheckProgress>();
        {
            std::lock_guard lk(scrub_.mu);
            if (scrub_.progress) {
                scrub_.bytes_before += scrub_.progress->bytes.load();
            }
            scrub_.progress = progress;
            scrub_.findings.clear();
            scrub_.findings_truncated = false;
            scrub_.passes = pass;
            scrub_.started_at = now_s();
            scrub_.ended_at = 0;
        }
        storage::CheckOptions opt;
        opt.online = true;
        opt.threads = 1;
        opt.bytes_per_s = cfg_.scrub_bytes_per_s;
        opt.upload_purge_age_s = cfg_.upload_purge_age_s;
        opt.references = &refs;
        opt.stop = &stop;
        storage::check_tree(store_.fs().dirfd(), opt, *progress, [this](const storage::Finding& f) {
            std::string line(f.kind);
            line += ": ";
            line += f.what;
            RP_LOG_WARN("scrub: %s", line.c_str());
            std::lock_guard lk(scrub_.mu);
            if (scrub_.findings.size() < findings_max) {
                scrub_.findings.push_back(std::move(line));
            } else {
                scrub_.findings_truncated = true;
            }
        });
        std::int64_t took = 0;
        {
            std::lock_guard lk(scrub_.mu);
            scrub_.ended_at = now_s();
            took = scrub_.ended_at - scrub_.started_at;
        }
        if (stop.load()) {
            break;
        }
        RP_LOG_INFO("scrub pass %llu: %llu blob(s), %llu bytes verified in %lld s; %llu "
                    "repositories; %llu problem(s), %llu error(s) reading",
                    static_cast<unsigned long long>(pass),
                    static_cast<unsigned long long>(progress->blobs.load()),
                    static_cast<unsigned long long>(progress->bytes.load()),
                    static_cast<long long>(took),
                    static_cast<unsigned long long>(progress->repositories.load()),
                    static_cast<unsigned long long>(progress->problems.load()),
                    static_cast<unsigned long long>(progress->errors.load()));
        pause(cfg_.scrub_interval_s);
    }
}

Task<void> Registry::scrub_endpoint(http::Exchange& ex) noexcept {
    const http::Request& req = ex.request();
    if (req.method != "GET" && req.method != "HEAD") {
        co_await fail(ex, Code::unsupported, "GET");
        co_return;
    }
    Json j;
    {
        std::lock_guard lk(scrub_.mu);
        const storage::CheckProgress* p = scrub_.progress.get();
        j.boolean("enabled", cfg_.scrub_bytes_per_s > 0)
            .num("bytes_per_s", cfg_.scrub_bytes_per_s)
            .num("pass", scrub_.passes)
            .str("phase", p == nullptr ? "idle" : (scrub_.ended_at == 0 ? "checking" : "waiting"))
            .num("started_at", scrub_.started_at)
            .num("ended_at", scrub_.ended_at);
        if (p != nullptr) {
            j.num("blobs_total", p->blobs_total.load())
                .num("blobs", p->blobs.load())
                .num("bytes", p->bytes.load())
                .num("bytes_all_passes", scrub_.bytes_before + p->bytes.load())
                .num("repositories", p->repositories.load())
                .num("problems", p->problems.load())
                .num("errors", p->errors.load());
        }
        j.boolean("findings_truncated", scrub_.findings_truncated).open_array("findings");
        for (const std::string& f : scrub_.findings) {
            j.str({}, f);
        }
        j.close_array();
    }
    co_await reply(ex, json_report(j.done()));
}

} // namespace rp::registry
