// SPDX-License-Identifier: Apache-2.0
// ci-fleet: N clients pull the same multi-layer image at once (manifest,
// config, layers; every body verified), then a few clients push new images
// the way docker does (HEAD each blob, upload the missing ones, PUT the
// manifest).
#include "workloads.hh"

namespace rp::bench {

using util::Result;

namespace {

class ImagePullFlow final : public Flow {
  public:
    ImagePullFlow(const Image& image, const std::string& repo) : image_(image) {
        targets_.push_back("/v2/" + repo + "/manifests/latest");
        targets_.push_back("/v2/" + repo + "/blobs/" + image.config_blob.digest);
        for (const Blob& b : image.layers) {
            targets_.push_back("/v2/" + repo + "/blobs/" + b.digest);
        }
    }
    void begin(std::uint64_t, Request& req) override {
        step_ = 0;
        fill(req);
    }
    Step on_response(const Response& r, Request& req, std::string& why) override {
        const Sha256& want = step_ == 0   ? image_.raw
                             : step_ == 1 ? image_.config_blob.raw
                                          : image_.layers[step_ - 2].raw;
        if (!expect_status(r, 200, why) || !expect_sha256(r, want, why)) {
            return Step::failed;
        }
        if (++step_ == targets_.size()) {
            return Step::done;
        }
        fill(req);
        return Step::next;
    }

  private:
    void fill(Request& req) {
        req.method = "GET";
        req.target.assign(targets_[step_]);
        req.headers.assign(step_ == 0 ? manifest_accept : "");
        req.sink = Sink::hash;
    }

    const Image& image_;
    std::vector<std::string> targets_;
    std::size_t step_ = 0;
};

class ImagePushFlow final : public Flow {
  public:
    ImagePushFlow(const std::vector<std::unique_ptr<Image>>& images, const std::string& repo,
                  UploadMode mode)
        : images_(images), repo_(repo), mode_(mode) {}
    void set_first_image(std::uint64_t first) { first_ = first; }

    void begin(std::uint64_t op, Request& req) override {
        index_ = (first_ + op) % images_.size();
        blob_ = 0;
        stage_ = Stage::head;
        head(req);
    }

    Step on_response(const Response& r, Request& req, std::string& why) override {
        switch (stage_) {
        case Stage::head:
            if (r.head->status == 404) {
                stage_ = Stage::upload;
                upload_.start(req, repo_, blob_at(blob_), mode_, 0);
                return Step::next;
            }
            if (!expect_status(r, 200, why)) {
                return Step::failed;
            }
            return advance(req);
        case Stage::upload: {
            Step s = upload_.on_response(r, req, why);
            return s == Step::done ? advance(req) : s;
        }
        case Stage::manifest:
            if (!expect_status(r, 201, why) || !expect_digest_header(r, image().digest, why)) {
                return Step::failed;
            }
            return Step::done;
        }
        return Step::failed;
    }

  private:
    const Image& image() const { return *images_[index_]; }
    // Layers first, then the config, as docker pushes.
    const Blob& blob_at(std::size_t i) const {
        return i < image().layers.size() ? image().layers[i] : image().config_blob;
    }
    void head(Request& req) {
        req.clear();
        req.method = "HEAD";
        req.target.assign("/v2/").append(repo_).append("/blobs/").append(blob_at(blob_).digest);
    }
    Step advance(Request& req) {
        if (++blob_ <= image().layers.size()) {
            stage_ = Stage::head;
            head(req);
            return Step::next;
        }
        stage_ = Stage::manifest;
        req.clear();
        req.method = "PUT";
        req.target.assign("/v2/").append(repo_).append("/manifests/push-");
        req.target.append(image().digest.substr(7, 16));
        req.headers.assign("Content-Type: ").append(oci_manifest_type).append("\r\n");
        req.body = image().manifest;
        return Step::next;
    }

    const std::vector<std::unique_ptr<Image>>& images_;
    std::string repo_;
    UploadMode mode_;
    std::uint64_t first_ = 0;
    std::size_t index_ = 0;
    std::size_t blob_ = 0;
    enum class Stage : std::uint8_t { head, upload, manifest } stage_ = Stage::head;
    BlobUpload upload_;
};

void add_phase(RunContext& ctx, const std::string& name, const Stats& s, double seconds) {
    add_extra(ctx, name + "_images", static_cast<std::int64_t>(s.ops));
    add_extra(ctx, name + "_seconds", seconds);
    add_extra(ctx, name + "_bytes_per_s",
              seconds > 0 ? static_cast<double>(s.bytes) / seconds : 0.0);
    add_extra(ctx, name + "_p50_ms", static_cast<double>(s.latency_ns.quantile(0.5)) / 1e6);
    add_extra(ctx, name + "_p99_ms", static_cast<double>(s.latency_ns.quantile(0.99)) / 1e6);
    add_extra(ctx, name + "_max_ms", static_cast<double>(s.latency_ns.max()) / 1e6);
}

} // namespace

Result<void> run_ci_fleet(RunContext& ctx) {
    const Options& o = ctx.opt;
    auto mode = probe_upload_mode(ctx, o.repo);
    if (!mode) {
        return std::move(mode).error();
    }
    auto layers_n = static_cast<std::size_t>(o.layers);
    BlobSet base_layers(layers_n, o.layer_size, run_seed());
    auto image = make_image(base_layers, 0, layers_n, "ci-fleet base");
    if (auto r = push_image(ctx, o.repo, *image, "latest"); !r) {
        return r;
    }
    // What the pushers push, generated (and hashed) before anything is timed.
    std::uint64_t images_n = o.count * o.pushers;
    BlobSet push_layers(static_cast<std::size_t>(images_n) * layers_n, o.layer_size,
                        run_seed() + 1);
    std::vector<std::unique_ptr<Image>> images;
    std::uint64_t nonce = run_seed();
    for (std::uint64_t i = 0; i < images_n; ++i) {
        images.push_back(make_image(push_layers, i * layers_n, layers_n,
                                    std::to_string(nonce) + "-" + std::to_string(i)));
    }
    auto pullers = FlowSet::of<ImagePullFlow>(static_cast<std::size_t>(o.pullers), *image, o.repo);
    auto pushers =
        FlowSet::of<ImagePushFlow>(static_cast<std::size_t>(o.pushers), images, o.repo, *mode);
    Stats pulled;
    Stats pushed;
    double pull_s = 0;
    double push_s = 0;
    for (std::uint64_t round = 0; round < o.count; ++round) {
        Plan pull_plan(o.pullers, 0);
        double before = ctx.meter.seconds();
        auto p = measured_phase(ctx, "measure: pull", pullers, pull_plan, engine_config(ctx, true));
        if (!p) {
            return std::move(p).error();
        }
        pull_s += ctx.meter.seconds() - before;
        pulled.merge(*p);
        if (o.pushers == 0) {
            continue;
        }
        for (std::size_t i = 0; i < pushers.size(); ++i) {
            pushers.at<ImagePushFlow>(i).set_first_image(round * o.pushers);
        }
        Plan push_plan(o.pushers, 0);
        before = ctx.meter.seconds();
        auto q =
            measured_phase(ctx, "measure: push", pushers, push_plan, engine_config(ctx, false));
        if (!q) {
            return std::move(q).error();
        }
        push_s += ctx.meter.seconds() - before;
        pushed.merge(*q);
    }
    add_extra(ctx, "upload_mode", std::string(upload_mode_name(*mode)));
    add_phase(ctx, "pull", pulled, pull_s);
    add_phase(ctx, "push", pushed, push_s);
    return util::Ok{};
}

} // namespace rp::bench
