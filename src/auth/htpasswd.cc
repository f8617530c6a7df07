// SPDX-License-Identifier: Apache-2.0
#include "auth/htpasswd.hh"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "auth/bcrypt.hh"
#include "util/log.hh"
#include "util/files.hh"
#include "util/strings.hh"

namespace rp::auth {

using util::Errc;
using util::Error;
using util::Result;

namespace {

// What a hash that is not bcrypt looks like, for the error message.
std::string scheme_of(std::string_view h) {
    if (h.rfind("$apr1$", 0) == 0) {
        return "Apache MD5 ($apr1$)";
    }
    if (h.rfind("{SHA}", 0) == 0) {
        return "SHA-1 ({SHA})";
    }
    if (h.rfind("$2x$", 0) == 0) {
        return "bcrypt $2x$ (the broken variant)";
    }
    if (h.rfind("$1$", 0) == 0 || h.rfind("$5$", 0) == 0 || h.rfind("$6$", 0) == 0) {
        return "crypt(3) " + std::string(h.substr(0, 3));
    }
    if (h.rfind("$2", 0) == 0) {
        return "a malformed bcrypt hash";
    }
    return "an unknown scheme (plain text or DES crypt)";
}

std::int64_t monotonic_s() {
    timespec ts{};
    (void)::clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

} // namespace

Result<HtpasswdUsers> parse_htpasswd(std::string_view text, const std::string& path) {
    HtpasswdUsers out;
    std::size_t line_no = 0;
    while (!text.empty()) {
        std::size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        ++line_no;
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1); // a file written on Windows
        }
        line = util::trim(line);
        if (line.empty() || line.front() == '#') {
            continue;
        }
        auto where = [&] { return "htpasswd file " + path + " line " + std::to_string(line_no); };
        std::size_t colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) {
            return Error::of(Errc::invalid, where() + ": expected user:hash");
        }
        std::string_view user = line.substr(0, colon);
        std::string_view hash = line.substr(colon + 1);
        if (!is_bcrypt(hash)) {
            return Error::of(Errc::invalid,
                             where() + ": user '" + std::string(user) + "' has " + scheme_of(hash) +
                                 "; only bcrypt ($2y$, $2b$, $2a$) is accepted (make one with "
                                 "`ringport htpasswd FILE USER`)");
        }
        const int cost = (hash[4] - '0') * 10 + (hash[5] - '0');
        if (cost > htpasswd_cost_max) {
            return Error::of(Errc::invalid, where() + ": user '" + std::string(user) +
                                                "' has bcrypt cost " + std::to_string(cost) +
                                                "; at most " + std::to_string(htpasswd_cost_max) +
                                                " is accepted (each login would take minutes)");
        }
        out.max_cost = std::max(out.max_cost, cost);
        if (!out.hashes.emplace(std::string(user), std::string(hash)).second) {
            return Error::of(Errc::invalid,
                             where() + ": user '" + std::string(user) + "' appears twice");
        }
    }
    return out;
}

Result<std::unique_ptr<HtpasswdFile>> HtpasswdFile::open(std::string path) {
    std::unique_ptr<HtpasswdFile> f(new HtpasswdFile(std::move(path)));
    struct stat st {};
    if (::stat(f->path_.c_str(), &st) != 0) {
        return Error::sys(errno, "htpasswd file " + f->path_);
    }
    auto text = util::read_whole_file(f->path_, "htpasswd file ");
    if (!text) {
        return std::move(text).error();
    }
    auto users = parse_htpasswd(*text, f->path_);
    if (!users) {
        return std::move(users).error();
    }
    f->users_ = std::make_shared<const HtpasswdUsers>(std::move(*users));
    f->dev_ = st.st_dev;
    f->ino_ = st.st_ino;
    f->size_ = st.st_size;
    f->mtime_ns_ = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    f->checked_s_ = monotonic_s();
    return f;
}

void HtpasswdFile::maybe_reload() {
    std::int64_t now = monotonic_s();
    {
        std::lock_guard lk(mu_);
        if (now == checked_s_) {
            return;
        }
        checked_s_ = now;
    }
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) {
        RP_LOG_WARN("htpasswd file %s: %s; keeping the users loaded before", path_.c_str(),
                    std::strerror(errno));
        return;
    }
    std::int64_t mtime =
        static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    {
        std::lock_guard lk(mu_);
        if (st.st_dev == dev_ && st.st_ino == ino_ && st.st_size == size_ && mtime == mtime_ns_) {
            return;
        }
    }
    auto text = util::read_whole_file(path_, "htpasswd file ");
    auto users = text ? parse_htpasswd(*text, path_) : Result<HtpasswdUsers>(text.error());
    std::lock_guard lk(mu_);
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    size_ = st.st_size;
    mtime_ns_ = mtime;
    if (!users) {
        RP_LOG_ERROR("%s; keeping the users loaded before", users.error().describe().c_str());
        return;
    }
    users_ = std::make_shared<const HtpasswdUsers>(std::move(*users));
    ++reloads_;
    RP_LOG_INFO("htpasswd file %s reloaded: %zu user(s)", path_.c_str(), users_->hashes.size());
}

std::optional<std::string> HtpasswdFile::hash_of(std::string_view user) {
    maybe_reload();
    std::shared_ptr<const HtpasswdUsers> users;
    {
        std::lock_guard lk(mu_);
        users = users_;
    }
    auto it = users->hashes.find(user);
    if (it == users->hashes.end()) {
        return std::nullopt;
    }
    return it->second;
}

int HtpasswdFile::max_cost() const {
    std::lock_guard lk(mu_);
    return users_->max_cost;
}

std::uint64_t HtpasswdFile::reloads() const {
    std::lock_guard lk(mu_);
    return reloads_;
}

Result<void> htpasswd_set(const std::string& path, const std::string& user,
                          const std::string& hash) {
    if (user.empty() || user.find_first_of(":\n\r") != std::string::npos) {
        return Error::of(Errc::invalid, "user name must be non-empty, without ':' or newlines");
    }
    std::string text;
    mode_t mode = 0600;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
        auto t = util::read_whole_file(path, "htpasswd file ");
        if (!t) {
            return std::move(t).error();
        }
        text = std::move(*t);
        mode = st.st_mode & 07777;
    } else if (errno != ENOENT) {
        return Error::sys(errno, "htpasswd file " + path);
    }
    std::string out;
    bool replaced = false;
    std::string_view rest = text;
    while (!rest.empty()) {
        std::size_t nl = rest.find('\n');
        std::string_view line = rest.substr(0, nl);
        rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
        std::string_view t = util::trim(line);
        if (!t.empty() && t.front() != '#' && t.substr(0, t.find(':')) == user) {
            if (!replaced) {
                out.append(user).append(":").append(hash).append("\n");
                replaced = true;
            }
            continue;
        }
        out.append(line).append("\n");
    }
    if (!replaced) {
        out.append(user).append(":").append(hash).append("\n");
    }
    std::string tmp = path + ".tmp-" + std::to_string(::getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        return Error::sys(errno, "create " + tmp);
    }
    (void)::fchmod(fd, mode);
    std::size_t off = 0;
    while (off < out.size()) {
        ssize_t n = ::write(fd, out.data() + off, out.size() - off);
        if (n <= 0) {
            int e = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            return Error::sys(e, "write " + tmp);
        }
        off += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return Error::sys(e, "sync " + tmp);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return Error::sys(e, "rename to " + path);
    }
    return util::Ok{};
}

} // namespace rp::auth
