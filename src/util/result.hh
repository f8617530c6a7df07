// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

#include "util/assert.hh"

namespace rp::util {

// Kinds of expected failure. Library modules return these; the registry maps
// them to OCI error codes in one place (registry/errors.cc).
enum class Errc : std::uint8_t {
    system,          // sys_errno holds the errno
    not_found,       // a name, blob, manifest, tag or upload that does not exist
    invalid,         // client input that fails a grammar or a schema
    digest_mismatch, // bytes hash to something other than the claimed digest
    size_mismatch,   // bytes counted differ from the claimed size
    range,           // an out-of-order or unsatisfiable range
    too_large,       // a configured size limit was exceeded
    limit,           // a configured count limit was exceeded
    timeout,         // a peer made no progress in time
    closed,          // the peer closed the connection
    no_space,        // ENOSPC / EDQUOT
    busy,            // the resource is in use by another request
    unsupported,     // the operation is disabled or not implemented
    stopped,         // the process is stopping: the work was abandoned
};

// An expected failure. Cheap to copy in the common case (detail is usually
// empty or short); `detail` is what a client may be told.
struct Error {
    Errc kind = Errc::system;
    int sys_errno = 0;
    std::string detail;

    static Error sys(int err, std::string d = {}) {
        if (err < 0) {
            err = -err;
        }
        Errc k = Errc::system;
        if (err == 28 /*ENOSPC*/ || err == 122 /*EDQUOT*/) {
            k = Errc::no_space;
        } else if (err == 2 /*ENOENT*/) {
            k = Errc::not_found;
        }
        return Error{k, err, std::move(d)};
    }
    static Error of(Errc k, std::string d = {}) { return Error{k, 0, std::move(d)}; }
    std::string describe() const;
};

template <typename T> class [[nodiscard]] Result {
  public:
    Result(T v) : v_(std::in_place_index<0>, std::move(v)) {}
    Result(Error e) : v_(std::in_place_index<1>, std::move(e)) {}

    bool has_value() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }
    T& value() & {
        RP_ASSERT(has_value());
        return std::get<0>(v_);
    }
    const T& value() const& {
        RP_ASSERT(has_value());
        return std::get<0>(v_);
    }
    T&& value() && {
        RP_ASSERT(has_value());
        return std::get<0>(std::move(v_));
    }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const Error& error() const& {
        RP_ASSERT(!has_value());
        return std::get<1>(v_);
    }
    Error&& error() && {
        RP_ASSERT(!has_value());
        return std::get<1>(std::move(v_));
    }

  private:
    std::variant<T, Error> v_;
};

struct Ok {};

template <> class [[nodiscard]] Result<void> {
  public:
    Result() = default;
    Result(Ok) {}
    Result(Error e) : err_(std::move(e)), ok_(false) {}
    bool has_value() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    void value() const { RP_ASSERT(ok_); }
    const Error& error() const& {
        RP_ASSERT(!ok_);
        return err_;
    }
    Error&& error() && {
        RP_ASSERT(!ok_);
        return std::move(err_);
    }

  private:
    Error err_;
    bool ok_ = true;
};

} // namespace rp::util
