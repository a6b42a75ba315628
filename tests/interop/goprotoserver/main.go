// Command goprotoserver is a real Go Micro v4 greeter whose handler uses
// protoc-gen-go types (pb/greeterpb, from examples/greeter-proto/greeter.proto),
// the peer of the C generated-stub greeter in the protobuf interop tests.
//
//	goprotoserver --server_address=127.0.0.1:PORT --registry=memory
package main

import (
	"context"
	"fmt"
	"os"

	"cmicro/interop/pb/greeterpb"

	"go-micro.dev/v4"
	"go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/util/cmd"
)

func init() {
	cmd.DefaultRegistries["memory"] = registry.NewMemoryRegistry
}

// Greeter gives the endpoint prefix "Greeter.".
type Greeter struct{}

func (g *Greeter) Hello(ctx context.Context, req *greeterpb.Request, rsp *greeterpb.Response) error {
	if req.Name == "" {
		return errors.BadRequest("greeter", "name required")
	}
	rsp.Msg = "Hello " + req.Name
	return nil
}

func main() {
	var service micro.Service
	service = micro.NewService(
		micro.Name("greeter"),
		micro.AfterStart(func() error {
			fmt.Fprintf(os.Stdout, "goprotoserver listening on %s\n", service.Server().Options().Address)
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
