// SPDX-License-Identifier: Apache-2.0
#include "storage/journal.hh"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "util/unique_fd.hh"

using namespace rp::storage;

namespace {

// A temporary root directory, removed with what it holds.
struct Root {
    std::string path;
    rp::util::UniqueFd fd;
    Root() {
        char tmpl[] = "/tmp/rp-journal-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
        fd = rp::util::UniqueFd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        REQUIRE(fd.valid());
    }
    ~Root() { (void)std::system(("rm -rf '" + path + "'").c_str()); }
    void write(const std::string& name, const std::string& bytes) const {
        std::ofstream(path + "/" + name, std::ios::binary) << bytes;
    }
    bool exists(const std::string& name) const {
        return ::access((path + "/" + name).c_str(), F_OK) == 0;
    }
};

std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

} // namespace

TEST_CASE("the journal's names are those of both files; torn and zeroed records are skipped") {
    Root r;
    // A record whose fsync never finished may be cut anywhere; one reserved
    // by a writer that never wrote reads as zeros.
    r.write(".ringport.dirty", std::string("a/b\nlib/app\n") + std::string(6, '\0') + "\nx/Up");
    r.write(".ringport.dirty.new", "new/one\n");
    auto names = WriteJournal::read_names(r.fd.get());
    REQUIRE(names);
    CHECK(sorted(*names) == std::vector<std::string>{"a/b", "lib/app", "new/one"});
}

TEST_CASE("opening folds an unfinished save's journal into the main one") {
    Root r;
    r.write(".ringport.dirty", "a\n");
    r.write(".ringport.dirty.new", "b\n");
    auto j = WriteJournal::open(r.fd.get());
    REQUIRE(j);
    CHECK_FALSE(r.exists(".ringport.dirty.new"));
    auto names = WriteJournal::read_names(r.fd.get());
    REQUIRE(names);
    CHECK(sorted(*names) == std::vector<std::string>{"a", "b"});
    CHECK((*j)->recorded() == 2);
}

TEST_CASE("a save starts a new journal and replaces the old one only when it commits") {
    Root r;
    r.write(".ringport.dirty", "old\n");
    auto j = WriteJournal::open(r.fd.get());
    REQUIRE(j);
    REQUIRE((*j)->begin_save());
    CHECK((*j)->recorded() == 0);
    REQUIRE((*j)->add_blocking({"caught/mid-write", "caught/mid-write"}));
    CHECK((*j)->recorded() == 1);
    // A crash here: the old snapshot is still the one on disk, and the union
    // of both journals covers it.
    auto mid = WriteJournal::read_names(r.fd.get());
    REQUIRE(mid);
    CHECK(sorted(*mid) == std::vector<std::string>{"caught/mid-write", "old"});
    REQUIRE((*j)->commit_save());
    CHECK_FALSE(r.exists(".ringport.dirty.new"));
    auto after = WriteJournal::read_names(r.fd.get());
    REQUIRE(after);
    CHECK(*after == std::vector<std::string>{"caught/mid-write"});
}

TEST_CASE("a failed save removes the snapshot it could no longer vouch for") {
    Root r;
    r.write(".ringport.index", "snapshot bytes");
    auto j = WriteJournal::open(r.fd.get());
    REQUIRE(j);
    REQUIRE((*j)->begin_save());
    (*j)->abort_save();
    CHECK_FALSE(r.exists(".ringport.index"));
    REQUIRE(WriteJournal::remove(r.fd.get()));
    CHECK_FALSE(r.exists(".ringport.dirty"));
    CHECK_FALSE(r.exists(".ringport.dirty.new"));
}
