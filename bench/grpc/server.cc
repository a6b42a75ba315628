// bench_grpc_server: the gRPC C++ contender of bench/run.sh, Debian's
// libgrpc++ with the callback API (the one gRPC recommends for new code;
// handlers run on gRPC's own threads, no extra hand-off).
//
//   bench_grpc_server 127.0.0.1:PORT
//
// Prints "bench_grpc_server listening on HOST:PORT" once it serves.
#include <cstdio>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "greeter.grpc.pb.h"

namespace {

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
};

} // namespace

int
main(int argc, char **argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: bench_grpc_server HOST:PORT\n");
        return 2;
    }
    GreeterImpl service;
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort(argv[1], grpc::InsecureServerCredentials(), &port);
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
