// SPDX-License-Identifier: Apache-2.0
#pragma once

// The event spool: an append-only log on disk, in segments, that webhook
// delivery reads back in order. Outside Distribution's tree, in
// <root>/.ringport.spool/:
//   <first seq, 20 digits>.seg   records, one per line
//   <endpoint hash>.cursor       what an endpoint has accepted (notify.hh)
//
// A record is one line: `<xxh3 hex>\t<seq>\t<unix ms>\t<action>\t<media
// type>\t<event json>\n`, the hash over everything after its tab. A line
// whose hash does not match (a torn write, a crash's zeros) is skipped, and
// a torn tail is cut at open.
//
// Writes (group commit): one writer thread (run) writes what is queued with
// one write(2), and when a queued record asked for durability, one
// fdatasync(2) for all of them. written() and synced() publish the last
// sequence number written and made durable.
// - A durable record (a push's, a delete's) is numbered and queued under the
//   spool's mutex, after every record other threads queued before it, and
//   wakes the writer; its request awaits synced().wait_past(seq - 1).
// - Any other record (a pull's, at the rate of manifest GETs) goes to its
//   thread's own queue, whose lock no other appender takes; the writer
//   numbers and writes it within 50 ms (at once past 4 MiB). The pull path
//   shares no lock and wakes no thread.
//
// When the disk refuses a write or a sync, the writer tries again every
// 100 ms, the requests waiting; after 5 s it gives up: the records are
// dropped and counted (dropped(), write_errors()) and the requests answered.
//
// Bounds: past segment_bytes the writer starts a new segment; past
// bytes_max it removes the oldest segments (a reader behind them counts
// what it missed as lost). release(seq) removes the segments
// every consumer is done with.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "reactor/sync.hh"
#include "util/result.hh"
#include "util/unique_fd.hh"

namespace rp::observe {

constexpr std::string_view spool_dir = ".ringport.spool";

struct SpoolConfig {
    std::uint64_t bytes_max = 1ULL << 30;      // all segments together
    std::uint64_t segment_bytes = 16ULL << 20; // a new segment past this
};

struct Record {
    std::uint64_t seq = 0;
    std::int64_t time_ms = 0;
    std::string action;
    std::string media_type;
    std::string json;
};

class Spool {
  public:
    // Blocking, at startup: opens (creates) <parent>/<name>, lists its
    // segments, and finds the last good record of the last one (cutting a
    // torn tail), so the next sequence number follows it.
    static util::Result<std::unique_ptr<Spool>> open(int parentfd, std::string_view name,
                                                     SpoolConfig cfg);
    ~Spool();
    Spool(const Spool&) = delete;
    Spool& operator=(const Spool&) = delete;

    // Any thread: queues a record (written by the writer thread, or at once
    // when it has stopped). Returns a durable record's sequence number; a
    // record that need not be durable is numbered by the writer: 0 (unless
    // the writer has stopped).
    std::uint64_t append(std::string_view action, std::string_view media_type,
                         std::string_view json, std::int64_t time_ms, bool durable);
    reactor::Progress& written() noexcept { return written_; }
    reactor::Progress& synced() noexcept { return synced_; }

    // The writer thread's body: writes until `stop`, then writes what is
    // queued, closes written() and synced() (waiters resume) and returns;
    // appends after that write at once on the caller's thread.
    void run(const std::atomic<bool>& stop) noexcept;

    // Consumers are done with every record up to `seq`: whole segments
    // below it are removed (never the one being written). Blocking.
    void release(std::uint64_t seq) noexcept;

    // Reads records in order from a sequence number on. Blocking (a helper
    // thread); one reader per consumer.
    class Reader {
      public:
        // Up to `max` records, fewer at the end of what is written; empty
        // when nothing new. Records past a gap (segments removed by the
        // bound) continue at the oldest one kept; lost() counts the gap.
        std::vector<Record> next(std::size_t max, std::size_t bytes_max);
        // The same into out[0, n), n returned; `out` keeps its records (and
        // their strings' capacity) from call to call.
        std::size_t next(std::vector<Record>& out, std::size_t max, std::size_t bytes_max);
        std::uint64_t next_seq() const noexcept { return next_; }
        std::uint64_t lost() const noexcept { return lost_; }

      private:
        friend class Spool;
        Reader(Spool& s, std::uint64_t next) noexcept : spool_(&s), next_(next) {}
        Spool* spool_;
        std::uint64_t next_;
        std::uint64_t lost_ = 0;
        std::uint64_t seg_ = 0; // the open segment's first sequence number (0: none)
        std::string buf_;       // read buffer, kept (a new one cost a page-zeroing per call)
        util::UniqueFd fd_;
        std::uint64_t off_ = 0;
    };
    // A reader whose first record is the one after `seq`.
    Reader reader(std::uint64_t after_seq) { return Reader(*this, after_seq + 1); }

    // Sequence numbers: the last one given (0: none yet), the oldest kept.
    std::uint64_t last_seq() const noexcept;
    std::uint64_t first_seq() const noexcept;
    std::uint64_t bytes() const noexcept;
    std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
    std::uint64_t write_errors() const noexcept { return errors_.load(std::memory_order_relaxed); }
    int dirfd() const noexcept { return dir_.get(); }

  private:
    // One appending thread's queue of records that need not be durable, as
    // frames: a 4-byte length, an 8-byte ticket (tickets_: the order the
    // records were queued in, across threads), then `<unix ms>\t<action>\t
    // <media type>\t<json>`.
    struct Local {
        std::mutex mu;
        std::thread::id owner;
        std::string frames;
        std::uint64_t count = 0;
        std::uint64_t last_ticket = 0; // of the newest frame
    };
    struct Segment {
        std::uint64_t first = 0; // its first record's sequence number
        std::uint64_t bytes = 0; // written so far
    };
    Spool(util::UniqueFd dir, SpoolConfig cfg) noexcept;
    // Writes `buf` (records from `first` on) to the current segment, starting
    // a new one when the current is full. False when the disk refused: what
    // landed of it is cut off again. Under wmu_.
    bool write_out(const std::string& buf, std::uint64_t first) noexcept;
    void enforce_bound() noexcept;
    Local& local();
    // The threads' queued frames moved to taken[i] (each empty before):
    // those with a ticket drawn before the call, or with `all` every one;
    // their count. Under mu_.
    std::uint64_t take_locals(std::vector<std::string>& taken, bool all);
    // The frames as records numbered from `first` in ticket order, appended
    // to `out`; `taken` is emptied. Returns the number after the last.
    static std::uint64_t number_frames(std::string& out, std::vector<std::string>& taken,
                                       std::uint64_t first);
    void remove_segments(const std::vector<std::uint64_t>& firsts) noexcept;

    util::UniqueFd dir_;
    SpoolConfig cfg_;
    reactor::Progress written_;
    reactor::Progress synced_;

    std::mutex wmu_; // the writer: the current segment's fd (one write at a time)
    util::UniqueFd cur_;
    bool torn_ = false; // a failed write's fragment could not be cut off (wmu_)

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::string pending_;                   // records queued, not yet written (mu_)
    std::uint64_t pending_first_ = 0;       // the first of them (mu_)
    std::uint64_t next_seq_ = 1;            // mu_
    std::uint64_t want_sync_ = 0;           // the last durable record queued (mu_)
    std::uint64_t written_seq_ = 0;         // in the file, readable (mu_)
    std::uint64_t synced_seq_ = 0;          // on disk for good (mu_)
    std::vector<Segment> segments_;         // oldest first; the last is written (mu_)
    bool closed_ = false;                   // the writer thread ended (mu_)
    std::atomic<bool> closing_{false};      // set under mu_ before the last take of the locals
    std::atomic<bool> local_full_{false};   // a thread's queue passed its bound: wake the writer
    std::atomic<std::uint64_t> tickets_{0}; // orders the threads' queued records
    const std::uint64_t id_;                // tells this spool's locals from another's
    std::mutex locals_mu_;                  // locals_ (after mu_, before a Local's mu)
    std::vector<std::unique_ptr<Local>> locals_;
    std::vector<std::string> drained_; // a durable append's take of the queues (mu_)
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<std::uint64_t> errors_{0};
};

// One record's line appended to `out`, or returned; and its parse (false
// for a bad line). `json` must hold no raw tab or line end (escaped JSON
// has none); tabs and line ends in the other fields become spaces.
void append_record(std::string& out, std::uint64_t seq, std::int64_t time_ms,
                   std::string_view action, std::string_view media_type, std::string_view json);
std::string format_record(std::uint64_t seq, std::int64_t time_ms, std::string_view action,
                          std::string_view media_type, std::string_view json);
bool parse_record(std::string_view line, Record& out);

} // namespace rp::observe
