// SPDX-License-Identifier: Apache-2.0
#include "storage/store.hh"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <ctime>
#include <limits>
#include <vector>

#include "reactor/ops.hh"
#include "storage/layout.hh"
#include "util/assert.hh"
#include "util/strings.hh"

namespace rp::storage {

using reactor::Task;
using util::Errc;
using util::Error;
using util::Result;

namespace {
constexpr std::size_t rehash_chunk_bytes = 1u << 20;

std::int64_t steady_ms() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}
} // namespace

Store::Store(int v2fd, StoreConfig cfg, Index& index) noexcept
    : fs_(v2fd), cfg_(cfg), index_(index) {}

namespace {

// Holds a cached body and its charge; the charge goes back with the holder.
struct CacheCharge {
    std::shared_ptr<const std::string> body;
    std::shared_ptr<std::atomic<std::size_t>> used;
    CacheCharge(std::shared_ptr<const std::string> b, std::shared_ptr<std::atomic<std::size_t>> u)
        : body(std::move(b)), used(std::move(u)) {}
    CacheCharge(const CacheCharge&) = delete;
    CacheCharge& operator=(const CacheCharge&) = delete;
    ~CacheCharge() { used->fetch_sub(body->size(), std::memory_order_relaxed); }
};

} // namespace

std::shared_ptr<const std::string>
Store::cache_body(std::shared_ptr<const std::string> body) noexcept {
    if (!body) {
        return nullptr;
    }
    std::size_t n = body->size();
    std::size_t cur = cache_used_->load(std::memory_order_relaxed);
    do {
        if (cur + n > cfg_.manifest_cache_bytes_max) {
            return nullptr;
        }
    } while (!cache_used_->compare_exchange_weak(cur, cur + n, std::memory_order_relaxed));
    auto charge = std::make_shared<CacheCharge>(std::move(body), cache_used_);
    const std::string* p = charge->body.get();
    return {std::move(charge), p}; // aliasing: the charge lives as long as the body is shared
}

Task<Result<void>> Store::note_write(const std::string& repo) noexcept {
    if (journal_ == nullptr) {
        co_return util::Ok{};
    }
    co_return co_await journal_->record(repo);
}

// ---- blobs --------------------------------------------------------------

Task<Result<std::uint64_t>> Store::stat_blob(std::string repo, Digest d) noexcept {
    if (!index_.has_layer(repo, d)) {
        co_return Error::of(Errc::not_found, "blob unknown to repository");
    }
    auto st = co_await fs_.stat(layout::blob_data(d));
    if (!st) {
        co_return Error::of(Errc::not_found, "blob data missing");
    }
    co_return static_cast<std::uint64_t>(st->stx_size);
}

Task<Result<int>> Store::open_blob(std::string repo, Digest d, std::uint64_t* size) noexcept {
    if (!index_.has_layer(repo, d)) {
        co_return Error::of(Errc::not_found, "blob unknown to repository");
    }
    co_return co_await open_blob_data(d, size);
}

Task<Result<int>> Store::open_blob_data(const Digest& d, std::uint64_t* size) noexcept {
    auto fd = co_await fs_.open(layout::blob_data(d), O_RDONLY);
    if (!fd) {
        co_return Error::of(Errc::not_found, "blob data missing");
    }
    auto st = co_await fs_.fstat(*fd);
    if (!st) {
        co_await fs_.close(*fd);
        co_return std::move(st).error();
    }
    *size = static_cast<std::uint64_t>(st->stx_size);
    co_return *fd;
}

// ---- straight from the tree ----------------------------------------------

Task<Result<Digest>> Store::read_link(std::string path) noexcept {
    auto b = co_await fs_.read_file(std::move(path), 256);
    if (!b) {
        co_return Error::of(Errc::not_found, "no link");
    }
    auto d = Digest::parse(*b);
    if (!d) {
        co_return Error::of(Errc::not_found, "broken link");
    }
    co_return std::move(*d);
}

Task<Result<Digest>> Store::tag_on_disk(std::string repo, std::string tag) noexcept {
    co_return co_await read_link(layout::tag_current_link(repo, tag));
}

Task<Result<std::string>> Store::manifest_on_disk(std::string repo, Digest d) noexcept {
    auto link = co_await read_link(layout::revision_link(repo, d));
    if (!link || !(*link == d)) {
        co_return Error::of(Errc::not_found, "manifest unknown to repository");
    }
    auto body = co_await fs_.read_file(layout::blob_data(d), cfg_.manifest_bytes_max * 4);
    if (!body || !(digest_of(d.algorithm(), *body) == d)) {
        co_return Error::of(Errc::not_found, "manifest data missing or damaged");
    }
    co_return std::move(*body);
}

Task<Result<int>> Store::open_blob_on_disk(std::string repo, Digest d,
                                           std::uint64_t* size) noexcept {
    auto link = co_await read_link(layout::layer_link(repo, d));
    if (!link || !(*link == d)) {
        co_return Error::of(Errc::not_found, "blob unknown to repository");
    }
    co_return co_await open_blob_data(d, size);
}

Task<Result<void>> Store::link_layer(const std::string& repo, const Digest& d,
                                     std::uint64_t size) noexcept {
    if (!index_.has_layer(repo, d)) {
        auto w = co_await fs_.write_atomic(layout::layer_link(repo, d), d.str());
        if (!w) {
            co_return w;
        }
        index_.add_layer(repo, d, size);
    } else if (size != Index::unknown_size) {
        index_.learn_sizes({{d, size}}); // a size of 0 (its data was missing) is corrected
    }
    record_use(d);
    co_return util::Ok{};
}

Task<Result<void>> Store::delete_blob(std::string repo, Digest d) noexcept {
    if (!index_.has_layer(repo, d)) { // a miss takes no lease: it leaves no state
        co_return Error::of(Errc::not_found, "blob unknown to repository");
    }
    RepoLease rs = index_.lease(repo);
    co_await rs->write_mu.lock();
    reactor::AsyncLockGuard guard(rs->write_mu);
    if (auto j = co_await note_write(repo); !j) {
        co_return std::move(j).error();
    }
    if (!index_.has_layer(repo, d)) {
        co_return Error::of(Errc::not_found, "blob unknown to repository");
    }
    std::string link = layout::layer_link(repo, d);
    auto u = co_await fs_.unlink(link);
    if (!u && u.error().kind != Errc::not_found) {
        co_return u;
    }
    (void)co_await fs_.rmdir(std::string(layout::parent(link)));
    (void)co_await fs_.fsync_dir(std::string(layout::parent(layout::parent(link))));
    index_.remove_layer(repo, d);
    co_return util::Ok{};
}

Task<Result<bool>> Store::mount_blob(std::string repo, Digest d, std::optional<std::string> from,
                                     std::function<bool(std::string_view)> readable) noexcept {
    auto linked = [&] {
        if (from) {
            return index_.has_layer(*from, d);
        }
        return readable ? index_.any_repo_has_layer_where(d, readable)
                        : index_.any_repo_has_layer(d);
    };
    if (!linked()) {
        co_return false;
    }
    BlobUse use = co_await use_blob(d);
    if (!linked()) {
        co_return false; // unlinked meanwhile: its data may be going
    }
    auto st = co_await fs_.stat(layout::blob_data(d));
    if (!st) {
        co_return false;
    }
    RepoLease rs = index_.lease(repo);
    co_await rs->write_mu.lock();
    reactor::AsyncLockGuard guard(rs->write_mu);
    if (auto j = co_await note_write(repo); !j) {
        co_return std::move(j).error();
    }
    auto l = co_await link_layer(repo, d, st->stx_size);
    if (!l) {
        co_return std::move(l).error();
    }
    co_return true;
}

// ---- blob uses and removal -------------------------------------------------

Store::BlobUse::~BlobUse() {
    if (s_ == nullptr) {
        return;
    }
    std::lock_guard lk(s_->blob_use_mu_);
    auto it = s_->blob_uses_.find(key_);
    if (it != s_->blob_uses_.end() && --it->second == 0) {
        s_->blob_uses_.erase(it);
    }
}

Task<Store::BlobUse> Store::use_blob(const Digest& d) noexcept {
    // Bounded: a removal is one unlink; past 10 s the use goes ahead anyway.
    for (int i = 0;; ++i) {
        {
            std::lock_guard lk(blob_use_mu_);
            if (!blob_removing_.contains(d.str()) || i >= 10000) {
                ++blob_uses_[d.str()];
                break;
            }
        }
        (void)co_await reactor::sleep_ms(1);
    }
    co_return BlobUse(this, d.str());
}

Task<Result<bool>> Store::remove_unreferenced_blob(Digest d) noexcept {
    const std::string& key = d.str();
    {
        std::lock_guard lk(blob_use_mu_);
        if (index_.any_repo_has_layer(d) || index_.shared_manifest(d) ||
            !take_for_removal_locked(key, std::numeric_limits<std::int64_t>::max())) {
            co_return false;
        }
    }
    std::string data = layout::blob_data(d);
    auto r = co_await fs_.unlink(data);
    if (r) {
        (void)co_await fs_.rmdir(std::string(layout::parent(data)));
    }
    {
        std::lock_guard lk(blob_use_mu_);
        blob_removing_.erase(key);
    }
    if (!r) {
        co_return r.error().kind == Errc::not_found ? Result<bool>(false)
                                                    : Result<bool>(std::move(r).error());
    }
    co_return true;
}

Task<Result<std::uint64_t>> Store::blob_size(Digest d) noexcept {
    auto st = co_await fs_.stat(layout::blob_data(d));
    if (!st) {
        co_return std::move(st).error();
    }
    co_return static_cast<std::uint64_t>(st->stx_size);
}

// ---- uploads ------------------------------------------------------------

std::size_t Store::upload_count() noexcept {
    std::lock_guard lk(uploads_mu_);
    return uploads_.size();
}

bool layout_valid_upload_id(std::string_view id) noexcept { return layout::valid_upload_id(id); }

Task<Result<std::uint64_t>> Store::upload_offset(std::string repo, std::string uuid) noexcept {
    {
        std::lock_guard lk(uploads_mu_);
        auto it = uploads_.find(uuid);
        if (it != uploads_.end()) {
            if (it->second->repo != repo) {
                co_return Error::of(Errc::not_found, "upload unknown");
            }
            co_return it->second->offset.load();
        }
    }
    auto st = co_await fs_.stat(layout::upload_data(repo, uuid));
    if (!st) {
        co_return Error::of(Errc::not_found, "upload unknown");
    }
    co_return static_cast<std::uint64_t>(st->stx_size);
}

bool Store::upload_active(const std::string& uuid) const noexcept {
    std::lock_guard lk(uploads_mu_);
    return uploads_.count(uuid) != 0;
}

void Store::forget_upload(const std::string& uuid) noexcept {
    std::lock_guard lk(uploads_mu_);
    uploads_.erase(uuid);
}

Task<Result<UploadPtr>> Store::start_upload(std::string repo) noexcept {
    auto u = std::make_shared<Upload>();
    u->repo = repo;
    u->uuid = new_uuid();
    u->started_at = static_cast<std::int64_t>(std::time(nullptr));
    u->busy = true;
    UploadPtr evicted; // closed when this frame lets go of it, outside the lock
    {
        std::lock_guard lk(uploads_mu_);
        if (!make_room_locked(evicted)) {
            co_return Error::of(Errc::limit, "too many upload sessions in progress");
        }
        uploads_[u->uuid] = u;
    }
    // The repository's directories are made durable once, when created (a
    // later commit's links hang below them). The session directory itself
    // is scratch, not made durable: after a crash an upload resumes from the
    // data that survived (re-hashed) or is reported unknown; a blob becomes
    // durable only at commit.
    auto m = co_await fs_.mkdirs(layout::uploads_dir(repo), true);
    if (m) {
        m = co_await fs_.mkdirs(layout::upload_dir(repo, u->uuid), false);
    }
    Result<int> fd =
        m ? co_await fs_.open(layout::upload_data(repo, u->uuid), O_RDWR | O_CREAT | O_EXCL, 0644)
          : Result<int>(std::move(m).error());
    if (fd) {
        u->fd = *fd;
        auto w = co_await fs_.write_file(layout::upload_startedat(repo, u->uuid),
                                         util::rfc3339(u->started_at));
        if (w) {
            co_return u;
        }
        fd = std::move(w).error();
    }
    co_await cancel_upload(u);
    co_return std::move(fd).error();
}

void Store::release_upload(const UploadPtr& u) noexcept {
    std::lock_guard lk(uploads_mu_);
    u->busy = false;
    u->idle_since_ms = steady_ms();
}

bool Store::make_room_locked(UploadPtr& out) noexcept {
    if (uploads_.size() < cfg_.uploads_max) {
        return true;
    }
    // Full: the session idle the longest gives up its place (O(n) only when
    // full). It stays resumable from its data file.
    auto idlest = uploads_.end();
    for (auto it = uploads_.begin(); it != uploads_.end(); ++it) {
        if (!it->second->busy && (idlest == uploads_.end() ||
                                  it->second->idle_since_ms < idlest->second->idle_since_ms)) {
            idlest = it;
        }
    }
    if (idlest == uploads_.end()) {
        return false; // every slot serves a request right now
    }
    out = std::move(idlest->second);
    uploads_.erase(idlest);
    return true;
}

std::size_t Store::release_idle_uploads(std::int64_t idle_ms) noexcept {
    std::vector<UploadPtr> released; // closed after the lock is dropped
    std::int64_t cutoff = steady_ms() - idle_ms;
    {
        std::lock_guard lk(uploads_mu_);
        for (auto it = uploads_.begin(); it != uploads_.end();) {
            if (!it->second->busy && it->second->idle_since_ms <= cutoff) {
                released.push_back(std::move(it->second));
                it = uploads_.erase(it);
            } else {
                ++it;
            }
        }
    }
    return released.size();
}

Task<Result<Digest>> Store::rehash(int fd, Algorithm alg, std::uint64_t size,
                                   Hasher* into) noexcept {
    Hasher local(alg);
    Hasher& h = into != nullptr ? *into : local;
    std::vector<char> buf(rehash_chunk_bytes);
    for (std::uint64_t off = 0; off < size;) {
        std::uint64_t want = size - off < buf.size() ? size - off : buf.size();
        int n = co_await reactor::read(fd, buf.data(), static_cast<unsigned>(want), off);
        if (n < 0) {
            co_return Error::sys(n, "read upload data");
        }
        if (n == 0) {
            co_return Error::of(Errc::size_mismatch, "upload data shorter than its size");
        }
        h.update(buf.data(), static_cast<std::size_t>(n));
        off += static_cast<std::uint64_t>(n);
    }
    co_return h.peek();
}

Task<Result<UploadPtr>> Store::resume_upload(std::string repo, std::string uuid) noexcept {
    auto fd = co_await fs_.open(layout::upload_data(repo, uuid), O_RDWR);
    if (!fd) {
        co_return Error::of(Errc::not_found, "upload unknown");
    }
    auto st = co_await fs_.fstat(*fd);
    if (!st) {
        co_await fs_.close(*fd);
        co_return std::move(st).error();
    }
    auto u = std::make_shared<Upload>();
    u->repo = repo;
    u->uuid = uuid;
    u->fd = *fd;
    u->offset = static_cast<std::uint64_t>(st->stx_size);
    auto h = co_await rehash(u->fd, Algorithm::sha256, u->offset.load(), &u->sha256);
    if (!h) {
        co_await fs_.close(u->fd);
        co_return std::move(h).error();
    }
    auto started = co_await fs_.read_file(layout::upload_startedat(repo, uuid), 128);
    std::optional<std::int64_t> t = started ? util::parse_rfc3339(*started) : std::nullopt;
    u->started_at = t ? *t : static_cast<std::int64_t>(std::time(nullptr));
    u->busy = true;
    UploadPtr evicted; // closed when this frame ends, after the lock is dropped
    UploadPtr theirs;  // another request resumed it meanwhile
    bool full = false;
    {
        std::lock_guard lk(uploads_mu_);
        auto it = uploads_.find(uuid);
        if (it != uploads_.end()) {
            theirs = it->second;
            if (!theirs->busy && theirs->repo == repo) {
                theirs->busy = true;
            } else {
                theirs = nullptr;
            }
        } else if (!make_room_locked(evicted)) {
            full = true;
        } else {
            uploads_.emplace(uuid, u);
            co_return u;
        }
    }
    // Not ours to keep: the descriptor goes now (the destructor would too).
    co_await fs_.close(u->fd);
    u->fd = -1;
    if (full) {
        co_return Error::of(Errc::limit, "too many upload sessions in progress");
    }
    if (!theirs) {
        co_return Error::of(Errc::busy, "upload in use");
    }
    co_return theirs;
}

Task<Result<UploadPtr>> Store::acquire_upload(std::string repo, std::string uuid) noexcept {
    {
        std::lock_guard lk(uploads_mu_);
        auto it = uploads_.find(uuid);
        if (it != uploads_.end()) {
            if (it->second->repo != repo) {
                co_return Error::of(Errc::not_found, "upload unknown");
            }
            if (it->second->busy) {
                co_return Error::of(Errc::busy, "upload in use by another request");
            }
            it->second->busy = true;
            co_return it->second;
        }
    }
    co_return co_await resume_upload(std::move(repo), std::move(uuid));
}

Task<Result<void>> Store::append(Upload& u, std::span<const char> bytes) noexcept {
    RP_ASSERT(u.busy);
    if (u.offset.load() + bytes.size() > cfg_.blob_bytes_max) {
        co_return Error::of(Errc::too_large, "blob exceeds the configured maximum size");
    }
    u.sha256.update(bytes.data(), bytes.size());
    auto w = co_await fs_.write_all(u.fd, bytes.data(), bytes.size(), u.offset.load());
    if (!w) {
        co_return w; // the hash and the file disagree now: the caller cancels
    }
    u.landed(u.offset.fetch_add(bytes.size()) + bytes.size());
    co_return util::Ok{};
}

Task<void> Store::remove_upload_files(std::string repo, std::string uuid) noexcept {
    (void)co_await fs_.unlink(layout::upload_data(repo, uuid));
    (void)co_await fs_.unlink(layout::upload_startedat(repo, uuid));
    auto r = co_await fs_.rmdir(layout::upload_dir(repo, uuid));
    if (!r && r.error().kind != Errc::not_found) {
        (void)co_await fs_.remove_tree(
            layout::upload_dir(repo, uuid)); // Distribution's hashstates/
    }
}

Task<void> Store::cancel_upload(UploadPtr u) noexcept {
    if (u->fd >= 0) {
        co_await fs_.close(u->fd);
        u->fd = -1;
    }
    if (u->dfd >= 0) {
        co_await fs_.close(u->dfd);
        u->dfd = -1;
    }
    co_await remove_upload_files(u->repo, u->uuid);
    forget_upload(u->uuid);
}

// Moves the verified upload data to its content address. If the blob is
// already stored, the upload's copy is simply dropped later.
Task<Result<void>> Store::move_into_blobs(Upload& u, const Digest& d) noexcept {
    auto s = co_await fs_.fsync(u.fd);
    if (!s) {
        co_return s;
    }
    std::string data = layout::blob_data(d);
    auto exists = co_await fs_.stat(data);
    if (exists) {
        co_return util::Ok{};
    }
    auto m = co_await fs_.mkdirs(layout::blob_dir(d));
    if (!m) {
        co_return m;
    }
    co_return co_await fs_.rename_durable(layout::upload_data(u.repo, u.uuid), data);
}

Task<Result<void>> Store::commit_upload(UploadPtr u, Digest expected,
                                        std::optional<std::uint64_t> size) noexcept {
    RP_ASSERT(u->busy);
    Result<Digest> got =
        expected.algorithm() == Algorithm::sha256
            ? Result<Digest>(u->sha256.peek())
            : co_await rehash(u->fd, expected.algorithm(), u->offset.load(), nullptr);
    if (!got) {
        co_await cancel_upload(u);
        co_return std::move(got).error();
    }
    if (!(*got == expected)) {
        co_await cancel_upload(u);
        co_return Error::of(Errc::digest_mismatch,
                            "content does not match digest " + expected.str());
    }
    if (size && *size != u->offset.load()) {
        co_await cancel_upload(u);
        co_return Error::of(Errc::size_mismatch, "content length does not match");
    }
    BlobUse use = co_await use_blob(expected);
    auto mv = co_await move_into_blobs(*u, expected);
    if (mv) {
        RepoLease rs = index_.lease(u->repo);
        co_await rs->write_mu.lock();
        reactor::AsyncLockGuard guard(rs->write_mu);
        mv = co_await note_write(u->repo);
        if (mv) {
            mv = co_await link_layer(u->repo, expected, u->offset.load());
        }
    }
    co_await cancel_upload(u); // the session ends either way; its files go
    co_return mv;
}

Task<Result<std::int64_t>> Store::tag_confirmed_at(std::string repo, std::string tag) noexcept {
    auto st = co_await fs_.stat(layout::tag_current_link(repo, tag));
    if (!st) {
        co_return std::move(st).error();
    }
    co_return static_cast<std::int64_t>(st->stx_mtime.tv_sec);
}

Task<Result<void>> Store::touch_tag(std::string repo, std::string tag) noexcept {
    co_return co_await fs_.touch(layout::tag_current_link(repo, tag));
}

} // namespace rp::storage
