// bench_grpc_stream_client: the gRPC C++ streaming load generator of
// bench/run.sh. S bidirectional Greeter.Stream calls on ONE channel through
// the callback API; each keeps its pipe full: a write is started as soon as
// the previous one completes (as fast as gRPC's flow control allows) while
// reads run independently and count the replies. Only replies received
// inside the window [warm-up, warm-up + duration] count. Then every stream
// half-closes (WritesDone), drains its replies and finishes. Prints:
// {"msgs_per_s":..,"streams":S,"size":..,"errors":..}
//
//   bench_grpc_stream_client --address HOST:PORT [--streams S]
//       [--duration S] [--warmup S] [--size BYTES]
//
// --size is the encoded HelloRequest in bytes: a name of size-2 bytes up
// to 129, size-3 above (field tag, length varint, name), so 64 -> a name
// of 62, 1024 -> 1021.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "greeter.grpc.pb.h"

namespace {

using clk = std::chrono::steady_clock;

struct Shared {
    bench::Greeter::Stub *stub;
    bench::HelloRequest req;
    std::string want;
    clk::time_point start, end;
    std::mutex mu;
    std::condition_variable cv;
    int running = 0;
    std::string last_error;
};

class Pipe final
    : public grpc::ClientBidiReactor<bench::HelloRequest, bench::HelloReply> {
public:
    explicit Pipe(Shared *sh) : sh_(sh)
    {
        ctx_.set_deadline(std::chrono::system_clock::now() +
            std::chrono::duration_cast<std::chrono::system_clock::duration>(
                sh->end - clk::now()) +
            std::chrono::seconds(30));
        sh->stub->async()->Stream(&ctx_, this);
        StartRead(&rsp_);
        StartWrite(&sh->req);
        StartCall();
    }

    void
    OnWriteDone(bool ok) override
    {
        if (!ok) {
            return; // the call failed: OnDone reports it
        }
        if (clk::now() < sh_->end) {
            StartWrite(&sh_->req);
            return;
        }
        StartWritesDone();
    }

    void
    OnReadDone(bool ok) override
    {
        if (!ok) {
            return; // end of stream (after our WritesDone) or failure
        }
        clk::time_point t = clk::now();
        bool in = t >= sh_->start && t <= sh_->end;
        if (rsp_.msg() != sh_->want) {
            if (in) {
                errors++;
            }
            std::lock_guard<std::mutex> g(sh_->mu);
            sh_->last_error = "unexpected reply";
        } else if (in) {
            msgs++;
        }
        StartRead(&rsp_);
    }

    void
    OnDone(const grpc::Status &s) override
    {
        std::lock_guard<std::mutex> g(sh_->mu);
        if (!s.ok()) {
            errors++;
            sh_->last_error = s.error_message();
        }
        if (--sh_->running == 0) {
            sh_->cv.notify_all();
        }
    }

    uint64_t msgs = 0, errors = 0;

private:
    Shared *sh_;
    grpc::ClientContext ctx_;
    bench::HelloReply rsp_;
};

[[noreturn]] void
usage()
{
    std::fprintf(stderr,
        "usage: bench_grpc_stream_client --address HOST:PORT [--streams S]\n"
        "       [--duration S] [--warmup S] [--size BYTES]\n");
    std::exit(2);
}

} // namespace

int
main(int argc, char **argv)
{
    std::string address;
    int streams = 1;
    double duration = 5.0, warmup = 0.5;
    long size = 64;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i], v;
        size_t eq = a.find('=');
        if (eq != std::string::npos) {
            v = a.substr(eq + 1);
            a = a.substr(0, eq);
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            usage();
        }
        if (a == "--address") {
            address = v;
        } else if (a == "--streams") {
            streams = std::atoi(v.c_str());
        } else if (a == "--duration") {
            duration = std::atof(v.c_str());
        } else if (a == "--warmup") {
            warmup = std::atof(v.c_str());
        } else if (a == "--size") {
            size = std::atol(v.c_str());
        } else {
            usage();
        }
    }
    if (address.empty() || streams <= 0 || duration <= 0 || warmup < 0 ||
        size < 3 || size > 16000) {
        usage();
    }
    auto ch = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    auto stub = bench::Greeter::NewStub(ch);
    Shared sh;
    sh.stub = stub.get();
    std::string name(size_t(size <= 129 ? size - 2 : size - 3), 'x');
    sh.req.set_name(name);
    sh.want = "Hello " + name;
    if (sh.req.ByteSizeLong() != size_t(size)) {
        std::fprintf(stderr, "bench_grpc_stream_client: request is %zu B\n",
            sh.req.ByteSizeLong());
        return 2;
    }
    if (!ch->WaitForConnected(
            std::chrono::system_clock::now() + std::chrono::seconds(5))) {
        std::fprintf(stderr, "bench_grpc_stream_client: cannot connect to %s\n",
            address.c_str());
        return 1;
    }
    sh.start = clk::now() + std::chrono::microseconds(int64_t(warmup * 1e6));
    sh.end = sh.start + std::chrono::microseconds(int64_t(duration * 1e6));
    sh.running = streams;
    std::vector<std::unique_ptr<Pipe>> pipes;
    for (int i = 0; i < streams; i++) {
        pipes.push_back(std::make_unique<Pipe>(&sh));
    }
    {
        std::unique_lock<std::mutex> g(sh.mu);
        sh.cv.wait(g, [&] { return sh.running == 0; });
    }
    uint64_t msgs = 0, errors = 0;
    for (auto &p : pipes) {
        msgs += p->msgs;
        errors += p->errors;
    }
    std::printf("{\"msgs_per_s\":%.0f,\"streams\":%d,\"size\":%ld,"
                "\"errors\":%llu}\n",
        double(msgs) / duration, streams, size, (unsigned long long) errors);
    std::fflush(stdout);
    if (!sh.last_error.empty()) {
        std::fprintf(stderr, "bench_grpc_stream_client: last error: %s\n",
            sh.last_error.c_str());
    }
    return 0;
}
