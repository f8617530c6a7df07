// SPDX-License-Identifier: Apache-2.0
#include "storage/link_reader.hh"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <cstdlib>
#include <string>
#include <vector>

using rp::storage::LinkReader;

TEST_CASE("the link reader reads many small files with reads in flight, and reports missing ones") {
    char tmpl[] = "/tmp/rp-link-reader-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    int dirfd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(dirfd >= 0);
    constexpr int files = 300; // several times the reader's depth
    for (int i = 0; i < files; ++i) {
        std::string p = std::string(tmpl) + "/f" + std::to_string(i);
        int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        REQUIRE(fd >= 0);
        std::string body = "sha256:" + std::to_string(i);
        REQUIRE(write(fd, body.data(), body.size()) == static_cast<ssize_t>(body.size()));
        close(fd);
    }
    std::vector<std::string> got(files + 1);
    std::vector<int> oks(files + 1, -1);
    {
        LinkReader rd(dirfd, 16);
        REQUIRE(rd.init());
        for (int i = 0; i <= files; ++i) { // the last one does not exist
            rd.read("f" + std::to_string(i), [&got, &oks, i](std::string_view b, bool ok) {
                got[i] = std::string(b);
                oks[i] = ok ? 1 : 0;
            });
        }
        rd.finish();
    }
    for (int i = 0; i < files; ++i) {
        CHECK(oks[i] == 1);
        CHECK(got[i] == "sha256:" + std::to_string(i));
    }
    CHECK(oks[files] == 0);
    close(dirfd);
    CHECK(std::system((std::string("rm -rf ") + tmpl).c_str()) == 0);
}
