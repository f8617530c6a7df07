// SPDX-License-Identifier: Apache-2.0
#include "observe/spool.hh"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "util/strings.hh"

namespace rp::observe {

using util::Errc;
using util::Error;
using util::Result;

namespace {

constexpr std::string_view seg_suffix = ".seg";
constexpr std::size_t read_chunk = 256 * 1024;
constexpr std::size_t frame_head = 12; // a queued frame's length (4 bytes) and ticket (8)
constexpr std::size_t local_wake_bytes = 4U << 20U; // a thread's queued pulls that wake the writer
constexpr int turn_ms = 50;                         // the writer's longest wait
constexpr int retry_ms = 100;                       // after the disk refused a write or a sync
constexpr int give_up_ms = 5000;                    // then the records are dropped and counted

std::string segment_name(std::uint64_t first) {
    char b[40];
    std::snprintf(b, sizeof b, "%020llu.seg", static_cast<unsigned long long>(first));
    return b;
}

// Tabs and line ends cannot appear in a field: a media type from a header
// is cleaned (the JSON has them escaped already).
void clean_field(std::string& out, std::string_view s) {
    for (char c : s) {
        out.push_back(c == '\t' || c == '\n' || c == '\r' ? ' ' : c);
    }
}

bool write_all(int fd, const char* p, std::size_t n) noexcept {
    for (int i = 0; n > 0 && i < 1'000'000; ++i) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return n == 0;
}

} // namespace

namespace {

// A queued frame's head (spool.hh, Spool::Local), at `at` of `frames`.
struct FrameHead {
    std::uint32_t len = 0;
    std::uint64_t ticket = 0;
};
FrameHead frame_at(std::string_view frames, std::size_t at) noexcept {
    FrameHead h;
    std::memcpy(&h.len, frames.data() + at, 4);
    std::memcpy(&h.ticket, frames.data() + at + 4, 8);
    return h;
}

// A record's start: the hash's place and its sequence number.
void open_record(std::string& out, std::uint64_t seq) {
    out.append(17, '\t'); // the hash's place, filled by seal_record
    char num[24];
    auto r = std::to_chars(num, num + sizeof num, seq);
    out.append(num, static_cast<std::size_t>(r.ptr - num));
    out.push_back('\t');
}

// What follows the sequence number: `<unix ms>\t<action>\t<media type>\t<json>`.
void append_tail(std::string& out, std::int64_t time_ms, std::string_view action,
                 std::string_view media_type, std::string_view json) {
    char num[24];
    auto r =
        std::to_chars(num, num + sizeof num, static_cast<std::uint64_t>(time_ms < 0 ? 0 : time_ms));
    out.append(num, static_cast<std::size_t>(r.ptr - num));
    out.push_back('\t');
    clean_field(out, action);
    out.push_back('\t');
    clean_field(out, media_type);
    out.push_back('\t');
    out.append(json); // JSON as event_json writes it: control characters escaped
}

// The hash of the record that starts at `start`, and its line end.
void seal_record(std::string& out, std::size_t start) {
    static constexpr char hex[] = "0123456789abcdef";
    std::uint64_t h = XXH3_64bits(out.data() + start + 17, out.size() - start - 17);
    for (int i = 15; i >= 0; --i) {
        out[start + static_cast<std::size_t>(i)] = hex[h & 15U];
        h >>= 4U;
    }
    out.push_back('\n');
}

} // namespace

void append_record(std::string& out, std::uint64_t seq, std::int64_t time_ms,
                   std::string_view action, std::string_view media_type, std::string_view json) {
    const std::size_t start = out.size();
    open_record(out, seq);
    append_tail(out, time_ms, action, media_type, json);
    seal_record(out, start);
}

std::string format_record(std::uint64_t seq, std::int64_t time_ms, std::string_view action,
                          std::string_view media_type, std::string_view json) {
    std::string line;
    line.reserve(json.size() + media_type.size() + action.size() + 64);
    append_record(line, seq, time_ms, action, media_type, json);
    return line;
}

bool parse_record(std::string_view line, Record& out) {
    if (!line.empty() && line.back() == '\n') {
        line.remove_suffix(1);
    }
    if (line.size() < 18 || line[16] != '\t' || !util::is_lower_hex(line.substr(0, 16))) {
        return false;
    }
    std::string_view body = line.substr(17);
    std::uint64_t want = 0;
    for (std::size_t i = 0; i < 16; ++i) { // lower hex, checked above
        const char c = line[i];
        want = (want << 4U) | static_cast<std::uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    if (XXH3_64bits(body.data(), body.size()) != want) {
        return false;
    }
    std::string_view f[5];
    for (int i = 0; i < 4; ++i) {
        std::size_t t = body.find('\t');
        if (t == std::string_view::npos) {
            return false;
        }
        f[i] = body.substr(0, t);
        body.remove_prefix(t + 1);
    }
    f[4] = body;
    auto seq = util::parse_u64(f[0]);
    auto ms = util::parse_u64(f[1]);
    if (!seq || !ms || *seq == 0) {
        return false;
    }
    out.seq = *seq;
    out.time_ms = static_cast<std::int64_t>(*ms);
    out.action.assign(f[2]);
    out.media_type.assign(f[3]);
    out.json.assign(f[4]);
    return true;
}

Result<std::unique_ptr<Spool>> Spool::open(int parentfd, std::string_view name, SpoolConfig cfg) {
    const std::string dname(name);
    if (::mkdirat(parentfd, dname.c_str(), 0755) != 0 && errno != EEXIST) {
        return Error::sys(errno, "create " + dname);
    }
    util::UniqueFd dir(::openat(parentfd, dname.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir.valid()) {
        return Error::sys(errno, "open " + dname);
    }
    std::vector<std::uint64_t> firsts;
    {
        int dup = ::fcntl(dir.get(), F_DUPFD_CLOEXEC, 0);
        DIR* d = dup >= 0 ? ::fdopendir(dup) : nullptr;
        if (d == nullptr) {
            if (dup >= 0) {
                ::close(dup);
            }
            return Error::sys(errno, "list " + dname);
        }
        for (int i = 0; i < 10'000'000; ++i) {
            dirent* e = ::readdir(d);
            if (e == nullptr) {
                break;
            }
            std::string_view n = e->d_name;
            if (n.size() == 20 + seg_suffix.size() && n.ends_with(seg_suffix)) {
                if (auto v = util::parse_u64(n.substr(0, 20)); v && *v > 0) {
                    firsts.push_back(*v);
                }
            }
        }
        ::closedir(d);
    }
    std::sort(firsts.begin(), firsts.end());
    std::unique_ptr<Spool> s(new Spool(std::move(dir), cfg));
    for (std::uint64_t f : firsts) {
        struct stat st {};
        if (::fstatat(s->dir_.get(), segment_name(f).c_str(), &st, 0) == 0) {
            s->segments_.push_back(Segment{f, static_cast<std::uint64_t>(st.st_size)});
        }
    }
    if (!s->segments_.empty()) {
        // The last segment: its last good record, and the end of it.
        Segment& last = s->segments_.back();
        const std::string seg = segment_name(last.first);
        util::UniqueFd fd(::openat(s->dir_.get(), seg.c_str(), O_RDWR | O_APPEND | O_CLOEXEC));
        if (!fd.valid()) {
            return Error::sys(errno, "open " + dname + "/" + seg);
        }
        std::string data(last.bytes, '\0');
        std::size_t got = 0;
        for (int i = 0; got < data.size() && i < 1'000'000; ++i) {
            ssize_t n =
                ::pread(fd.get(), data.data() + got, data.size() - got, static_cast<off_t>(got));
            if (n <= 0) {
                break;
            }
            got += static_cast<std::size_t>(n);
        }
        data.resize(got);
        std::uint64_t last_seq = last.first - 1;
        std::size_t good_end = 0;
        Record r;
        for (std::size_t at = 0; at < data.size();) {
            std::size_t nl = data.find('\n', at);
            if (nl == std::string::npos) {
                break; // a torn tail
            }
            if (parse_record(std::string_view(data).substr(at, nl + 1 - at), r) &&
                r.seq > last_seq) {
                last_seq = r.seq;
                good_end = nl + 1;
            }
            at = nl + 1;
        }
        if (good_end < data.size()) {
            if (::ftruncate(fd.get(), static_cast<off_t>(good_end)) != 0) {
                return Error::sys(errno, "cut the torn tail of " + dname + "/" + seg);
            }
        }
        last.bytes = good_end;
        s->cur_ = std::move(fd);
        s->next_seq_ = last_seq + 1;
    }
    s->written_seq_ = s->next_seq_ - 1;
    s->synced_seq_ = s->written_seq_;
    s->written_.publish(s->written_seq_);
    s->synced_.publish(s->written_seq_);
    return s;
}

namespace {
std::atomic<std::uint64_t> spool_ids{0};
} // namespace

Spool::Spool(util::UniqueFd dir, SpoolConfig cfg) noexcept
    : dir_(std::move(dir)), cfg_(cfg), id_(spool_ids.fetch_add(1) + 1) {}

Spool::~Spool() = default;

Spool::Local& Spool::local() {
    // The thread's queue of this spool, found once per thread (and again
    // when a thread appends to another spool between two of this one's).
    thread_local std::uint64_t cached_id = 0;
    thread_local Local* cached = nullptr;
    if (cached != nullptr && cached_id == id_) {
        return *cached;
    }
    const std::thread::id me = std::this_thread::get_id();
    std::lock_guard lk(locals_mu_);
    Local* found = nullptr;
    for (const auto& l : locals_) {
        if (l->owner == me) {
            found = l.get();
        }
    }
    if (found == nullptr) {
        locals_.push_back(std::make_unique<Local>());
        found = locals_.back().get();
        found->owner = me;
    }
    cached_id = id_;
    cached = found;
    return *found;
}

std::uint64_t Spool::take_locals(std::vector<std::string>& taken, bool all) {
    // Every frame with a ticket below `bound` is taken: its ticket was drawn
    // under its queue's lock, which the walk below takes after this load.
    // Frames drawn after it wait for the next take, or a pull on a queue
    // walked first could be numbered after a later one on a queue walked
    // last (a client's pull, then its next pull on the other shard). The
    // last take (all) takes everything.
    const std::uint64_t bound = tickets_.load(std::memory_order_acquire);
    local_full_.store(false, std::memory_order_relaxed);
    std::uint64_t n = 0;
    std::lock_guard lk(locals_mu_);
    taken.resize(std::max(taken.size(), locals_.size()));
    for (std::size_t i = 0; i < locals_.size(); ++i) {
        Local& l = *locals_[i];
        std::lock_guard ll(l.mu);
        if (l.count == 0) {
            continue;
        }
        if (all || l.last_ticket < bound) {
            // Swapped, not copied: taken[i] is empty (its capacity kept from
            // the turn before) and becomes the thread's queue.
            taken[i].swap(l.frames);
            n += l.count;
            l.count = 0;
            continue;
        }
        std::size_t at = 0;
        std::uint64_t k = 0;
        for (; at + frame_head <= l.frames.size(); ++k) {
            const FrameHead h = frame_at(l.frames, at);
            if (h.ticket >= bound) {
                break;
            }
            at += frame_head + h.len;
        }
        if (k != 0) {
            taken[i].assign(l.frames, 0, at);
            l.frames.erase(0, at);
            n += k;
            l.count -= k;
        }
    }
    return n;
}

std::uint64_t Spool::number_frames(std::string& out, std::vector<std::string>& taken,
                                   std::uint64_t first) {
    // Each thread's frames are in ticket order; together they are merged by
    // ticket, so that an event that happened before another (a client's
    // pull, then its next pull on another shard) is numbered before it.
    struct Frame {
        std::uint64_t ticket;
        std::string_view tail;
    };
    thread_local std::vector<Frame> order;
    order.clear();
    std::size_t need = out.size();
    for (const std::string& frames : taken) {
        need += frames.size() + frames.size() / 8; // the numbers and hashes: 30 bytes a record
        for (std::size_t at = 0; at + frame_head <= frames.size();) {
            const FrameHead h = frame_at(frames, at);
            order.push_back(
                Frame{h.ticket, std::string_view(frames).substr(at + frame_head, h.len)});
            at += frame_head + h.len;
        }
    }
    std::sort(order.begin(), order.end(),
              [](const Frame& a, const Frame& b) { return a.ticket < b.ticket; });
    if (out.capacity() < need) {
        out.reserve(need + need / 2); // one allocation, not a doubling's copies; kept
    }
    std::uint64_t seq = first;
    for (const Frame& f : order) {
        const std::size_t start = out.size();
        open_record(out, seq++);
        out.append(f.tail);
        seal_record(out, start);
    }
    for (std::string& frames : taken) {
        frames.clear();
    }
    return seq;
}

std::uint64_t Spool::append(std::string_view action, std::string_view media_type,
                            std::string_view json, std::int64_t time_ms, bool durable) {
    if (!durable) {
        Local& l = local();
        std::lock_guard ll(l.mu);
        // closing_ is set before the writer's last take of the queues, under
        // their locks: a record queued here while it is false is taken.
        if (!closing_.load(std::memory_order_acquire)) {
            const std::size_t at = l.frames.size();
            l.frames.append(frame_head, '\0');
            append_tail(l.frames, time_ms, action, media_type, json);
            const auto len = static_cast<std::uint32_t>(l.frames.size() - at - frame_head);
            const std::uint64_t ticket = tickets_.fetch_add(1, std::memory_order_relaxed);
            std::memcpy(l.frames.data() + at, &len, 4);
            std::memcpy(l.frames.data() + at + 4, &ticket, 8);
            l.last_ticket = ticket;
            ++l.count;
            if (l.frames.size() >= local_wake_bytes &&
                !local_full_.exchange(true, std::memory_order_relaxed)) {
                cv_.notify_one(); // a bound on memory, not a deadline: a missed wake waits a turn
            }
            return 0;
        }
    }
    {
        std::lock_guard lk(mu_);
        if (!closed_) {
            // Every thread's queued pulls first: a push or a delete never
            // overtakes an event that happened before it.
            if (pending_.empty()) {
                pending_first_ = next_seq_;
            }
            if (take_locals(drained_, false) != 0) {
                next_seq_ = number_frames(pending_, drained_, next_seq_);
            }
            const std::uint64_t seq = next_seq_++;
            append_record(pending_, seq, time_ms, action, media_type, json);
            if (durable) {
                want_sync_ = seq;
            }
            cv_.notify_one();
            return seq;
        }
    }
    // The writer thread has ended (a stop): write now, in order.
    std::lock_guard wl(wmu_);
    std::uint64_t seq = 0;
    {
        std::lock_guard lk(mu_);
        seq = next_seq_++;
    }
    if (write_out(format_record(seq, time_ms, action, media_type, json), seq) &&
        (!durable || ::fdatasync(cur_.get()) == 0)) {
        std::lock_guard lk(mu_);
        written_seq_ = seq;
        synced_seq_ = durable ? seq : synced_seq_;
    } else {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard lk(mu_);
        written_seq_ = seq;
    }
    return seq;
}

bool Spool::write_out(const std::string& buf, std::uint64_t first) noexcept {
    std::uint64_t cur_bytes = 0;
    bool have = false;
    {
        std::lock_guard lk(mu_);
        have = !segments_.empty() && cur_.valid();
        cur_bytes = have ? segments_.back().bytes : 0;
    }
    if (!have || cur_bytes >= cfg_.segment_bytes) {
        const std::string name = segment_name(first);
        util::UniqueFd fd(
            ::openat(dir_.get(), name.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
        if (!fd.valid()) {
            errors_.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        if (cur_.valid()) {
            (void)::fdatasync(cur_.get()); // the segment before is complete on disk
        }
        (void)::fsync(dir_.get()); // the new name survives a crash
        cur_ = std::move(fd);
        torn_ = false;
        cur_bytes = 0;
        std::lock_guard lk(mu_);
        segments_.push_back(Segment{first, 0});
    }
    // After a write that failed and could not be cut off, a line end first:
    // the fragment stays a damaged line of its own, skipped by readers.
    const std::string* out = &buf;
    std::string fixed;
    if (torn_) {
        fixed.reserve(buf.size() + 1);
        fixed.push_back('\n');
        fixed += buf;
        out = &fixed;
    }
    if (!write_all(cur_.get(), out->data(), out->size())) {
        errors_.fetch_add(1, std::memory_order_relaxed);
        // What landed of it goes, so the next write starts a clean line.
        torn_ = ::ftruncate(cur_.get(), static_cast<off_t>(cur_bytes)) != 0;
        struct stat st {};
        if (torn_ && ::fstat(cur_.get(), &st) == 0) {
            std::lock_guard lk(mu_);
            segments_.back().bytes = static_cast<std::uint64_t>(st.st_size); // the fragment too
        }
        return false;
    }
    torn_ = false;
    std::lock_guard lk(mu_);
    segments_.back().bytes += out->size();
    return true;
}

void Spool::run(const std::atomic<bool>& stop) noexcept {
    using Clock = std::chrono::steady_clock;
    std::string buf;
    std::vector<std::string> frames; // the threads' queued records, taken each turn
    std::uint64_t frames_n = 0;
    std::uint64_t frames_first = 0;
    Clock::time_point failing_since{};
    bool failing = false;
    for (std::uint64_t turn = 0; turn < (1ULL << 62); ++turn) {
        std::uint64_t first = 0;
        std::uint64_t last = 0;
        bool stopping = false;
        // The writer's turn holds wmu_ from before it takes the queue, so an
        // append after `closed_` cannot write ahead of the queue's records.
        std::lock_guard wl(wmu_);
        {
            std::unique_lock lk(mu_);
            if (failing) {
                // The disk refused the last turn: try again in a moment.
                cv_.wait_for(lk, std::chrono::milliseconds(retry_ms), [&] { return stop.load(); });
            } else {
                // Bounded wait: pulls' records and the stop flag come without
                // a notification; they are written at the latest a turn later.
                cv_.wait_for(lk, std::chrono::milliseconds(turn_ms), [&] {
                    return want_sync_ > synced_seq_ || local_full_.load() || stop.load();
                });
            }
            stopping = stop.load();
            if (stopping) {
                closing_.store(true, std::memory_order_release); // before the last take
            }
            // Copied, not swapped: buf and frames keep their capacity turn
            // after turn (a new multi-megabyte buffer is fresh pages to
            // fault in, each turn).
            buf.append(pending_);
            pending_.clear();
            first = pending_first_;
            // The threads' queued records are numbered after what pending_
            // holds, and written after it (numbered outside the lock).
            frames_n = take_locals(frames, stopping);
            frames_first = next_seq_;
            next_seq_ += frames_n;
            if (buf.empty()) {
                first = frames_first;
            }
            last = next_seq_ - 1;
            if (stopping) {
                closed_ = true; // appends from now on write at once (under wmu_)
            }
        }
        if (frames_n != 0) {
            (void)number_frames(buf, frames, frames_first);
        }
        bool ok = true;
        if (!buf.empty()) {
            ok = write_out(buf, first);
            if (ok) {
                std::lock_guard lk(mu_);
                written_seq_ = last;
            }
        }
        std::uint64_t to_sync = 0;
        {
            std::lock_guard lk(mu_);
            if (ok && (want_sync_ > synced_seq_ || stopping) && written_seq_ > synced_seq_) {
                to_sync = written_seq_;
            }
        }
        if (to_sync != 0 && ::fdatasync(cur_.get()) != 0) {
            errors_.fetch_add(1, std::memory_order_relaxed);
            ok = false;
        } else if (to_sync != 0) {
            std::lock_guard lk(mu_);
            synced_seq_ = to_sync;
        }
        const auto now = Clock::now();
        if (ok) {
            failing = false;
        } else if (!failing) {
            failing = true;
            failing_since = now;
        }
        if (!ok && !stopping && now - failing_since < std::chrono::milliseconds(give_up_ms)) {
            // Kept for the next try: the records go back in front of what
            // came since, and their requests keep waiting.
            if (!buf.empty() && written_seq_ < last) {
                std::lock_guard lk(mu_);
                buf += pending_;
                pending_.swap(buf);
                pending_first_ = first;
            }
            buf.clear();
            continue;
        }
        if (!ok) {
            // Given up (or stopping): what was not written is lost and
            // counted; the waiting requests go on, their events gone.
            std::lock_guard lk(mu_);
            if (written_seq_ < last && !buf.empty()) {
                dropped_.fetch_add(last - first + 1, std::memory_order_relaxed);
                written_seq_ = last; // readers count the gap as lost
            }
            synced_seq_ = written_seq_;
            failing = false;
        }
        std::uint64_t written = 0;
        std::uint64_t synced = 0;
        {
            std::lock_guard lk(mu_);
            written = written_seq_;
            synced = synced_seq_;
        }
        written_.publish(written);
        synced_.publish(synced);
        buf.clear();
        enforce_bound();
        if (stopping) {
            written_.close();
            synced_.close();
            return;
        }
    }
}

void Spool::enforce_bound() noexcept {
    std::vector<std::uint64_t> gone;
    {
        std::lock_guard lk(mu_);
        std::uint64_t total = 0;
        for (const Segment& s : segments_) {
            total += s.bytes;
        }
        while (total > cfg_.bytes_max && segments_.size() > 1) {
            // What an endpoint had not read of it, its reader counts as lost.
            const Segment& s = segments_.front();
            total -= s.bytes;
            gone.push_back(s.first);
            segments_.erase(segments_.begin());
        }
    }
    remove_segments(gone);
}

void Spool::release(std::uint64_t seq) noexcept {
    std::vector<std::uint64_t> gone;
    {
        std::lock_guard lk(mu_);
        while (segments_.size() > 1 && segments_[1].first - 1 <= seq) {
            gone.push_back(segments_.front().first);
            segments_.erase(segments_.begin());
        }
    }
    remove_segments(gone);
}

void Spool::remove_segments(const std::vector<std::uint64_t>& firsts) noexcept {
    for (std::uint64_t f : firsts) {
        (void)::unlinkat(dir_.get(), segment_name(f).c_str(), 0);
    }
}

std::uint64_t Spool::last_seq() const noexcept {
    std::lock_guard lk(mu_);
    return next_seq_ - 1;
}

std::uint64_t Spool::first_seq() const noexcept {
    std::lock_guard lk(mu_);
    return segments_.empty() ? next_seq_ : segments_.front().first;
}

std::uint64_t Spool::bytes() const noexcept {
    std::lock_guard lk(mu_);
    std::uint64_t total = 0;
    for (const Segment& s : segments_) {
        total += s.bytes;
    }
    return total;
}

std::vector<Record> Spool::Reader::next(std::size_t max, std::size_t bytes_max) {
    std::vector<Record> out;
    out.resize(next(out, max, bytes_max));
    return out;
}

std::size_t Spool::Reader::next(std::vector<Record>& out, std::size_t max, std::size_t bytes_max) {
    std::size_t got = 0; // out[0, got) are this call's; the rest are kept for their capacity
    std::vector<Segment> segs;
    std::uint64_t written = 0;
    {
        std::lock_guard lk(spool_->mu_);
        segs = spool_->segments_;
        written = spool_->written_seq_;
    }
    if (segs.empty() || next_ > written || max == 0) {
        return got;
    }
    std::size_t idx = 0;
    if (next_ < segs.front().first) {
        lost_ += segs.front().first - next_; // removed by the bound before it was read
        next_ = segs.front().first;
    } else {
        for (std::size_t i = 0; i < segs.size(); ++i) {
            if (segs[i].first <= next_) {
                idx = i;
            }
        }
    }
    std::size_t bytes = 0;
    std::string& buf = buf_;
    for (int guard = 0; guard < 1'000'000 && idx < segs.size(); ++guard) {
        if (seg_ != segs[idx].first || !fd_.valid()) {
            fd_.reset(::openat(spool_->dir_.get(), segment_name(segs[idx].first).c_str(),
                               O_RDONLY | O_CLOEXEC));
            seg_ = segs[idx].first;
            off_ = 0;
            if (!fd_.valid()) {
                seg_ = 0;
                return got; // removed meanwhile: the next call starts from the list again
            }
        }
        // The segment being written is read only as far as the writer has published.
        const std::uint64_t limit = idx + 1 == segs.size() ? segs[idx].bytes : UINT64_MAX;
        std::size_t chunk = read_chunk;
        while (off_ < limit) {
            const std::size_t want =
                static_cast<std::size_t>(std::min<std::uint64_t>(chunk, limit - off_));
            buf.resize(want);
            ssize_t n = ::pread(fd_.get(), buf.data(), want, static_cast<off_t>(off_));
            if (n <= 0) {
                break;
            }
            buf.resize(static_cast<std::size_t>(n));
            std::size_t at = 0;
            bool full = false;
            for (;;) {
                if (got == out.size()) {
                    out.emplace_back();
                }
                Record& r = out[got]; // its strings' capacity is reused
                std::size_t nl = buf.find('\n', at);
                if (nl == std::string::npos) {
                    break;
                }
                const std::string_view line = std::string_view(buf).substr(at, nl + 1 - at);
                at = nl + 1;
                if (!parse_record(line, r) || r.seq < next_) {
                    continue; // a torn or damaged line, or one already read
                }
                if (r.seq > written) {
                    at -= line.size();
                    full = true;
                    break;
                }
                next_ = r.seq + 1;
                bytes += r.json.size();
                ++got;
                if (got >= max || bytes >= bytes_max) {
                    full = true;
                    break;
                }
            }
            if (at == 0 && !full) {
                if (static_cast<std::size_t>(n) == chunk && chunk < (64U << 20U)) {
                    chunk *= 2; // a line longer than the chunk: read more at once
                    continue;
                }
                break; // a partial line at the end: not yet complete
            }
            off_ += at;
            if (full) {
                return got;
            }
        }
        if (idx + 1 < segs.size()) {
            ++idx; // this segment is read to its end
            continue;
        }
        // Every record up to `written` lies within what was read (the writer
        // counts a segment's bytes before the record numbers): any not found
        // are records the writer gave up on.
        if (next_ <= written) {
            lost_ += written - next_ + 1;
            next_ = written + 1;
        }
        break;
    }
    return got;
}

} // namespace rp::observe
