// SPDX-License-Identifier: Apache-2.0
#include "observe/spool.hh"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "util/unique_fd.hh"

using namespace rp::observe;

namespace {

struct Root {
    std::string path;
    rp::util::UniqueFd fd;
    Root() {
        char tmpl[] = "/tmp/rp-spool-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
        fd = rp::util::UniqueFd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        REQUIRE(fd.valid());
    }
    ~Root() { (void)std::system(("rm -rf '" + path + "'").c_str()); }
    std::vector<std::string> segments() const {
        std::vector<std::string> out;
        for (const auto& e : std::filesystem::directory_iterator(path + "/.ringport.spool")) {
            out.push_back(e.path().filename().string());
        }
        std::sort(out.begin(), out.end());
        return out;
    }
};

std::unique_ptr<Spool> open(const Root& r, SpoolConfig cfg = {}) {
    auto s = Spool::open(r.fd.get(), spool_dir, cfg);
    REQUIRE(s);
    return std::move(*s);
}

// Appends n records "e<first+i>" and lets the writer write them (it ends).
void fill(Spool& s, int first, int n, bool durable = true) {
    for (int i = first; i < first + n; ++i) {
        (void)s.append("push", "m/t", "{\"e\":" + std::to_string(i) + "}", 1000 + i, durable);
    }
}

void write_all(Spool& s) {
    std::atomic<bool> stop{true};
    s.run(stop); // writes what is queued, then closes
}

std::vector<std::string> read_all(Spool::Reader& rd) {
    std::vector<std::string> out;
    for (int i = 0; i < 1000; ++i) {
        auto recs = rd.next(7, 1U << 20U);
        if (recs.empty()) {
            break;
        }
        for (const Record& r : recs) {
            out.push_back(r.json);
        }
    }
    return out;
}

} // namespace

TEST_CASE("records come back in order with their fields") {
    Root r;
    auto s = open(r);
    CHECK(s->last_seq() == 0);
    fill(*s, 1, 20);
    write_all(*s);
    CHECK(s->last_seq() == 20);
    CHECK(s->written().seen().value == 20);
    CHECK(s->synced().seen().value == 20);
    auto rd = s->reader(0);
    auto first = rd.next(1, 1U << 20U);
    REQUIRE(first.size() == 1);
    CHECK(first[0].seq == 1);
    CHECK(first[0].time_ms == 1001);
    CHECK(first[0].action == "push");
    CHECK(first[0].media_type == "m/t");
    CHECK(first[0].json == "{\"e\":1}");
    auto rest = read_all(rd);
    REQUIRE(rest.size() == 19);
    CHECK(rest.back() == "{\"e\":20}");
    auto from15 = s->reader(15);
    CHECK(read_all(from15).front() == "{\"e\":16}");
    // After the writer ended, appends are written at once.
    (void)s->append("pull", "", "{\"late\":1}", 5, false);
    auto late = s->reader(20);
    CHECK(read_all(late) == std::vector<std::string>{"{\"late\":1}"});
}

TEST_CASE("a reopened spool continues after its last good record; a torn tail is cut") {
    Root r;
    {
        auto s = open(r);
        fill(*s, 1, 5);
        write_all(*s);
    }
    const std::string seg = r.path + "/.ringport.spool/" + r.segments().front();
    { std::ofstream(seg, std::ios::app) << "0123456789abcdef\t6\t1\tpush\tx\t{\"torn"; }
    auto s = open(r);
    CHECK(s->last_seq() == 5);
    fill(*s, 6, 2);
    write_all(*s);
    auto rd = s->reader(0);
    auto all = read_all(rd);
    REQUIRE(all.size() == 7);
    CHECK(all[5] == "{\"e\":6}");
}

TEST_CASE("a damaged line is skipped; the rest is read") {
    Root r;
    auto s = open(r);
    fill(*s, 1, 3);
    write_all(*s);
    const std::string seg = r.path + "/.ringport.spool/" + r.segments().front();
    std::string bytes;
    {
        std::ifstream in(seg, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    const auto at = bytes.find("{\"e\":2}");
    REQUIRE(at != std::string::npos);
    bytes[at + 5] = '9'; // the hash no longer matches
    { std::ofstream(seg, std::ios::binary | std::ios::trunc) << bytes; }
    auto rd = s->reader(0);
    CHECK(read_all(rd) == std::vector<std::string>{"{\"e\":1}", "{\"e\":3}"});
    Record rec;
    CHECK_FALSE(parse_record("", rec));
    CHECK_FALSE(parse_record("zz\t1\t1\ta\tb\t{}\n", rec));
    CHECK(parse_record(format_record(9, 3, "pull", "t", "{}"), rec));
    CHECK(rec.seq == 9);
}

TEST_CASE("segments roll over; release removes what every consumer has, never the current") {
    Root r;
    SpoolConfig cfg;
    cfg.segment_bytes = 200; // about three records each
    auto s = open(r, cfg);
    for (int i = 0; i < 10; ++i) {
        fill(*s, 1 + i * 3, 3);
        write_all(*s);
        s = open(r, cfg); // each writer run ends; a reopen continues
    }
    CHECK(s->last_seq() == 30);
    const auto before = r.segments().size();
    CHECK(before >= 5);
    auto rd = s->reader(0);
    CHECK(read_all(rd).size() == 30);
    s->release(30);
    CHECK(r.segments().size() == 1);
    CHECK(s->first_seq() > 1);
    // A reader behind what was released continues at the oldest kept, counting the gap.
    auto behind = s->reader(0);
    auto left = read_all(behind);
    CHECK(behind.lost() + left.size() == 30);
    CHECK(behind.lost() > 0);
}

TEST_CASE("past bytes_max the oldest segments go, and what no consumer had is counted") {
    Root r;
    SpoolConfig cfg;
    cfg.segment_bytes = 200;
    cfg.bytes_max = 600;
    auto s = open(r, cfg);
    for (int i = 0; i < 10; ++i) {
        fill(*s, 1 + i * 3, 3);
        std::atomic<bool> stop{false};
        // One writer turn: run() returns only at a stop, so stop it at once.
        stop = true;
        s->run(stop);
        s = open(r, cfg);
    }
    // A reopened spool has not seen the drops of the one before it: count on disk.
    CHECK(s->bytes() <= 600 + 200);
    auto rd = s->reader(0);
    auto got = read_all(rd);
    CHECK(rd.lost() > 0);
    CHECK(rd.lost() + got.size() == 30);
    CHECK(got.back() == "{\"e\":30}");
}

TEST_CASE("a write the disk refuses is retried, cut off cleanly, and nothing is lost") {
    Root r;
    auto s = open(r);
    // A file size limit makes the write fail part way (EFBIG), as a full disk would.
    (void)std::signal(SIGXFSZ, SIG_IGN);
    rlimit old{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
    rlimit small = old;
    small.rlim_cur = 300;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    std::atomic<bool> stop{false};
    std::thread writer([&] { s->run(stop); });
    fill(*s, 1, 10); // about 600 bytes, durable: the writer is woken at once
    std::this_thread::sleep_for(std::chrono::milliseconds(350));
    const std::uint64_t errors = s->write_errors();
    const std::uint64_t synced = s->synced().seen().value;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &old) == 0);
    CHECK(errors >= 2); // tried again, and refused again
    CHECK(synced == 0); // the requests would still wait
    for (int i = 0; i < 300 && s->synced().seen().value < 10; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(s->synced().seen().value == 10);
    stop = true;
    writer.join();
    CHECK(s->dropped() == 0);
    auto rd = s->reader(0);
    auto all = read_all(rd);
    REQUIRE(all.size() == 10); // no fragment spoiled a record
    CHECK(all.front() == "{\"e\":1}");
    CHECK(all.back() == "{\"e\":10}");
    CHECK(rd.lost() == 0);
}

TEST_CASE(
    "threads' pulls are numbered once each, in each thread's order, never after a later push") {
    Root r;
    auto s = open(r);
    std::atomic<bool> stop{false};
    std::thread writer([&] { s->run(stop); });
    constexpr int threads = 4;
    constexpr int per = 3000;
    std::vector<std::thread> ts;
    ts.reserve(threads);
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] {
            for (int i = 0; i < per; ++i) {
                const bool push = i % 500 == 499; // now and then a durable record
                const std::string json =
                    "{\"t\":" + std::to_string(t) + ",\"i\":" + std::to_string(i) + "}";
                const std::uint64_t seq =
                    s->append(push ? "push" : "pull", "m/t", json, 1000 + i, push);
                // A push is numbered at once; a pull by the writer (0), or at
                // once after the writer stopped.
                CHECK((!push || seq != 0));
            }
        });
    }
    // The stop may come while the threads still append: those after it are
    // written at once on their own thread, none lost.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    stop = true;
    writer.join();
    for (auto& t : ts) {
        t.join();
    }
    CHECK(s->dropped() == 0);
    auto rd = s->reader(0);
    std::vector<int> next(threads, 0);
    std::uint64_t seq = 0;
    int n = 0;
    for (int k = 0; k < 10'000; ++k) {
        auto recs = rd.next(512, 1U << 20U);
        if (recs.empty()) {
            break;
        }
        for (const Record& rec : recs) {
            CHECK(rec.seq == seq + 1); // numbered without gaps or repeats
            seq = rec.seq;
            const auto t = std::stoi(rec.json.substr(5));
            const auto i = std::stoi(rec.json.substr(rec.json.find("\"i\":") + 4));
            REQUIRE(t >= 0);
            REQUIRE(t < threads);
            CHECK(i == next[static_cast<std::size_t>(t)]); // each thread's order
            next[static_cast<std::size_t>(t)] = i + 1;
            CHECK(rec.action == (i % 500 == 499 ? "push" : "pull"));
            ++n;
        }
    }
    CHECK(n == threads * per);
    CHECK(rd.lost() == 0);
}

TEST_CASE("a pull queued on one thread before a pull on another is numbered first") {
    Root r;
    auto s = open(r);
    // b's queue is registered first, so the writer takes it first; the
    // tickets must still put a's record, queued between b's two, between them.
    std::atomic<int> step{0};
    std::thread b([&] {
        (void)s->append("pull", "", "{\"b\":1}", 1, false);
        step = 1;
        for (int i = 0; i < 5000 && step.load() != 2; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        (void)s->append("pull", "", "{\"b\":2}", 1, false);
    });
    for (int i = 0; i < 5000 && step.load() != 1; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::thread a([&] { (void)s->append("pull", "", "{\"a\":1}", 1, false); });
    a.join();
    step = 2;
    b.join();
    write_all(*s);
    auto rd = s->reader(0);
    CHECK(read_all(rd) == std::vector<std::string>{"{\"b\":1}", "{\"a\":1}", "{\"b\":2}"});
}

TEST_CASE(
    "a chain of pulls handed from thread to thread keeps its order while pushes drain the queues") {
    // Four threads append in turn (a client's requests landing on one shard,
    // then another), while a fifth appends durable records without pause:
    // each drains every thread's queue, so takes race with the chain. A take
    // must never number a later link before an earlier one still being
    // queued on a thread it walked already.
    Root r;
    auto s = open(r);
    std::atomic<bool> stop{false};
    std::thread writer([&] { s->run(stop); });
    constexpr int links = 6000;
    constexpr int chain = 4;
    std::atomic<int> baton{0};
    std::atomic<bool> done{false};
    std::vector<std::thread> ts;
    ts.reserve(chain + 1);
    for (int k = 0; k < chain; ++k) {
        ts.emplace_back([&, k] {
            for (int i = k; i < links; i += chain) {
                for (long spin = 0; baton.load() != i && spin < 2'000'000'000L; ++spin) {
                    std::this_thread::yield();
                }
                (void)s->append("pull", "", "{\"i\":" + std::to_string(i) + "}", 1, false);
                baton.store(i + 1);
            }
        });
    }
    ts.emplace_back([&] {
        for (int i = 0; i < 1'000'000 && !done.load(); ++i) {
            (void)s->append("push", "", "{\"p\":" + std::to_string(i) + "}", 1, true);
        }
    });
    for (int k = 0; k < chain; ++k) {
        ts[static_cast<std::size_t>(k)].join();
    }
    done = true;
    ts.back().join();
    stop = true;
    writer.join();
    auto rd = s->reader(0);
    int next = 0;
    bool ordered = true;
    for (int k = 0; k < 100'000; ++k) {
        auto recs = rd.next(4096, 64U << 20U);
        if (recs.empty()) {
            break;
        }
        for (const Record& rec : recs) {
            if (rec.action == "pull") {
                ordered = ordered && std::stoi(rec.json.substr(5)) == next;
                ++next;
            }
        }
    }
    CHECK(next == links);
    CHECK(ordered);
}
