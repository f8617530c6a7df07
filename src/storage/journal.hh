// SPDX-License-Identifier: Apache-2.0
#pragma once

// The write journal: the names of the repositories written since the index
// snapshot on disk was saved, so that a start after a crash trusts the
// snapshot and reads again exactly those (plus what the directory stamps
// show another writer changed while ringport was stopped).
//
// Files in <root>, beside the snapshot:
//   .ringport.dirty      one repository name per line
//   .ringport.dirty.new  the journal of a save under way
//
// The rule: a writer records its repository, durably, before its first disk
// write to it after each save; from then on it is free (a set in memory).
// A save (helper thread) 1. starts .ringport.dirty.new, and writers record
// there from then on, 2. stamps the tree and reads the index, each
// repository's directories before its content, into the snapshot's temp
// file as it goes; a repository whose writer holds its write lock at that
// moment is recorded in the new journal by the save itself, 3. makes the
// snapshot durable and renames it into place, 4. renames the new journal
// over the old one. A crash at any step leaves a
// snapshot that the union of the two journals covers; a start reads both.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "reactor/task.hh"
#include "util/result.hh"
#include "util/unique_fd.hh"

namespace rp::storage {

constexpr std::string_view journal_file = ".ringport.dirty";
constexpr std::string_view journal_new_file = ".ringport.dirty.new";

class WriteJournal {
  public:
    // Startup, blocking: the names both journal files hold (empty when none).
    static util::Result<std::vector<std::string>> read_names(int rootfd);
    // Startup, blocking: folds a save's unfinished journal into the main one
    // and opens it for appending (created empty if absent).
    static util::Result<std::unique_ptr<WriteJournal>> open(int rootfd);
    // Startup, blocking: removes both files (snapshots off).
    static util::Result<void> remove(int rootfd);

    // Any shard, under the repository's write lock, before its first disk
    // write: records `repo` unless already recorded since the last save. When
    // the journal cannot be written, the snapshot is removed instead (then
    // nothing needs recording until the next save); an error only when
    // neither can be done.
    reactor::Task<util::Result<void>> record(std::string repo) noexcept;
    // The same for many repositories at once, with one write and one fsync
    // (a garbage collection's batch, under every one's write lock).
    reactor::Task<util::Result<void>> record_all(std::vector<std::string> repos) noexcept;
    // Names recorded since the last save began (the save's "anything new?").
    std::size_t recorded() const noexcept;
    // The names recorded so far, both files' (at startup, right after open:
    // the repositories the snapshot on disk does not cover).
    std::vector<std::string> recorded_names() const;

    // The save protocol (helper thread, blocking; one save at a time).
    util::Result<void> begin_save();
    util::Result<void> add_blocking(const std::vector<std::string>& repos);
    util::Result<void> commit_save();
    // A save failed after begin_save: the snapshot on disk is removed, since
    // the journal that covered it is no longer the one written.
    void abort_save() noexcept;

  private:
    struct File {
        util::UniqueFd fd;
        std::uint64_t size = 0;                // bytes reserved so far (under mu_)
        std::unordered_set<std::string> names; // recorded here (under mu_)
    };
    explicit WriteJournal(int rootfd) noexcept : rootfd_(rootfd) {}
    util::Result<void> invalidate_snapshot() noexcept; // blocking

    int rootfd_;
    mutable std::mutex mu_;
    std::shared_ptr<File> cur_;
    bool snapshot_valid_ = true; // false: no snapshot to protect until the next save
};

} // namespace rp::storage
