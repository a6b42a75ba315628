// Command server is the Go Micro v4 greeter contender of bench/run.sh:
// Greeter.Hello {"name":N} -> {"msg":"Hello N"} over Go Micro's default
// HTTP transport, registered in the memory registry.
//
//	server --server_address=127.0.0.1:PORT --registry=memory
package main

import (
	"context"
	"fmt"
	"os"

	"go-micro.dev/v4"
	"go-micro.dev/v4/errors"
	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/util/cmd"
)

func init() {
	// go-micro v4.11.0 ships empty plugin maps in util/cmd.
	cmd.DefaultRegistries["memory"] = registry.NewMemoryRegistry
}

type HelloRequest struct {
	Name string `json:"name"`
}

type HelloResponse struct {
	Msg string `json:"msg"`
}

type Greeter struct{}

func (g *Greeter) Hello(ctx context.Context, req *HelloRequest, rsp *HelloResponse) error {
	if req.Name == "" {
		return errors.BadRequest("greeter", "name required")
	}
	rsp.Msg = "Hello " + req.Name
	return nil
}

func main() {
	logger.DefaultLogger = logger.NewLogger(logger.WithLevel(logger.ErrorLevel))
	var service micro.Service
	service = micro.NewService(
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
