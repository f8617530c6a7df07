// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "mirror/realm.hh"

using namespace rp::mirror;

namespace {

// A few rules in the list's own format: plain, wildcard, exception, comments.
const char* const small_list = "// comment\n"
                               "com\n"
                               "io\n"
                               "uk\n"
                               "co.uk\n"
                               "*.ck\n"
                               "!www.ck\n"
                               "github.io   trailing words are ignored\n"
                               "\n";

} // namespace

TEST_CASE("the registrable domain is the public suffix and one label more") {
    PublicSuffixes p = PublicSuffixes::parse(small_list);
    CHECK(p.registrable_domain("auth.docker.io") == "docker.io");
    CHECK(p.registrable_domain("registry-1.docker.io") == "docker.io");
    CHECK(p.registrable_domain("Registry.Example.CO.UK.") == "example.co.uk");
    CHECK(p.registrable_domain("evil.co.uk") == "evil.co.uk");
    CHECK(p.registrable_domain("co.uk").empty()); // a public suffix itself
    CHECK(p.registrable_domain("alice.github.io") == "alice.github.io");
    CHECK(p.registrable_domain("a.b.ck") == "a.b.ck"); // *.ck: b.ck is a suffix
    CHECK(p.registrable_domain("www.ck") == "www.ck"); // the exception
    CHECK(p.registrable_domain("x.www.ck") == "www.ck");
    CHECK(p.registrable_domain("host.unlisted") == "host.unlisted"); // the default rule "*"
    CHECK(p.registrable_domain("localhost").empty());
    CHECK(p.registrable_domain("127.0.0.1").empty());
    CHECK(p.registrable_domain("a..b.com").empty());
    CHECK(p.registrable_domain("").empty());
}

TEST_CASE("credentials go to the upstream's host, its registrable domain, or the allow-list") {
    PublicSuffixes p = PublicSuffixes::parse(small_list);
    const std::vector<std::string> none;
    CHECK(credentials_allowed("https://registry-1.docker.io", "https://auth.docker.io/token", none,
                              &p));
    CHECK_FALSE(credentials_allowed("https://registry.example.co.uk", "https://evil.co.uk/token",
                                    none, &p));
    CHECK_FALSE(
        credentials_allowed("https://alice.github.io", "https://bob.github.io/t", none, &p));
    CHECK_FALSE(
        credentials_allowed("https://registry-1.docker.io", "https://auth.other.io/t", none, &p));
    CHECK(credentials_allowed("https://registry-1.docker.io", "https://AUTH.other.io/t",
                              {"auth.other.io"}, &p));
    // Never downgraded to plain text, even on the same host.
    CHECK_FALSE(credentials_allowed("https://ghcr.io", "http://ghcr.io/token", none, &p));
    // An IP-address upstream: the same address only (the port may differ).
    CHECK(credentials_allowed("http://127.0.0.1:5000", "http://127.0.0.1:5001/token", none, &p));
    CHECK_FALSE(credentials_allowed("http://127.0.0.1:5000", "http://127.0.0.2/token", none, &p));
    CHECK(credentials_allowed("http://[::1]:5000", "http://[::1]/token", none, &p));
    // Without the list: the host itself or the allow-list only.
    CHECK_FALSE(credentials_allowed("https://registry-1.docker.io", "https://auth.docker.io/token",
                                    none, nullptr));
    CHECK(credentials_allowed("https://quay.io", "https://quay.io/v2/auth", none, nullptr));
    // userinfo in a URL is not the host.
    CHECK_FALSE(credentials_allowed("https://quay.io", "https://quay.io@evil.com/t", none, &p));
    CHECK_FALSE(credentials_allowed("https://quay.io", "not a url", none, &p));
}

TEST_CASE("Debian's public suffix list loads and knows the registries' domains") {
    auto p = PublicSuffixes::load(public_suffix_list_path);
    REQUIRE_MESSAGE(p, "install Debian's publicsuffix package (tools/setup.sh does)");
    CHECK(p->size() > 5000);
    CHECK(p->registrable_domain("auth.docker.io") == "docker.io");
    CHECK(p->registrable_domain("registry.k8s.io") == "k8s.io");
    CHECK(p->registrable_domain("foo.s3.amazonaws.com") != "amazonaws.com");
    CHECK(p->registrable_domain("registry.example.co.uk") == "example.co.uk");
}
