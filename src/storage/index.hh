// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "reactor/sync.hh"
#include "storage/digest.hh"
#include "storage/names.hh"

namespace rp::storage {

// What the index knows about one manifest, learned once from its bytes.
// Immutable once built; shared between repositories that hold the same digest.
struct ManifestInfo {
    Digest digest;
    std::string media_type;
    std::string artifact_type; // for referrers: artifactType, else the config's mediaType
    std::uint64_t size = 0;
    std::optional<Digest> subject;
    std::vector<Digest> blobs;    // config and layers (image manifests)
    std::vector<Digest> children; // manifests of an index
    std::string annotations_json; // the raw "annotations" object, or empty
    std::shared_ptr<const std::string> body;
};
using ManifestPtr = std::shared_ptr<const ManifestInfo>;

// Digests are interned: the index's maps hold 4-byte ids, which keeps a tag
// at well under 200 bytes (issue: 1,000,000 tags). Every place that stores an
// id holds one reference to it; the last release frees the digest and its id
// is reused, so the table is as large as what is stored, never as what was asked.
using DigestId = std::uint32_t;

// One repository's state. Writers of a repository hold a RepoLease and its
// `write_mu` across the disk writes and the index update, so the order on
// disk and in memory agree.
struct RepoState {
    std::map<std::string, DigestId> tags; // sorted: the tags list is served from here
    std::unordered_map<DigestId, ManifestPtr> manifests;
    std::unordered_set<DigestId> layers;
    std::unordered_map<DigestId, std::set<DigestId>> referrers; // subject -> referrers
    reactor::AsyncMutex write_mu;
    // Changes with every change, under the index's unique lock; never repeats
    // within a process, also across a repository freed and made again.
    std::uint64_t gen = 0;
    // What it stores (insights), kept current by every change under the
    // unique lock: the bytes of the distinct blobs it holds (as a layer link
    // or a manifest), those of them no other repository holds, and how many
    // it holds whose size is not known yet (they count 0 until learned).
    std::uint64_t bytes = 0;
    std::uint64_t unique_bytes = 0;
    std::uint32_t unsized = 0;

    bool listed() const noexcept { return !layers.empty() || !manifests.empty() || !tags.empty(); }
};

class Index;

// A writer's hold on one repository's state: it stays alive (with its
// write_mu) while held, and when the last hold goes and the repository holds
// nothing, the index frees it. Only writers take one; lookups never create.
class RepoLease {
  public:
    RepoLease(Index& index, std::string name, std::shared_ptr<RepoState> state) noexcept
        : index_(&index), name_(std::move(name)), state_(std::move(state)) {}
    RepoLease(RepoLease&& o) noexcept = default;
    RepoLease& operator=(RepoLease&&) = delete;
    RepoLease(const RepoLease&) = delete;
    RepoLease& operator=(const RepoLease&) = delete;
    ~RepoLease();
    RepoState& operator*() const noexcept { return *state_; }
    RepoState* operator->() const noexcept { return state_.get(); }

  private:
    Index* index_;
    std::string name_;
    std::shared_ptr<RepoState> state_;
};

// The in-memory index of repositories, tags, manifests, blob links and
// referrers, shared by all shards. Readers take the shared lock briefly and
// copy out what they need; nothing holds the lock across I/O.
class Index {
  public:
    bool repo_exists(std::string_view repo) const;
    std::optional<Digest> resolve_tag(std::string_view repo, std::string_view tag) const;
    ManifestPtr manifest(std::string_view repo, const Digest& d) const;
    bool has_layer(std::string_view repo, const Digest& d) const;
    // Any repository that links this blob (for mounts without `from`).
    bool any_repo_has_layer(const Digest& d) const;
    // The same, among repositories `accept` says yes to (a walk over them).
    bool any_repo_has_layer_where(const Digest& d,
                                  const std::function<bool(std::string_view)>& accept) const;
    // Whether some repository holds a manifest that references the blob
    // (config or layer), or holds it as a manifest itself: what garbage
    // collection keeps, kept current by every write (no mark pass needed
    // to decide one digest).
    bool blob_referenced(const Digest& d) const;
    // Every layer link (repository, digest) whose blob nothing references.
    std::vector<std::pair<std::string, Digest>> unreferenced_layer_links() const;
    // Sorted tags after `last`, at most `n` (0 = all); `more` when cut short.
    std::optional<std::vector<std::string>> tags(std::string_view repo, std::string_view last,
                                                 std::size_t n, bool* more) const;
    std::vector<std::string> tags_pointing_to(std::string_view repo, const Digest& d) const;
    std::vector<std::string> catalog(std::string_view last, std::size_t n, bool* more) const;
    std::vector<ManifestPtr> referrers(std::string_view repo, const Digest& subject) const;
    // A writer's lease on the repository's state, created if absent (not
    // listed until it holds something; freed when the last lease goes and it
    // still holds nothing).
    RepoLease lease(std::string_view name);

    static constexpr std::uint64_t unknown_size = UINT64_MAX;
    // `size` is the blob's, when the caller knows it (a commit, a mount).
    void add_layer(std::string_view repo, const Digest& d, std::uint64_t size = unknown_size);
    void remove_layer(std::string_view repo, const Digest& d);
    // Stores `m` in the repository. One ManifestInfo per digest is shared by
    // every repository that holds it (10,000 repositories with one image
    // keep one copy); `m` replaces the shared one only if it brings a body
    // the shared one lacks.
    void put_manifest(std::string_view repo, ManifestPtr m);
    // The ManifestInfo some repository already holds for `d`, if any.
    ManifestPtr shared_manifest(const Digest& d) const;
    void set_tag(std::string_view repo, std::string_view tag, const Digest& d);
    void remove_tag(std::string_view repo, std::string_view tag);
    void remove_manifest(std::string_view repo, const Digest& d);

    // Startup: one repository's content at once, under one lock.
    struct RepoLoad {
        std::vector<Digest> layers;
        std::vector<ManifestPtr> manifests;
        std::vector<std::pair<std::string, Digest>> tags;
    };
    void load_repo(std::string_view repo, RepoLoad load);

    // One repository's content as digests, and its change generation (for
    // the snapshot and for the verification that follows a snapshot load).
    struct RepoContent {
        std::vector<Digest> layers;
        std::vector<Digest> manifests;
        std::vector<std::pair<std::string, Digest>> tags; // sorted by tag
        std::uint64_t gen = 0;
    };
    // Listed repositories in catalog order; with `all`, also those holding nothing.
    std::vector<std::string> repo_names(bool all = false) const;
    std::optional<std::uint64_t> generation(std::string_view repo) const;
    // With `writing`: whether a writer held the repository's write lock when
    // it was read (its content may then be mid-change).
    std::optional<RepoContent> content(std::string_view repo, bool* writing = nullptr) const;
    // Whether the repository holds exactly what `load` holds.
    bool same_content(std::string_view repo, const RepoLoad& load) const;
    // Replaces the repository's content with `load` unless something changed
    // it since its generation was `gen` (then false: the live state stands).
    bool replace_repo(std::string_view repo, std::uint64_t gen, RepoLoad load);

    struct Counts {
        std::size_t repos = 0, tags = 0, manifests = 0, layers = 0;
    };
    Counts counts() const;

    // ---- insights: what each repository stores -------------------------
    // Blob sizes the index holds no size for (learned from the tree at
    // startup, in the background), at most `n`.
    std::vector<Digest> unsized(std::size_t n) const;
    // Sizes learned (a digest the index no longer holds is skipped).
    void learn_sizes(const std::vector<std::pair<Digest, std::uint64_t>>& sizes);
    struct RepoSummary {
        std::string name;
        std::uint64_t bytes = 0, unique_bytes = 0;
        std::uint32_t tags = 0, manifests = 0, layers = 0, unsized = 0;
    };
    std::optional<RepoSummary> summary(std::string_view repo) const;
    // One page of the listed repositories `accept` says yes to, ordered by
    // `key` (ties, and a null `key`, by name), `desc` reversing it; `total`
    // is how many were accepted. Only the page's rows are copied: a list of
    // 100,000 repositories costs a walk, not 100,000 copies. `accept` and
    // `key` run under the index's shared lock (they may take locks of
    // their own that never wait for the index).
    std::vector<RepoSummary> select(const std::function<bool(std::string_view)>& accept,
                                    const std::function<std::uint64_t(const RepoSummary&)>& key,
                                    bool desc, std::size_t offset, std::size_t limit,
                                    std::size_t* total) const;
    struct Totals {
        std::uint64_t bytes = 0;         // distinct blobs held by any repository
        std::uint64_t logical_bytes = 0; // the sum of every repository's bytes
        std::uint64_t blobs = 0;         // distinct blobs held
        std::uint64_t unsized = 0;       // of those, how many have no size yet
    };
    Totals totals() const;
    // What deleting would free once GC runs: the bytes of the blobs and
    // manifests nothing would reference any more. `manifests` are the
    // repository's manifests that go (with the children and referrers that
    // go with them when no other kept manifest of the repository needs
    // them); `whole` drops the repository's layer links too.
    struct Frees {
        std::uint64_t bytes = 0, blobs = 0, manifests = 0;
        bool exact = true; // false while some size is still unknown
    };
    Frees frees(std::string_view repo, const std::vector<Digest>& manifests, bool whole) const;
    // Size of a stored blob, if known.
    std::optional<std::uint64_t> size_of(const Digest& d) const;

    // Whether every tag's target is known to match its current/link on disk.
    // False from a snapshot load until the verification after it ends: a
    // tag another tool rewrote in place while ringport was stopped changes
    // no directory the snapshot's stamps cover, so until then a tag is
    // resolved from its link file (Store::tag_on_disk). True otherwise (an
    // index read from the tree, or ringport's own writes, which update disk
    // and index together).
    bool tags_verified() const noexcept { return tags_verified_.load(std::memory_order_acquire); }
    void set_tags_verified(bool v) noexcept { tags_verified_.store(v, std::memory_order_release); }

    // What the index holds in memory, listed or not (for the bounds tests
    // and the abuse benchmark): repository states and interned digests.
    struct Footprint {
        std::size_t repo_states = 0, digests = 0, digest_slots = 0;
    };
    Footprint footprint() const;

  private:
    friend class RepoLease;
    using RepoMap = std::map<std::string, std::shared_ptr<RepoState>, RepoNameLess>;
    const RepoState* find(std::string_view repo) const;
    RepoState* find(std::string_view repo);
    // Under the unique lock: the repository's state, made if absent.
    RepoState& slot(std::string_view repo);
    // Under the unique lock: frees the repository's state when it holds
    // nothing and no lease holds it.
    void prune(std::string_view repo);
    void release(const std::string& name, std::shared_ptr<RepoState> state) noexcept;
    std::optional<DigestId> id_of(const Digest& d) const; // under either lock
    // Under the unique lock: one more reference to `d`'s id (interned if new).
    DigestId ref(const Digest& d);
    void ref(DigestId id) { ++refs_[id]; }
    // Under the unique lock: one reference fewer; the last frees the id.
    void unref(DigestId id);
    const Digest& digest_of_id(DigestId id) const { return digests_[id]; }
    void set_layer(RepoState& r, DigestId id); // unique lock; takes a ref
    // Under the unique lock: `r` starts or stops holding `id` (as a layer
    // link or a manifest, counted once); keeps the byte counts current.
    void hold(RepoState& r, DigestId id);
    void unhold(RepoState& r, DigestId id);
    // Unique lock. The first size wins (a 0 gives way to a real one). A blob
    // several repositories hold recounts them, or with `defer_recount` returns
    // true for the caller to recount every repository once.
    bool set_size(DigestId id, std::uint64_t size, bool defer_recount = false);
    void recount(RepoState& r) const; // unique lock: r's bytes from scratch
    void set_manifest(RepoState& r, DigestId id, ManifestPtr m);         // unique lock; takes a ref
    void set_referrer(RepoState& r, const Digest& subject, DigestId id); // unique lock

    mutable std::shared_mutex mu_;
    std::atomic<bool> tags_verified_{true};
    RepoMap repos_;
    std::uint64_t next_gen_ = 0;
    std::deque<Digest> digests_;      // id -> digest; a deque keeps elements in place
    std::vector<std::uint32_t> refs_; // id -> references; 0: free, on free_ids_
    // id -> blob size (unknown_size until learned), how many repositories
    // hold it, and the xor of their RepoState addresses: with one holder
    // that is the holder, which a change of sharing updates in O(1).
    std::vector<std::uint64_t> sizes_;
    std::vector<std::uint32_t> holders_;
    std::vector<std::uintptr_t> holder_xor_;
    std::uint64_t total_bytes_ = 0, logical_bytes_ = 0, held_ = 0, unsized_ = 0;
    std::vector<DigestId> free_ids_;
    std::unordered_map<std::string_view, DigestId, DigestHash> ids_; // views into digests_
    std::unordered_map<DigestId, std::uint32_t> layer_refs_;         // repositories linking it
    struct SharedManifest {
        ManifestPtr m;
        std::uint32_t repos = 0;
    };
    std::unordered_map<DigestId, SharedManifest> manifest_refs_; // repositories holding it
    // Blob -> held manifests (each counted once, however many repositories
    // hold it) that list it as config or layer; each entry holds an id reference.
    std::unordered_map<DigestId, std::uint32_t> blob_refs_;
    // Under the unique lock: `m`, or the equal one already shared; counts r.
    ManifestPtr share(RepoState& r, DigestId id, ManifestPtr m);
    void unref_layer(DigestId id);          // a repository stopped linking it (unique lock)
    void unref_manifest(DigestId id);       // a repository stopped holding it (unique lock)
    void fill(RepoState& r, RepoLoad load); // under the unique lock
    void clear(RepoState& r);               // under the unique lock
};

} // namespace rp::storage
