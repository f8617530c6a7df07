// SPDX-License-Identifier: Apache-2.0
// ringport-genroot: writes a registry root in CNCF Distribution's filesystem
// layout (DESIGN.md §3) straight to disk, for startup and scale benchmarks.
//
//   ringport-genroot --root DIR --repos N --tags-per-repo M
//                    [--manifests-per-repo K] [--threads T] [--prefix P]
//                    [--shared-blobs B] [--layer-size BYTES]
//
// Under DIR/docker/registry/v2/ it writes:
//   - B small config blobs and B layer blobs, shared by all repositories;
//   - per repository K distinct OCI image manifests (each names its repository
//     and index in an annotation, so every manifest digest is unique), stored
//     as blobs/sha256/<xx>/<hex>/data with their real sha256;
//   - per repository the _layers links of the blobs its manifests use, the
//     _manifests/revisions links, and M tags "tag-<i>" pointing at manifest
//     i % K (index/sha256/<hex>/link first, then current/link).
// Link files hold the bare digest without a newline. Repositories are named
// P + zero-padded number (default "repo-00000"); a '/' in P nests them.
//
// Work is split by repository over T threads (default 4 per core: the time
// goes to mkdir/openat in the filesystem, not to the CPU). Nothing is fsynced:
// run `sync` before dropping caches. Existing directories are reused and files
// rewritten, so a second run over the same root is harmless.
#include <openssl/evp.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

struct Options {
    std::string root;
    long repos = -1;
    long tags_per_repo = -1;
    long manifests_per_repo = 1;
    long threads = 0;
    std::string prefix = "repo-";
    long shared_blobs = 16;
    long layer_size = 4096;
};

struct Blob {
    std::string bytes;
    std::string hex; // sha256, lower-case
    std::string digest() const { return "sha256:" + hex; }
};

[[noreturn]] void die(const std::string& msg) {
    std::fprintf(stderr, "ringport-genroot: %s\n", msg.c_str());
    std::exit(1);
}

[[noreturn]] void die_errno(const std::string& what) { die(what + ": " + std::strerror(errno)); }

std::string sha256_hex(std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) {
        die("EVP_Digest failed");
    }
    static const char* xd = "0123456789abcdef";
    std::string out(len * 2, '0');
    for (unsigned i = 0; i < len; ++i) {
        out[2 * i] = xd[md[i] >> 4];
        out[2 * i + 1] = xd[md[i] & 15];
    }
    return out;
}

Blob make_blob(std::string bytes) {
    Blob b;
    b.hex = sha256_hex(bytes);
    b.bytes = std::move(bytes);
    return b;
}

// mkdirat that accepts an existing directory.
void mkdir_at(int dfd, const char* path) {
    if (mkdirat(dfd, path, 0755) != 0 && errno != EEXIST) {
        die_errno(std::string("mkdir ") + path);
    }
}

// mkdir -p of a path relative to dfd (or absolute).
void mkdirs_at(int dfd, const std::string& path) {
    for (size_t i = 1; i <= path.size(); ++i) {
        if (i == path.size() || path[i] == '/') {
            std::string part = path.substr(0, i);
            mkdir_at(dfd, part.c_str());
        }
    }
}

int open_dir(int dfd, const char* path) {
    int fd = openat(dfd, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        die_errno(std::string("open ") + path);
    }
    return fd;
}

void write_file_at(int dfd, const char* path, std::string_view data) {
    int fd = openat(dfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        die_errno(std::string("create ") + path);
    }
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = write(fd, data.data() + off, data.size() - off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die_errno(std::string("write ") + path);
        }
        off += static_cast<size_t>(n);
    }
    if (close(fd) != 0) {
        die_errno(std::string("close ") + path);
    }
}

// blobs/sha256/<xx>/<hex>/data; the <xx> directories exist already.
void write_blob(int blobs_fd, const Blob& b) {
    std::string dir = b.hex.substr(0, 2) + "/" + b.hex;
    mkdir_at(blobs_fd, dir.c_str());
    write_file_at(blobs_fd, (dir + "/data").c_str(), b.bytes);
}

// <dfd>/sha256/<hex>/link holding the digest; <dfd>/sha256 exists.
void write_link(int dfd, const Blob& b) {
    std::string dir = "sha256/" + b.hex;
    mkdir_at(dfd, dir.c_str());
    write_file_at(dfd, (dir + "/link").c_str(), b.digest());
}

std::string json_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
        }
        out += c;
    }
    return out;
}

std::string descriptor(const char* media_type, const Blob& b) {
    return std::string("{\"mediaType\":\"") + media_type + "\",\"digest\":\"" + b.digest() +
           "\",\"size\":" + std::to_string(b.bytes.size()) + "}";
}

constexpr const char* kManifestType = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kConfigType = "application/vnd.oci.image.config.v1+json";
constexpr const char* kLayerType = "application/vnd.oci.image.layer.v1.tar";

struct Shared {
    const Options* opt = nullptr;
    std::vector<Blob> configs;
    std::vector<Blob> layers;
    int repos_fd = -1;
    int blobs_fd = -1;
    std::atomic<long> next{0};
    std::atomic<long> files{0};
};

std::string repo_name(const Options& opt, long r) {
    char num[32];
    std::snprintf(num, sizeof num, "%05ld", r);
    return opt.prefix + num;
}

void gen_repo(Shared& sh, long r) {
    const Options& opt = *sh.opt;
    const std::string name = repo_name(opt, r);
    const long p = static_cast<long>(sh.configs.size());
    long files = 0;

    mkdirs_at(sh.repos_fd, name);
    int repo = open_dir(sh.repos_fd, name.c_str());
    mkdir_at(repo, "_layers");
    mkdir_at(repo, "_layers/sha256");
    mkdir_at(repo, "_manifests");
    mkdir_at(repo, "_manifests/revisions");
    mkdir_at(repo, "_manifests/revisions/sha256");
    mkdir_at(repo, "_manifests/tags");
    int layers_fd = open_dir(repo, "_layers");
    int revs_fd = open_dir(repo, "_manifests/revisions");
    int tags_fd = open_dir(repo, "_manifests/tags");

    // Manifest k uses config (r+k)%p and layers (r+k)%p, (r+k+1)%p.
    std::vector<Blob> manifests;
    manifests.reserve(static_cast<size_t>(opt.manifests_per_repo));
    std::vector<bool> cfg_used(static_cast<size_t>(p)), layer_used(static_cast<size_t>(p));
    for (long k = 0; k < opt.manifests_per_repo; ++k) {
        size_t c = static_cast<size_t>((r + k) % p);
        size_t l1 = c, l2 = static_cast<size_t>((r + k + 1) % p);
        cfg_used[c] = true;
        layer_used[l1] = true;
        layer_used[l2] = true;
        std::string m = std::string("{\"schemaVersion\":2,\"mediaType\":\"") + kManifestType +
                        "\",\"config\":" + descriptor(kConfigType, sh.configs[c]) +
                        ",\"layers\":[" + descriptor(kLayerType, sh.layers[l1]);
        if (l2 != l1) {
            m += "," + descriptor(kLayerType, sh.layers[l2]);
        }
        m += "],\"annotations\":{\"org.ringport.genroot.repository\":\"" + json_escape(name) +
             "\",\"org.ringport.genroot.index\":\"" + std::to_string(k) + "\"}}";
        manifests.push_back(make_blob(std::move(m)));
    }
    for (size_t i = 0; i < static_cast<size_t>(p); ++i) {
        if (cfg_used[i]) {
            write_link(layers_fd, sh.configs[i]);
            ++files;
        }
        if (layer_used[i]) {
            write_link(layers_fd, sh.layers[i]);
            ++files;
        }
    }
    for (const Blob& m : manifests) {
        write_blob(sh.blobs_fd, m);
        write_link(revs_fd, m);
        files += 2;
    }
    for (long t = 0; t < opt.tags_per_repo; ++t) {
        const Blob& m = manifests[static_cast<size_t>(t % opt.manifests_per_repo)];
        std::string tag = "tag-" + std::to_string(t);
        mkdir_at(tags_fd, tag.c_str());
        int tfd = open_dir(tags_fd, tag.c_str());
        mkdir_at(tfd, "index");
        mkdir_at(tfd, "index/sha256");
        int idx = open_dir(tfd, "index");
        write_link(idx, m); // index entry first, then current (Distribution's order)
        close(idx);
        mkdir_at(tfd, "current");
        write_file_at(tfd, "current/link", m.digest());
        close(tfd);
        files += 2;
    }
    close(tags_fd);
    close(revs_fd);
    close(layers_fd);
    close(repo);
    sh.files.fetch_add(files, std::memory_order_relaxed);
}

void worker(Shared& sh) {
    for (;;) {
        long r = sh.next.fetch_add(1, std::memory_order_relaxed);
        if (r >= sh.opt->repos) {
            return;
        }
        gen_repo(sh, r);
    }
}

[[noreturn]] void usage(int code) {
    std::fprintf(code == 0 ? stdout : stderr,
                 "usage: ringport-genroot --root DIR --repos N --tags-per-repo M\n"
                 "         [--manifests-per-repo K (1)] [--threads T (4 per core)]\n"
                 "         [--prefix P (repo-)] [--shared-blobs B (16)] [--layer-size BYTES "
                 "(4096)]\n"
                 "Writes a registry root in Distribution's filesystem layout.\n");
    std::exit(code);
}

long parse_num(const char* flag, const char* v, long min) {
    char* end = nullptr;
    errno = 0;
    long n = std::strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < min) {
        die(std::string("bad value for ") + flag + ": " + v);
    }
    return n;
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "-h" || a == "--help") {
            usage(0);
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "ringport-genroot: %s needs a value\n", argv[i]);
            usage(2);
        }
        const char* v = argv[++i];
        if (a == "--root") {
            o.root = v;
        } else if (a == "--repos") {
            o.repos = parse_num(argv[i - 1], v, 0);
        } else if (a == "--tags-per-repo") {
            o.tags_per_repo = parse_num(argv[i - 1], v, 0);
        } else if (a == "--manifests-per-repo") {
            o.manifests_per_repo = parse_num(argv[i - 1], v, 1);
        } else if (a == "--threads") {
            o.threads = parse_num(argv[i - 1], v, 1);
        } else if (a == "--prefix") {
            o.prefix = v;
        } else if (a == "--shared-blobs") {
            o.shared_blobs = parse_num(argv[i - 1], v, 1);
        } else if (a == "--layer-size") {
            o.layer_size = parse_num(argv[i - 1], v, 1);
        } else {
            std::fprintf(stderr, "ringport-genroot: unknown option %s\n", argv[i - 1]);
            usage(2);
        }
    }
    if (o.root.empty() || o.repos < 0 || o.tags_per_repo < 0) {
        std::fprintf(stderr,
                     "ringport-genroot: --root, --repos and --tags-per-repo are required\n");
        usage(2);
    }
    if (o.prefix.empty() || o.prefix.front() == '/' || o.prefix.find("//") != std::string::npos ||
        o.prefix.find('_') == 0) {
        die("bad --prefix: " + o.prefix);
    }
    if (o.threads == 0) {
        unsigned hc = std::thread::hardware_concurrency();
        o.threads = 4L * (hc == 0 ? 1 : hc);
    }
    return o;
}

// Deterministic pseudo-random bytes (xorshift), so runs give the same digests.
std::string noise(size_t n, unsigned long seed) {
    std::string s(n, '\0');
    unsigned long x = seed * 0x9E3779B97F4A7C15UL + 1;
    for (size_t i = 0; i < n; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s[i] = static_cast<char>(x & 0xff);
    }
    return s;
}

} // namespace

int main(int argc, char** argv) {
    Options opt = parse(argc, argv);
    auto t0 = std::chrono::steady_clock::now();

    Shared sh;
    sh.opt = &opt;
    for (long i = 0; i < opt.shared_blobs; ++i) {
        Blob layer =
            make_blob(noise(static_cast<size_t>(opt.layer_size), static_cast<unsigned long>(i)));
        std::string cfg =
            "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"GENROOT=" +
            std::to_string(i) + "\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" +
            layer.digest() + "\"]}}";
        sh.configs.push_back(make_blob(std::move(cfg)));
        sh.layers.push_back(std::move(layer));
    }

    mkdirs_at(AT_FDCWD, opt.root + "/docker/registry/v2/blobs/sha256");
    mkdirs_at(AT_FDCWD, opt.root + "/docker/registry/v2/repositories");
    sh.blobs_fd = open_dir(AT_FDCWD, (opt.root + "/docker/registry/v2/blobs/sha256").c_str());
    sh.repos_fd = open_dir(AT_FDCWD, (opt.root + "/docker/registry/v2/repositories").c_str());
    for (int i = 0; i < 256; ++i) {
        char xx[3];
        std::snprintf(xx, sizeof xx, "%02x", i);
        mkdir_at(sh.blobs_fd, xx);
    }
    for (size_t i = 0; i < sh.configs.size(); ++i) {
        write_blob(sh.blobs_fd, sh.configs[i]);
        write_blob(sh.blobs_fd, sh.layers[i]);
    }

    std::vector<std::thread> pool;
    for (long t = 0; t < opt.threads; ++t) {
        pool.emplace_back([&sh] { worker(sh); });
    }
    for (auto& t : pool) {
        t.join();
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("ringport-genroot: %ld repositories, %ld tags, %ld manifests, %zu shared blobs, "
                "%ld files in %.2f s (%ld threads)\n",
                opt.repos, opt.repos * opt.tags_per_repo, opt.repos * opt.manifests_per_repo,
                2 * sh.configs.size(), sh.files.load() + 2 * static_cast<long>(sh.configs.size()),
                secs, opt.threads);
    return 0;
}
