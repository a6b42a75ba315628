// Command goserver is a real Go Micro v4 "greeter" service used as the
// reference peer in the cmicro interop tests: unary Hello, Meta and Fail,
// and the stream endpoints Stream (bidi), ServerStream, Sum (client
// stream), StreamFail and SumNil (see stream.go).
//
//	goserver --server_address=127.0.0.1:PORT --registry=memory
//	goserver --server_address=127.0.0.1:PORT --registry=etcd --registry_address=HOST:PORT
//	goserver --server_address=127.0.0.1:PORT --registry=consul --registry_address=HOST:PORT
package main

import (
	"cmicro/interop/internal/stopctx"
	"context"
	"fmt"
	"os"

	consul "github.com/go-micro/plugins/v4/registry/consul"
	etcd "github.com/go-micro/plugins/v4/registry/etcd"
	"go-micro.dev/v4"
	"go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/util/cmd"
)

func init() {
	// go-micro v4.11.0 ships empty plugin maps in util/cmd, so
	// "--registry=memory" would fail with "Registry memory not found"
	// unless the implementation is registered by name.
	cmd.DefaultRegistries["memory"] = registry.NewMemoryRegistry
	cmd.DefaultRegistries["mdns"] = registry.NewRegistry
	cmd.DefaultRegistries["etcd"] = etcd.NewRegistry
	cmd.DefaultRegistries["consul"] = consul.NewRegistry
}

type HelloRequest struct {
	Name string `json:"name"`
}

type HelloResponse struct {
	Msg string `json:"msg"`
}

type MetaRequest struct {
	Key string `json:"key"`
}

type MetaResponse struct {
	Value string `json:"value"`
}

type FailRequest struct {
	Code   int32  `json:"code"`
	Detail string `json:"detail"`
}

// Greeter is the handler; its type name gives the endpoint prefix "Greeter.".
type Greeter struct{}

func (g *Greeter) Hello(ctx context.Context, req *HelloRequest, rsp *HelloResponse) error {
	if req.Name == "" {
		return errors.BadRequest("greeter", "name required")
	}
	rsp.Msg = "Hello " + req.Name
	return nil
}

func (g *Greeter) Meta(ctx context.Context, req *MetaRequest, rsp *MetaResponse) error {
	v, _ := metadata.Get(ctx, req.Key)
	rsp.Value = v
	return nil
}

func (g *Greeter) Fail(ctx context.Context, req *FailRequest, rsp *HelloResponse) error {
	return errors.New("greeter", req.Detail, req.Code)
}

func main() {
	var service micro.Service
	service = micro.NewService(
		micro.Context(stopctx.New()),
		micro.Name("greeter"),
		micro.AfterStart(func() error {
			fmt.Fprintf(os.Stdout, "goserver listening on %s\n", service.Server().Options().Address)
			os.Stdout.Sync()
			return nil
		}),
	)
	service.Init()

	if err := micro.RegisterHandler(service.Server(), new(Greeter)); err != nil {
		fmt.Fprintln(os.Stderr, "register handler:", err)
		os.Exit(2)
	}
	if err := service.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		os.Exit(1)
	}
}
