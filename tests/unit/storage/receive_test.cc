// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>
#include <sys/resource.h>

#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "storage/receive.hh"

using namespace rp::storage;

namespace {

long minor_faults() {
    rusage ru{};
    ::getrusage(RUSAGE_THREAD, &ru);
    return ru.ru_minflt;
}

long lazy_free_kb() {
    std::ifstream in("/proc/self/smaps_rollup");
    std::string key;
    long kb = 0;
    while (in >> key) {
        if (key == "LazyFree:") {
            in >> kb;
            return kb;
        }
    }
    return -1;
}

// Takes n buffers and writes every page of each; false when one was refused.
template <std::size_t n> bool take_and_fill(ReceiveBuffers::Lease (&b)[n]) {
    for (auto& l : b) {
        l = ReceiveBuffers::take();
        if (!l) {
            return false;
        }
        std::memset(l.get(), 1, ReceiveBuffers::buffer_bytes);
    }
    return true;
}

} // namespace

// A chunked push returns its buffers after every PATCH; mapping fresh ones
// each time (fault and zero 256 pages per MiB) cost 8% of its throughput.
TEST_CASE("receive buffers: idle ones are reused without faults and left for the kernel to take") {
    constexpr int n = 3;
    long faults = -1;
    long lazy_before = -1;
    long lazy_idle = -1;
    bool taken = false;
    // A fresh thread, so its pool starts empty. Assertions stay on the test's
    // thread: a failed REQUIRE throws, and on another thread that terminates.
    std::thread t([&] {
        ReceiveBuffers::Lease b[n];
        if (!take_and_fill(b)) {
            return;
        }
        lazy_before = lazy_free_kb();
        for (auto& l : b) {
            l.reset(); // the last one makes the pool idle
        }
        lazy_idle = lazy_free_kb();
        for (auto& l : b) {
            l = ReceiveBuffers::take();
            if (!l) {
                return;
            }
        }
        taken = true;
        long before = minor_faults();
        for (auto& l : b) {
            std::memset(l.get(), 2, ReceiveBuffers::buffer_bytes);
        }
        faults = minor_faults() - before;
    });
    t.join();
    REQUIRE(taken);
    // Remapped buffers would fault on every page: 256 per MiB.
    CHECK(faults >= 0);
    CHECK(faults < 64);
    // Idle, all but idle_cached_max are the kernel's to reclaim (a few pages
    // may still sit in per-CPU LRU batches, which LazyFree does not count).
    REQUIRE(lazy_before >= 0);
    const long surplus_kb = static_cast<long>((n - ReceiveBuffers::idle_cached_max) *
                                              ReceiveBuffers::buffer_bytes / 1024);
    CHECK(lazy_idle - lazy_before >= surplus_kb * 3 / 4);
}

// One upload at a time makes the pool idle after each; giving the same
// buffers to the kernel every time flushed the other CPUs' TLBs from the
// shard for nothing (3 ms turns at times). A buffer is given once until
// it is written again, and the one just used is kept.
TEST_CASE("receive buffers: one upload at a time gives nothing to the kernel again and again") {
    constexpr int n = 3;
    std::uint64_t after_warm = 0;
    std::uint64_t after_loop = 0;
    bool ok = false;
    std::thread t([&] {
        {
            ReceiveBuffers::Lease b[n];
            if (!take_and_fill(b)) {
                return;
            }
        } // all back: the pool is idle with n buffers, all but one given back
        after_warm = ReceiveBuffers::given_back();
        for (int i = 0; i < 100; ++i) {
            ReceiveBuffers::Lease l = ReceiveBuffers::take();
            if (!l) {
                return;
            }
            std::memset(l.get(), 3, 4096);
        }
        after_loop = ReceiveBuffers::given_back();
        ok = true;
    });
    t.join();
    REQUIRE(ok);
    CHECK(after_warm == n - ReceiveBuffers::idle_cached_max);
    CHECK(after_loop == after_warm); // the reused buffer is the kept one
}
