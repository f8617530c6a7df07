// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "reactor/task.hh"
#include "util/result.hh"

namespace rp::storage {

// Where upload bytes come from (the registry adapts a request body to it;
// storage knows nothing of HTTP). read() fills at most `cap` bytes of `dst`
// and returns how many; 0 means the end.
class ByteSource {
  public:
    virtual reactor::Task<util::Result<std::size_t>> read(char* dst, std::size_t cap) noexcept = 0;

  protected:
    ~ByteSource() = default;
};

// Receive buffers for upload pipelines, pooled per thread (each shard) and
// bounded: at most `lent_max` at once, so slow uploads cannot pin memory.
// Buffers are mapped directly (not from malloc, whose arenas keep freed
// memory) and up to `cached_max` are kept for reuse. When the last one comes
// back, all but the `idle_cached_max` most recently used are given to the
// kernel with MADV_FREE (once until written again): it
// takes their pages back whenever it needs memory, and until then the next
// upload reuses them with no fault and no zeroing (a chunked push returns
// its buffers after every PATCH).
class ReceiveBuffers {
  public:
    // A lone upload fills whole buffers: one direct write and one hash
    // hand-off per MiB (against 512 KiB pieces, a 64 MiB push on one stream
    // ran about 7% faster here). Uploads sharing a shard use only the first
    // `shared_piece_bytes`, so only those pages of a fresh buffer ever
    // become resident: with several streams the CPUs, not the per-piece
    // costs, are the limit, and memory grows with the number of streams.
    static constexpr std::size_t buffer_bytes = 1u << 20;
    static constexpr std::size_t shared_piece_bytes = 512u << 10;
    static constexpr std::size_t lent_max = 32; // 32 MiB mapped per shard at most
    static constexpr std::size_t cached_max = 4;
    static constexpr std::size_t idle_cached_max = 1;

    struct Deleter {
        void operator()(char* p) const noexcept;
    };
    using Lease = std::unique_ptr<char, Deleter>;
    // A buffer of buffer_bytes, or null when this thread lent lent_max already.
    static Lease take() noexcept;
    // How many times this thread gave a buffer's pages to the kernel.
    static std::uint64_t given_back() noexcept;
};

} // namespace rp::storage
