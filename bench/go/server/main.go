// Command server is the Go Micro v4 greeter contender of bench/run.sh:
// Greeter.Hello {"name":N} -> {"msg":"Hello N"} over Go Micro's default
// HTTP transport, registered in the memory registry; and, for the streaming
// rows, Greeter.Stream: every {"name":N} on the stream is answered with
// {"msg":"Hello N"} until the client ends the stream.
//
//	server --server_address=127.0.0.1:PORT --registry=memory
package main

import (
	"context"
	"encoding/json"
	stderrors "errors"
	"fmt"
	"io"
	"os"

	"go-micro.dev/v4"
	"go-micro.dev/v4/codec/bytes"
	"go-micro.dev/v4/errors"
	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
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

// errEOS: Go Micro sends its end of stream (Micro-Error: EOS) itself only
// when the handler returns nil before the client's EOS; after it, an error
// whose text is "EOS" is the same message on the wire.
var errEOS = stderrors.New("EOS")

// Stream echoes. Each reply is encoded here and sent as a *bytes.Frame:
// Go Micro v4.11.0's stream.Send queues a message whose body aliases the
// codec's one write buffer, so replies sent faster than the connection
// is written overwrite each other (go-micro issue 2671); a Frame is sent
// as it is. The bytes are the JSON codec's (encoding/json + "\n").
func (g *Greeter) Stream(ctx context.Context, stream server.Stream) error {
	for {
		var req HelloRequest
		if err := stream.Recv(&req); err != nil {
			if err == io.EOF {
				return errEOS
			}
			return err
		}
		b, err := json.Marshal(&HelloResponse{Msg: "Hello " + req.Name})
		if err != nil {
			return err
		}
		if err := stream.Send(&bytes.Frame{Data: append(b, '\n')}); err != nil {
			return err
		}
	}
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
