// SPDX-License-Identifier: Apache-2.0
#include "flows.hh"

#include <cstring>

namespace rp::bench {

namespace {

constexpr const char* octet_stream = "Content-Type: application/octet-stream\r\n";

void append_num(std::string& s, std::uint64_t v) { s += std::to_string(v); }

} // namespace

bool expect_status(const Response& r, int want, std::string& why) {
    if (r.head->status == want) {
        return true;
    }
    why = "status " + std::to_string(r.head->status) + ", want " + std::to_string(want);
    if (!r.body.empty()) {
        why += ": " + std::string(r.body.substr(0, 300));
    }
    return false;
}

bool expect_sha256(const Response& r, const Sha256& want, std::string& why) {
    if (r.sha256 != nullptr && std::memcmp(r.sha256, want.data(), want.size()) == 0) {
        return true;
    }
    Sha256 got{};
    if (r.sha256 != nullptr) {
        std::memcpy(got.data(), r.sha256, got.size());
    }
    why = "DIGEST MISMATCH: body of " + std::to_string(r.body_bytes) + " bytes hashes to " +
          digest_string(got) + ", want " + digest_string(want);
    return false;
}

bool expect_digest_header(const Response& r, std::string_view want, std::string& why) {
    if (r.head->digest.empty() || r.head->digest == want) {
        return true;
    }
    why = "Docker-Content-Digest " + std::string(r.head->digest) + ", want " + std::string(want);
    return false;
}

const char* upload_mode_name(UploadMode m) {
    switch (m) {
    case UploadMode::monolithic: return "monolithic POST";
    case UploadMode::post_put: return "POST + PUT";
    case UploadMode::chunked: return "POST + PATCH... + PUT";
    }
    return "?";
}

void BlobUpload::start(Request& req, std::string_view repo, const Blob& blob, UploadMode mode,
                       std::uint64_t chunk) {
    blob_ = &blob;
    mode_ = mode;
    chunk_ = chunk;
    offset_ = 0;
    req.headers.clear();
    req.body = {};
    req.sink = Sink::discard;
    req.method = "POST";
    req.target.assign("/v2/").append(repo).append("/blobs/uploads/");
    if (mode == UploadMode::monolithic) {
        append_query(req.target, "digest", blob.digest);
        req.headers.assign(octet_stream);
        req.body = blob.data;
        stage_ = Stage::put;
    } else {
        stage_ = Stage::post;
    }
}

void BlobUpload::next_patch(std::string_view location, Request& req) {
    std::uint64_t n = std::min<std::uint64_t>(chunk_, blob_->data.size() - offset_);
    req.method = "PATCH";
    req.target.assign(location);
    req.headers.assign(octet_stream).append("Content-Range: ");
    append_num(req.headers, offset_);
    req.headers += '-';
    append_num(req.headers, offset_ + n - 1);
    req.headers += "\r\n";
    req.body = blob_->data.substr(offset_, n);
    offset_ += n;
}

Step BlobUpload::on_response(const Response& r, Request& req, std::string& why) {
    if (stage_ == Stage::put) {
        if (!expect_status(r, 201, why) || !expect_digest_header(r, blob_->digest, why)) {
            return Step::failed;
        }
        return Step::done;
    }
    if (!expect_status(r, 202, why)) {
        return Step::failed;
    }
    if (r.head->location.empty()) {
        why = "202 without a Location header";
        return Step::failed;
    }
    std::string_view location = url_path(r.head->location);
    if (mode_ == UploadMode::chunked && offset_ < blob_->data.size()) {
        stage_ = Stage::patch;
        next_patch(location, req);
        return Step::next;
    }
    req.method = "PUT";
    req.target.assign(location);
    append_query(req.target, "digest", blob_->digest);
    req.headers.assign(octet_stream);
    req.body = mode_ == UploadMode::post_put ? blob_->data : std::string_view{};
    stage_ = Stage::put;
    return Step::next;
}

void PushFlow::begin(std::uint64_t op, Request& req) {
    upload_.start(req, repo_, blobs_[op % blobs_.size()], mode_, chunk_);
}

Step PushFlow::on_response(const Response& r, Request& req, std::string& why) {
    return upload_.on_response(r, req, why);
}

void BlobGetFlow::begin(std::uint64_t op, Request& req) {
    index_ = op % targets_.size();
    req.target.assign(targets_[index_].path);
    req.headers.assign(targets_[index_].headers);
    req.sink = Sink::hash;
}

Step BlobGetFlow::on_response(const Response& r, Request&, std::string& why) {
    if (!expect_status(r, 200, why) || !expect_sha256(r, targets_[index_].digest, why)) {
        return Step::failed;
    }
    return Step::done;
}

void BlobHeadFlow::begin(std::uint64_t op, Request& req) {
    index_ = op % blobs_.size();
    req.method = "HEAD";
    req.target.assign("/v2/").append(repo_).append("/blobs/").append(blobs_[index_].digest);
}

Step BlobHeadFlow::on_response(const Response& r, Request&, std::string& why) {
    const Blob& b = blobs_[index_];
    if (!expect_status(r, 200, why) || !expect_digest_header(r, b.digest, why)) {
        return Step::failed;
    }
    if (r.head->content_length != b.data.size()) {
        why = "HEAD says " + std::to_string(r.head->content_length) + " bytes, pushed " +
              std::to_string(b.data.size());
        return Step::failed;
    }
    return Step::done;
}

void ManifestFetchFlow::begin(std::uint64_t, Request& req) {
    req.method = head_ ? "HEAD" : "GET";
    req.target.assign(target_);
    req.headers.assign(manifest_accept);
    req.sink = head_ ? Sink::discard : Sink::hash;
}

Step ManifestFetchFlow::on_response(const Response& r, Request&, std::string& why) {
    if (!expect_status(r, 200, why) || !expect_digest_header(r, image_.digest, why)) {
        return Step::failed;
    }
    if (!head_ && !expect_sha256(r, image_.raw, why)) {
        return Step::failed;
    }
    if (head_ && r.head->content_length != image_.manifest.size()) {
        why = "HEAD says " + std::to_string(r.head->content_length) + " bytes, manifest has " +
              std::to_string(image_.manifest.size());
        return Step::failed;
    }
    return Step::done;
}

void ManifestPutFlow::begin(std::uint64_t op, Request& req) {
    req.method = "PUT";
    req.target.assign("/v2/").append(repos_[op % repos_.size()]).append("/manifests/");
    req.target.append(refs_[op % refs_.size()]);
    req.headers.assign("Content-Type: ").append(oci_manifest_type).append("\r\n");
    req.body = image_.manifest;
}

Step ManifestPutFlow::on_response(const Response& r, Request&, std::string& why) {
    if (!expect_status(r, 201, why) || !expect_digest_header(r, image_.digest, why)) {
        return Step::failed;
    }
    return Step::done;
}

const Blob& RepoCreateFlow::blob_at(std::size_t i) const {
    return i == 0 ? image_.config_blob : image_.layers[i - 1];
}

void RepoCreateFlow::begin(std::uint64_t op, Request& req) {
    repo_ = repos_[op % repos_.size()];
    blob_ = 0;
    manifest_ = false;
    mount(0, req);
}

void RepoCreateFlow::mount(std::size_t blob, Request& req) {
    uploading_ = false;
    req.method = "POST";
    req.target.assign("/v2/").append(repo_).append("/blobs/uploads/");
    append_query(req.target, "mount", blob_at(blob).digest);
    append_query(req.target, "from", from_);
    req.headers.clear();
    req.body = {};
}

Step RepoCreateFlow::put_manifest(Request& req) {
    manifest_ = true;
    req.method = "PUT";
    req.target.assign("/v2/").append(repo_).append("/manifests/latest");
    req.headers.assign("Content-Type: ").append(oci_manifest_type).append("\r\n");
    req.body = image_.manifest;
    return Step::next;
}

Step RepoCreateFlow::on_response(const Response& r, Request& req, std::string& why) {
    if (manifest_) {
        return expect_status(r, 201, why) ? Step::done : Step::failed;
    }
    if (uploading_) {
        Step s = upload_.on_response(r, req, why);
        if (s != Step::done) {
            return s;
        }
    } else if (r.head->status == 202) {
        // The server opened an upload instead of mounting: send the bytes.
        uploading_ = true;
        upload_.start(req, repo_, blob_at(blob_), UploadMode::post_put, 0);
        return upload_.on_response(r, req, why);
    } else if (!expect_status(r, 201, why)) {
        return Step::failed;
    }
    if (++blob_ <= image_.layers.size()) {
        mount(blob_, req);
        return Step::next;
    }
    return put_manifest(req);
}

} // namespace rp::bench
