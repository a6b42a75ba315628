// bench_grpc_client: the gRPC C++ load generator of bench/run.sh. K calls
// in flight on ONE channel through the callback API: each of K slots
// starts its next call from the completion of the previous one. Prints the
// same JSON line as bench_greeter:
// {"calls_per_s":..,"p50_us":..,"p99_us":..,"p999_us":..,"errors":..}
//
//   bench_grpc_client --address HOST:PORT [--inflight K] [--duration S]
//                     [--warmup S] [--size BYTES]
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
    std::string want;
    bench::HelloRequest req;
    clk::time_point start, end;
    std::mutex mu;
    std::condition_variable cv;
    int running = 0;
    std::string last_error;
};

struct Slot {
    Shared *sh;
    std::unique_ptr<grpc::ClientContext> ctx;
    bench::HelloReply rsp;
    clk::time_point t0;
    std::vector<uint64_t> lat;
    uint64_t errors = 0;

    void
    start()
    {
        ctx = std::make_unique<grpc::ClientContext>();
        ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        rsp.Clear();
        t0 = clk::now();
        sh->stub->async()->Hello(ctx.get(), &sh->req, &rsp,
            [this](grpc::Status s) { done(s); });
    }

    void
    done(const grpc::Status &s)
    {
        clk::time_point t1 = clk::now();
        bool in = t0 >= sh->start && t1 <= sh->end;
        bool ok = s.ok() && rsp.msg() == sh->want;
        if (!ok) {
            if (in) {
                errors++;
            }
            std::lock_guard<std::mutex> g(sh->mu);
            sh->last_error = s.ok() ? "unexpected reply" : s.error_message();
        } else if (in) {
            lat.push_back(uint64_t(
                std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0)
                    .count()));
        }
        if (t1 >= sh->end) {
            std::lock_guard<std::mutex> g(sh->mu);
            if (--sh->running == 0) {
                sh->cv.notify_all();
            }
            return;
        }
        start();
    }
};

[[noreturn]] void
usage()
{
    std::fprintf(stderr,
        "usage: bench_grpc_client --address HOST:PORT [--inflight K]\n"
        "       [--duration S] [--warmup S] [--size BYTES]\n");
    std::exit(2);
}

double
pct_us(const std::vector<uint64_t> &v, double p)
{
    if (v.empty()) {
        return 0.0;
    }
    return double(v[size_t(p * double(v.size() - 1) + 0.5)]) / 1000.0;
}

} // namespace

int
main(int argc, char **argv)
{
    std::string address;
    int inflight = 1;
    double duration = 5.0, warmup = 0.5;
    long size = 0;
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
        } else if (a == "--inflight") {
            inflight = std::atoi(v.c_str());
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
    if (address.empty() || inflight <= 0 || duration <= 0 || warmup < 0) {
        usage();
    }
    auto ch = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    auto stub = bench::Greeter::NewStub(ch);
    Shared sh;
    sh.stub = stub.get();
    std::string name = size > 0 ? std::string(size_t(size), 'x') : "John";
    sh.req.set_name(name);
    sh.want = "Hello " + name;
    if (!ch->WaitForConnected(
            std::chrono::system_clock::now() + std::chrono::seconds(5))) {
        std::fprintf(stderr, "bench_grpc_client: cannot connect to %s\n",
            address.c_str());
        return 1;
    }
    sh.start = clk::now() + std::chrono::microseconds(int64_t(warmup * 1e6));
    sh.end = sh.start + std::chrono::microseconds(int64_t(duration * 1e6));
    std::vector<Slot> slots(static_cast<size_t>(inflight));
    sh.running = inflight;
    for (Slot &s : slots) {
        s.sh = &sh;
    }
    for (Slot &s : slots) {
        s.start();
    }
    {
        std::unique_lock<std::mutex> g(sh.mu);
        sh.cv.wait(g, [&] { return sh.running == 0; });
    }
    std::vector<uint64_t> all;
    uint64_t errors = 0;
    for (Slot &s : slots) {
        all.insert(all.end(), s.lat.begin(), s.lat.end());
        errors += s.errors;
    }
    std::sort(all.begin(), all.end());
    std::printf("{\"calls_per_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
                "\"p999_us\":%.1f,\"errors\":%llu}\n",
        double(all.size()) / duration, pct_us(all, 0.50), pct_us(all, 0.99),
        pct_us(all, 0.999), (unsigned long long) errors);
    std::fflush(stdout);
    if (!sh.last_error.empty()) {
        std::fprintf(stderr, "bench_grpc_client: last error: %s\n",
            sh.last_error.c_str());
    }
    return 0;
}
