// SPDX-License-Identifier: Apache-2.0
#pragma once

// The per-connection state machines of blob and manifest operations. Each
// holds only borrowed, read-only workload data (blobs, images, names) that
// outlives the run, plus its own small state.

#include <string>
#include <string_view>
#include <vector>

#include "blobs.hh"
#include "engine.hh"

namespace rp::bench {

// Response checks shared by the flows; on failure they fill `why`.
bool expect_status(const Response& r, int want, std::string& why);
bool expect_sha256(const Response& r, const Sha256& want, std::string& why);
// A Docker-Content-Digest header, when the server sent one, must match.
bool expect_digest_header(const Response& r, std::string_view want, std::string& why);

enum class UploadMode : std::uint8_t { monolithic, post_put, chunked };
const char* upload_mode_name(UploadMode m);

// One blob upload: monolithic POST ?digest=, POST then PUT, or POST, PATCH
// per chunk (following each Location, absolute or relative), then PUT.
class BlobUpload {
  public:
    void start(Request& req, std::string_view repo, const Blob& blob, UploadMode mode,
               std::uint64_t chunk);
    Step on_response(const Response& r, Request& req, std::string& why);

  private:
    void next_patch(std::string_view location, Request& req);

    const Blob* blob_ = nullptr; // borrowed from the workload's data
    UploadMode mode_ = UploadMode::post_put;
    std::uint64_t chunk_ = 0;
    std::uint64_t offset_ = 0;
    enum class Stage : std::uint8_t { post, patch, put } stage_ = Stage::post;
};

// Pushes blobs[op % n] to one repository.
class PushFlow final : public Flow {
  public:
    PushFlow(const std::vector<Blob>& blobs, std::string repo, UploadMode mode, std::uint64_t chunk)
        : blobs_(blobs), repo_(std::move(repo)), mode_(mode), chunk_(chunk) {}
    void begin(std::uint64_t op, Request& req) override;
    Step on_response(const Response& r, Request& req, std::string& why) override;

  private:
    const std::vector<Blob>& blobs_;
    std::string repo_;
    UploadMode mode_;
    std::uint64_t chunk_;
    BlobUpload upload_;
};

// GETs targets[op % n] and checks the body's SHA-256.
class BlobGetFlow final : public Flow {
  public:
    struct Target {
        std::string path;
        Sha256 digest{};
        std::string headers; // extra request header lines, each ending in CRLF
    };
    explicit BlobGetFlow(const std::vector<Target>& targets) : targets_(targets) {}
    void begin(std::uint64_t op, Request& req) override;
    Step on_response(const Response& r, Request& req, std::string& why) override;

  private:
    const std::vector<Target>& targets_;
    std::size_t index_ = 0;
};

// HEADs blobs[op % n] in a repository: 200 and the right Content-Length.
class BlobHeadFlow final : public Flow {
  public:
    BlobHeadFlow(const std::vector<Blob>& blobs, std::string repo)
        : blobs_(blobs), repo_(std::move(repo)) {}
    void begin(std::uint64_t op, Request& req) override;
    Step on_response(const Response& r, Request& req, std::string& why) override;

  private:
    const std::vector<Blob>& blobs_;
    std::string repo_;
    std::size_t index_ = 0;
};

// GET or HEAD of one manifest by tag or digest, verified by digest.
class ManifestFetchFlow final : public Flow {
  public:
    ManifestFetchFlow(const Image& image, std::string target, bool head)
        : image_(image), target_(std::move(target)), head_(head) {}
    void begin(std::uint64_t op, Request& req) override;
    Step on_response(const Response& r, Request& req, std::string& why) override;

  private:
    const Image& image_;
    std::string target_;
    bool head_;
};

// PUTs one manifest under references[op] in repos[op % repos.size()].
class ManifestPutFlow final : public Flow {
  public:
    ManifestPutFlow(const Image& image, const std::vector<std::string>& repos,
                    const std::vector<std::string>& references)
        : image_(image), repos_(repos), refs_(references) {}
    void begin(std::uint64_t op, Request& req) override;
    Step on_response(const Response& r, Request& req, std::string& why) override;

  private:
    const Image& image_;
    const std::vector<std::string>& repos_;
    const std::vector<std::string>& refs_;
};

// Makes repos[op] a repository holding `image`, whose blobs are in `from`:
// each blob is mounted (or uploaded when the server will not mount), then
// the manifest is PUT as "latest".
class RepoCreateFlow final : public Flow {
  public:
    RepoCreateFlow(const Image& image, std::string from, const std::vector<std::string>& repos)
        : image_(image), from_(std::move(from)), repos_(repos) {}
    void begin(std::uint64_t op, Request& req) override;
    Step on_response(const Response& r, Request& req, std::string& why) override;

  private:
    void mount(std::size_t blob, Request& req);
    const Blob& blob_at(std::size_t i) const;
    Step put_manifest(Request& req);

    const Image& image_;
    std::string from_;
    const std::vector<std::string>& repos_;
    std::string repo_;
    std::size_t blob_ = 0; // config first, then layers
    bool uploading_ = false;
    bool manifest_ = false;
    BlobUpload upload_;
};

} // namespace rp::bench
