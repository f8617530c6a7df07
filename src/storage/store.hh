// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "reactor/sync.hh"
#include "reactor/task.hh"
#include "storage/digest.hh"
#include "storage/fs.hh"
#include "storage/index.hh"
#include "storage/journal.hh"
#include "storage/receive.hh"
#include "util/result.hh"

namespace rp::storage {

// Upload ids as the layout accepts them (for handlers validating input).
bool layout_valid_upload_id(std::string_view id) noexcept;

struct StoreConfig {
    std::uint64_t blob_bytes_max = 64ull << 30;
    std::size_t manifest_bytes_max = 4u << 20;
    std::size_t uploads_max = 1024; // sessions holding memory and descriptors at once
    std::size_t manifest_cache_bytes_max = 256u << 20;
    // How long uses are remembered in memory (at least the longest grace
    // period a garbage collection asks for; older ones are read from mtimes).
    std::int64_t use_memory_s = 3600;
};

// An upload session. Its SHA-256 state lives here between requests (OpenSSL
// can copy a context but not serialise it); after a restart, or once the
// session was released for being idle, the data file is re-hashed. One
// request at a time uses a session (`busy`, guarded by the table's mutex);
// any shard may be the one. The last holder's release closes its files.
struct Upload {
    std::string repo;
    std::string uuid;
    int fd = -1;  // the data file, O_RDWR; closed when the session ends
    int dfd = -1; // the data file, O_DIRECT, opened by the first pipelined receive
    std::atomic<std::uint64_t> offset{0}; // read by GET status from any shard
    std::uint64_t written_back = 0;       // writeback started up to here (owner only)
    Hasher sha256{Algorithm::sha256};
    std::int64_t started_at = 0;
    std::int64_t idle_since_ms = 0; // steady clock; set when a request lets go (table's mutex)
    bool busy = false;
    // Told each time `offset` grows, so readers can follow the bytes as they
    // land (a mirror fetch streamed to its clients). Owner only; outlives
    // the session.
    reactor::Progress* progress = nullptr;

    void landed(std::uint64_t to) noexcept {
        if (progress != nullptr) {
            progress->publish(to);
        }
    }
    Upload() = default;
    Upload(const Upload&) = delete;
    Upload& operator=(const Upload&) = delete;
    ~Upload();
};
using UploadPtr = std::shared_ptr<Upload>;

// Typed storage operations over the layout, the index and the upload table.
// Only this module knows paths; the registry speaks digests, names and tags.
class Store {
  public:
    Store(int v2fd, StoreConfig cfg, Index& index) noexcept;
    Index& index() noexcept { return index_; }
    // Writers record their repository here before their first write after
    // each index snapshot (null: snapshots off, nothing to record).
    void set_journal(WriteJournal* j) noexcept { journal_ = j; }
    Fs& fs() noexcept { return fs_; }
    const StoreConfig& config() const noexcept { return cfg_; }

    // Blobs ----------------------------------------------------------------
    // Size of a blob the repository links; not_found when it is not linked or
    // its bytes are gone.
    reactor::Task<util::Result<std::uint64_t>> stat_blob(std::string repo, Digest d) noexcept;
    // Opens a linked blob for reading; the caller closes the fd.
    reactor::Task<util::Result<int>> open_blob(std::string repo, Digest d,
                                               std::uint64_t* size) noexcept;
    reactor::Task<util::Result<void>> delete_blob(std::string repo, Digest d) noexcept;
    // Links an existing blob into `repo`: from `from` when given and it links
    // the blob, else from anywhere it is stored (with `readable`, only from
    // a repository it accepts). False when there is nothing to link.
    reactor::Task<util::Result<bool>>
    mount_blob(std::string repo, Digest d, std::optional<std::string> from,
               std::function<bool(std::string_view)> readable = {}) noexcept;

    // A writer that may find a blob already stored and link it (a commit, a
    // mount, a manifest put) holds a use of its digest from that check until
    // the link is in the index. A blob's data is removed only while no use
    // is held and nothing links it; a use taken during a removal waits for
    // it, so a blob revived at that moment is written again, never lost.
    class BlobUse {
      public:
        BlobUse() = default;
        BlobUse(Store* s, std::string key) noexcept : s_(s), key_(std::move(key)) {}
        BlobUse(BlobUse&& o) noexcept : s_(std::exchange(o.s_, nullptr)), key_(std::move(o.key_)) {}
        BlobUse& operator=(BlobUse&&) = delete;
        BlobUse(const BlobUse&) = delete;
        BlobUse& operator=(const BlobUse&) = delete;
        ~BlobUse();

      private:
        Store* s_ = nullptr;
        std::string key_;
    };
    // Waits while the blob is being removed.
    reactor::Task<BlobUse> use_blob(const Digest& d) noexcept;
    // A client told the blob is in the repository (a HEAD) may push a
    // manifest that needs it: when it is linked there, that counts as a use
    // for the garbage collector's grace period, as a link, a mount or a
    // manifest put does.
    reactor::Task<void> note_use(std::string repo, Digest d) noexcept;
    // Garbage collection of blobs nothing references, a batch at a time.
    // Each is removed unless it is in use, referenced again, or was used at
    // or after `used_before` (seconds since the epoch) when the collector
    // takes it: its layer links in `linked_in` first (made durable by one
    // syncfs per batch), then its data. A link that cannot be removed keeps
    // the blob's data.
    struct Collectable {
        Digest d;
        std::vector<std::string> linked_in;
    };
    struct Collected {
        std::size_t blobs = 0, links = 0, kept = 0, errors = 0;
        std::uint64_t bytes = 0;
        std::vector<std::pair<Digest, std::uint64_t>> freed; // each blob removed, its size
    };
    reactor::Task<Collected> collect_blobs(std::vector<Collectable> batch,
                                           std::int64_t used_before) noexcept;
    // The same for a manifest revision no tag points at (delete_untagged):
    // unless in use, tagged again or used at or after `used_before`, deletes
    // it as an API DELETE does, and its entries in every tag's history.
    // True when it was deleted.
    reactor::Task<util::Result<bool>> collect_manifest(std::string repo, Digest d,
                                                       std::int64_t used_before) noexcept;
    // What became of each item of a batch.
    enum class Outcome : std::uint8_t { kept, deleted, failed };
    // A batch of collect_manifest in one repository (retention): one write
    // lock, one trip to the blocking pool and one fsync for the lot. `cut[i]`
    // is `ds[i]`'s used_before.
    reactor::Task<std::vector<Outcome>> collect_manifests(std::string repo, std::vector<Digest> ds,
                                                          std::vector<std::int64_t> cut) noexcept;
    // The last recorded use (seconds since the epoch), if one is remembered.
    std::optional<std::int64_t> last_use(const Digest& d) noexcept;
    // Forgets uses older than `before` (the garbage collector's grace).
    void forget_uses_before(std::int64_t before) noexcept;
    // Records a use of a stored blob or manifest now.
    void record_use(const Digest& d) noexcept;
    // Removes the blob's data when no repository links it (layer link or
    // manifest revision) and no use is held: true when removed.
    reactor::Task<util::Result<bool>> remove_unreferenced_blob(Digest d) noexcept;
    // The stored size of a blob's data.
    reactor::Task<util::Result<std::uint64_t>> blob_size(Digest d) noexcept;

    // Uploads --------------------------------------------------------------
    reactor::Task<util::Result<UploadPtr>> start_upload(std::string repo) noexcept;
    // Marks the session busy; resumes it from disk after a restart.
    reactor::Task<util::Result<UploadPtr>> acquire_upload(std::string repo,
                                                          std::string uuid) noexcept;
    void release_upload(const UploadPtr& u) noexcept;
    reactor::Task<util::Result<void>> append(Upload& u, std::span<const char> bytes) noexcept;
    // Receives a whole body into the upload: pipelined (receive one buffer
    // while the previous is written), hashed, bounded by blob_bytes_max. On
    // an error the bytes before it are in the file and in the hash, except
    // after a write error (then the caller cancels).
    reactor::Task<util::Result<void>> receive(Upload& u, ByteSource& src) noexcept;
    // Verifies the digest (and size when given), commits the blob durably,
    // links it and ends the session. On a digest mismatch the session ends too.
    reactor::Task<util::Result<void>> commit_upload(UploadPtr u, Digest expected,
                                                    std::optional<std::uint64_t> size) noexcept;
    reactor::Task<void> cancel_upload(UploadPtr u) noexcept;
    // Releases the memory, descriptors and hash state of sessions no request
    // has used for `idle_ms` (their data stays on disk: a later request
    // resumes them by re-hashing it). Thread-safe; returns how many went.
    std::size_t release_idle_uploads(std::int64_t idle_ms) noexcept;
    // Sessions holding resources (busy or idle in memory).
    std::size_t upload_count() noexcept;
    bool upload_active(const std::string& uuid) const noexcept;
    // Bytes received so far, without taking the session (GET status).
    reactor::Task<util::Result<std::uint64_t>> upload_offset(std::string repo,
                                                             std::string uuid) noexcept;

    // Straight from the tree --------------------------------------------------
    // Distribution's way, a few reads each, with the checks the index load
    // makes (a link must name the digest its path does; a manifest's bytes
    // must hash to it). For reads answered while the index still loads,
    // when no write can have run yet: the tree is the truth then.
    reactor::Task<util::Result<Digest>> tag_on_disk(std::string repo, std::string tag) noexcept;
    // The bytes of a manifest the repository links (revision link).
    reactor::Task<util::Result<std::string>> manifest_on_disk(std::string repo, Digest d) noexcept;
    // open_blob for a blob the repository links on disk (its _layers link).
    reactor::Task<util::Result<int>> open_blob_on_disk(std::string repo, Digest d,
                                                       std::uint64_t* size) noexcept;

    // When the tag's link was last written or confirmed (touch_tag), in
    // seconds since the epoch: how old a mirror's cached tag is.
    reactor::Task<util::Result<std::int64_t>> tag_confirmed_at(std::string repo,
                                                               std::string tag) noexcept;
    reactor::Task<util::Result<void>> touch_tag(std::string repo, std::string tag) noexcept;

    // Manifests ------------------------------------------------------------
    // Stores the manifest bytes as a blob, links the revision and the tag.
    // With `children_here`, every child of an index must be a manifest of the
    // repository when the write lock is taken (not_found else): a child a
    // collection removed while the put waited is not referenced by it. A
    // mirror stores an index before its children and passes false.
    reactor::Task<util::Result<void>> put_manifest(std::string repo, ManifestPtr m,
                                                   std::optional<std::string> tag,
                                                   bool children_here = false) noexcept;
    // The manifest's bytes (from memory when cached).
    reactor::Task<util::Result<std::shared_ptr<const std::string>>>
    manifest_body(ManifestPtr m) noexcept;
    reactor::Task<util::Result<void>> delete_manifest(std::string repo, Digest d) noexcept;
    reactor::Task<util::Result<void>> delete_tag(std::string repo, std::string tag) noexcept;
    // Deletes each tag that still points at its digest, as delete_tag does,
    // under one write lock with one trip to the blocking pool and one fsync
    // (retention's batches); a tag gone or moved since is kept.
    reactor::Task<std::vector<Outcome>>
    delete_tags(std::string repo, std::vector<std::pair<std::string, Digest>> tags) noexcept;
    // Deletes a whole repository: its tags and manifest revisions, then its
    // layer links (the blobs stay for garbage collection). not_found when it
    // holds nothing. Counts what went.
    struct RepoDeleted {
        std::size_t tags = 0, manifests = 0, links = 0;
    };
    reactor::Task<util::Result<RepoDeleted>> delete_repository(std::string repo) noexcept;
    // `body` charged to the manifest cache budget, or null when it does not
    // fit. The charge is returned when the last copy of the result is gone
    // (a deleted or replaced manifest frees its share of the budget).
    std::shared_ptr<const std::string> cache_body(std::shared_ptr<const std::string> body) noexcept;
    std::size_t cache_bytes_used() const noexcept { return cache_used_->load(); }

  private:
    reactor::Task<util::Result<Digest>> read_link(std::string path) noexcept;
    reactor::Task<util::Result<int>> open_blob_data(const Digest& d, std::uint64_t* size) noexcept;
    struct Pipeline;
    struct Piece;
    reactor::Task<util::Result<bool>> fill(Pipeline& p, char* buf, std::size_t cap,
                                           std::size_t* got) noexcept;
    reactor::Task<util::Result<void>> finish_write(Pipeline& p, Piece& w) noexcept;
    reactor::Task<util::Result<void>> start_write(Pipeline& p, Piece& w, const char* data,
                                                  std::size_t got, std::uint64_t off) noexcept;
    void maybe_writeback(Pipeline& p, std::uint64_t upto) noexcept;
    reactor::Task<util::Result<void>> receive_plain(Upload& u, ByteSource& src) noexcept;
    reactor::Task<util::Result<void>> write_blob_bytes(const Digest& d, std::string bytes) noexcept;
    reactor::Task<util::Result<void>> link_layer(const std::string& repo, const Digest& d,
                                                 std::uint64_t size = Index::unknown_size) noexcept;
    reactor::Task<util::Result<void>> move_into_blobs(Upload& u, const Digest& d) noexcept;
    reactor::Task<util::Result<Digest>> rehash(int fd, Algorithm alg, std::uint64_t size,
                                               Hasher* into) noexcept;
    reactor::Task<void> remove_upload_files(std::string repo, std::string uuid) noexcept;
    reactor::Task<util::Result<UploadPtr>> resume_upload(std::string repo,
                                                         std::string uuid) noexcept;
    void forget_upload(const std::string& uuid) noexcept;
    // Under the repository's write lock, before its first disk write.
    reactor::Task<util::Result<void>> note_write(const std::string& repo) noexcept;
    // Under blob_use_mu_: takes `key` as being removed, unless a use is
    // held, it is being removed already, or a use was recorded at or after
    // `used_before`.
    bool take_for_removal_locked(const std::string& key, std::int64_t used_before);
    void forget_uses_before_locked(std::int64_t before); // under blob_use_mu_
    // Under uploads_mu_: room for one more session, releasing the idlest idle
    // one when the table is full (into `out`, closed outside the lock).
    bool make_room_locked(UploadPtr& out) noexcept;

    Fs fs_;
    StoreConfig cfg_;
    Index& index_;
    WriteJournal* journal_ = nullptr;
    mutable std::mutex uploads_mu_;
    std::unordered_map<std::string, UploadPtr> uploads_;
    // Shared with the charged bodies, which may outlive the store in the index.
    std::shared_ptr<std::atomic<std::size_t>> cache_used_ =
        std::make_shared<std::atomic<std::size_t>>(0);
    std::atomic<bool> direct_writes_{true}; // off once the file system refused O_DIRECT
    std::mutex blob_use_mu_;
    std::unordered_map<std::string, std::uint32_t> blob_uses_; // digest -> uses held
    std::unordered_set<std::string> blob_removing_;            // digests being removed
    std::unordered_map<std::string, std::int64_t> last_use_;   // digest -> epoch seconds
    std::uint64_t uses_recorded_ = 0;
};

} // namespace rp::storage
