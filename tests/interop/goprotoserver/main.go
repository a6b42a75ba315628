// Command goprotoserver is a real Go Micro v4 greeter whose handler uses
// protoc-gen-go types (pb/greeterpb, from examples/greeter-proto/greeter.proto),
// the peer of the C generated-stub greeter in the protobuf interop tests.
// It is registered through greetermicro (protoc-gen-micro's shape, by
// hand): Greeter.Hello and the bidirectional Greeter.Stream.
//
//	goprotoserver --server_address=127.0.0.1:PORT --registry=memory
package main

import (
	"cmicro/interop/internal/stopctx"
	"context"
	stderrors "errors"
	"fmt"
	"io"
	"os"

	"cmicro/interop/greetermicro"
	"cmicro/interop/pb/greeterpb"
	"cmicro/interop/streamsend"

	"go-micro.dev/v4"
	"go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/util/cmd"
)

func init() {
	cmd.DefaultRegistries["memory"] = registry.NewMemoryRegistry
}

// Greeter implements greetermicro.GreeterHandler.
type Greeter struct{}

func (g *Greeter) Hello(ctx context.Context, req *greeterpb.Request, rsp *greeterpb.Response) error {
	if req.Name == "" {
		return errors.BadRequest("greeter", "name required")
	}
	rsp.Msg = "Hello " + req.Name
	return nil
}

// errEOS: see goserver/stream.go. Returning nil after Recv gave io.EOF
// would send nothing; an error whose text is "EOS" is Go Micro's own end
// of stream on the wire.
var errEOS = stderrors.New("EOS")

// Stream answers each Request {name: X} with Response {msg: "Hello X"}
// until the client ends its side, then ends the stream (EOS).
func (g *Greeter) Stream(ctx context.Context, stream greetermicro.Greeter_StreamStream) error {
	ct, _ := metadata.Get(ctx, "Content-Type")
	for {
		req, err := stream.Recv()
		if err != nil {
			if err == io.EOF {
				return errEOS
			}
			return err
		}
		// Not stream.Send: Go Micro v4 corrupts replies sent back to
		// back (streamsend explains); SendMsg of a pre-encoded frame.
		f, err := streamsend.Frame(ct, &greeterpb.Response{Msg: "Hello " + req.Name})
		if err != nil {
			return err
		}
		if err := stream.SendMsg(f); err != nil {
			return err
		}
	}
}

func main() {
	var service micro.Service
	service = micro.NewService(
		micro.Context(stopctx.New()),
		micro.Name("greeter"),
		micro.AfterStart(func() error {
			fmt.Fprintf(os.Stdout, "goprotoserver listening on %s\n", service.Server().Options().Address)
			os.Stdout.Sync()
			return nil
		}),
	)
	service.Init()
	if err := greetermicro.RegisterGreeterHandler(service.Server(), new(Greeter)); err != nil {
		fmt.Fprintln(os.Stderr, "register handler:", err)
		os.Exit(2)
	}
	if err := service.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		os.Exit(1)
	}
}
