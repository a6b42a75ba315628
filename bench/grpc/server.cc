// bench_grpc_server: the gRPC C++ contender of bench/run.sh, Debian's
// libgrpc++ with the callback API (the one gRPC recommends for new code;
// handlers run on gRPC's own threads, no extra hand-off). Greeter.Hello for
// the unary rows; Greeter.Stream (bidirectional: each HelloRequest answered
// with "Hello <name>") for the streaming rows.
//
//   bench_grpc_server 127.0.0.1:PORT [CERT.pem KEY.pem]
//
// With a certificate and key it serves over TLS (gRPC's SSL credentials:
// ALPN h2). Prints "bench_grpc_server listening on HOST:PORT" once it serves.
#include <cstddef>
#include <cstdio>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/grpcpp.h>

#include "greeter.grpc.pb.h"

namespace {

// Greeter.Stream: reads and writes overlap. Replies wait in a queue (one
// write in flight at a time, as the API allows); reading pauses while
// kMaxQueued replies are waiting, so a client that does not read bounds
// the server's memory (gRPC's own flow control then stops the client).
class EchoStream final
    : public grpc::ServerBidiReactor<bench::HelloRequest, bench::HelloReply> {
public:
    EchoStream() { StartRead(&req_); }

    void
    OnReadDone(bool ok) override
    {
        std::lock_guard<std::mutex> g(mu_);
        reading_ = false;
        if (!ok) {
            read_done_ = true; // the client's WritesDone (or a failure)
            maybe_finish();
            return;
        }
        auto rsp = std::make_unique<bench::HelloReply>();
        rsp->set_msg("Hello " + req_.name());
        queue_.push_back(std::move(rsp));
        if (!writing_) {
            writing_ = true;
            StartWrite(queue_.front().get());
        }
        if (queue_.size() < kMaxQueued) {
            reading_ = true;
            StartRead(&req_);
        }
    }

    void
    OnWriteDone(bool ok) override
    {
        std::lock_guard<std::mutex> g(mu_);
        queue_.pop_front();
        writing_ = false;
        if (!ok) {
            failed_ = true;
            maybe_finish();
            return;
        }
        if (!queue_.empty()) {
            writing_ = true;
            StartWrite(queue_.front().get());
        }
        if (!reading_ && !read_done_ && queue_.size() < kMaxQueued) {
            reading_ = true;
            StartRead(&req_);
        }
        maybe_finish();
    }

    void
    OnDone() override
    {
        delete this;
    }

private:
    static constexpr size_t kMaxQueued = 64;

    // Under mu_: finish once the client is done and every reply is out.
    void
    maybe_finish()
    {
        if (finished_ || writing_ || reading_) {
            return;
        }
        if (failed_ || (read_done_ && queue_.empty())) {
            finished_ = true;
            Finish(failed_ ? grpc::Status::CANCELLED : grpc::Status::OK);
        }
    }

    std::mutex mu_;
    bench::HelloRequest req_;
    std::deque<std::unique_ptr<bench::HelloReply>> queue_;
    bool reading_ = true, writing_ = false, read_done_ = false;
    bool failed_ = false, finished_ = false;
};

class GreeterImpl final : public bench::Greeter::CallbackService {
    grpc::ServerUnaryReactor *
    Hello(grpc::CallbackServerContext *ctx, const bench::HelloRequest *req,
        bench::HelloReply *rsp) override
    {
        grpc::ServerUnaryReactor *r = ctx->DefaultReactor();
        if (req->name().empty()) {
            r->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                "name required"));
            return r;
        }
        rsp->set_msg("Hello " + req->name());
        r->Finish(grpc::Status::OK);
        return r;
    }

    grpc::ServerBidiReactor<bench::HelloRequest, bench::HelloReply> *
    Stream(grpc::CallbackServerContext *) override
    {
        return new EchoStream();
    }
};

std::string
slurp(const char *path)
{
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f),
        std::istreambuf_iterator<char>());
}

} // namespace

int
main(int argc, char **argv)
{
    if (argc != 2 && argc != 4) {
        std::fprintf(stderr,
            "usage: bench_grpc_server HOST:PORT [CERT.pem KEY.pem]\n");
        return 2;
    }
    std::shared_ptr<grpc::ServerCredentials> creds =
        grpc::InsecureServerCredentials();
    if (argc == 4) {
        grpc::SslServerCredentialsOptions o;
        o.pem_key_cert_pairs.push_back({slurp(argv[3]), slurp(argv[2])});
        creds = grpc::SslServerCredentials(o);
    }
    GreeterImpl service;
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort(argv[1], creds, &port);
    b.RegisterService(&service);
    std::unique_ptr<grpc::Server> server = b.BuildAndStart();
    if (!server || port == 0) {
        std::fprintf(stderr, "bench_grpc_server: cannot listen on %s\n",
            argv[1]);
        return 1;
    }
    std::string host(argv[1]);
    host = host.substr(0, host.rfind(':'));
    std::printf("bench_grpc_server listening on %s:%d\n", host.c_str(), port);
    std::fflush(stdout);
    server->Wait();
    return 0;
}
