// SPDX-License-Identifier: Apache-2.0
#include "storage/digest.hh"

#include <doctest/doctest.h>

#include <string>

using namespace rp::storage;
using rp::util::Errc;

TEST_CASE("sha256 and sha512 digests parse; others are refused with a reason") {
    std::string h64(64, 'a'), h128(128, '0');
    CHECK(Digest::parse("sha256:" + h64));
    CHECK(Digest::parse("sha512:" + h128));
    CHECK(Digest::parse("sha256:" + h64)->hex() == h64);
    CHECK(Digest::parse("md5:abcd").error().kind == Errc::unsupported);
    CHECK(Digest::parse("sha256:" + std::string(63, 'a')).error().kind == Errc::invalid);
    CHECK(Digest::parse("sha256:" + std::string(64, 'A')).error().kind == Errc::invalid);
    CHECK(Digest::parse("sha256").error().kind == Errc::invalid);
    CHECK(Digest::parse(":abc").error().kind == Errc::invalid);
    CHECK(Digest::parse("sha256:../../etc").error().kind == Errc::invalid);
    CHECK(Digest::parse("").error().kind == Errc::invalid);
}

TEST_CASE("hashing gives the well-known digests") {
    CHECK(digest_of(Algorithm::sha256, "").str() ==
          "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    Hasher h;
    h.update("ab", 2);
    Digest mid = h.peek();
    h.update("c", 1);
    CHECK(mid == digest_of(Algorithm::sha256, "ab"));
    CHECK(h.peek().str() ==
          "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(digest_of(Algorithm::sha512, "abc").hex().substr(0, 16) == "ddaf35a193617aba");
}
