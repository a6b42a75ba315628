// Command gomicrogrpc is Go Micro v4 with its gRPC plugins
// (github.com/go-micro/plugins/v4/server/grpc v1.2.0, client/grpc v1.2.1)
// on Go Micro's default registry (mDNS), for greeter.proto:
//
//	gomicrogrpc -mode server --server_address=127.0.0.1:PORT
//	    the greeter service: Greeter.Hello ({name:""} -> 400 "name
//	    required") and the bidirectional Greeter.Stream; prints
//	    "gomicrogrpc listening on ADDR"
//	gomicrogrpc -mode client -name John
//	    calls greeter Greeter.Hello by name through the registry with the
//	    gRPC client; prints the reply as JSON, or the error's
//	    {"id","code","detail","status"} and exits 1
//	gomicrogrpc -mode stream -name a,b,c
//	    Greeter.Stream by name: sends each name, CloseSend, prints every
//	    reply's msg (one a line) until io.EOF; an error as above
package main

import (
	"cmicro/interop/internal/stopctx"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"cmicro/interop/greetermicro"
	"cmicro/interop/pb/greeterpb"

	grpcc "github.com/go-micro/plugins/v4/client/grpc"
	grpcs "github.com/go-micro/plugins/v4/server/grpc"
	"go-micro.dev/v4"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/errors"
)

type greeter struct{}

func (greeter) Hello(ctx context.Context, req *greeterpb.Request, rsp *greeterpb.Response) error {
	if req.Name == "" {
		return errors.BadRequest("greeter", "name required")
	}
	rsp.Msg = "Hello " + req.Name
	return nil
}

func (greeter) Stream(ctx context.Context, s greetermicro.Greeter_StreamStream) error {
	for {
		req, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&greeterpb.Response{Msg: "Hello " + req.Name}); err != nil {
			return err
		}
	}
}

func main() {
	mode := "server"
	name := "John"
	// Go Micro parses the flags it knows; take ours out first.
	var rest []string
	for i := 0; i < len(os.Args); i++ {
		a := os.Args[i]
		switch {
		case a == "-mode" && i+1 < len(os.Args):
			mode = os.Args[i+1]
			i++
		case a == "-name" && i+1 < len(os.Args):
			name = os.Args[i+1]
			i++
		default:
			rest = append(rest, a)
		}
	}
	os.Args = rest
	flag.CommandLine = flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	if mode == "stream" {
		svc := greetermicro.NewGreeterService("greeter", grpcc.NewClient())
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		st, err := svc.Stream(ctx)
		fail := func(err error) {
			b, _ := json.Marshal(errors.FromError(err))
			fmt.Println(string(b))
			os.Exit(1)
		}
		if err != nil {
			fail(err)
		}
		for _, n := range strings.Split(name, ",") {
			if err := st.Send(&greeterpb.Request{Name: n}); err != nil {
				fail(err)
			}
		}
		st.CloseSend()
		for {
			rsp, err := st.Recv()
			if err == io.EOF {
				return
			}
			if err != nil {
				fail(err)
			}
			fmt.Println(rsp.Msg)
		}
	}
	if mode == "client" {
		c := grpcc.NewClient()
		req := c.NewRequest("greeter", "Greeter.Hello", &greeterpb.Request{Name: name})
		rsp := &greeterpb.Response{}
		err := c.Call(context.Background(), req, rsp, client.WithRequestTimeout(10*time.Second))
		if err != nil {
			e := errors.FromError(err)
			b, _ := json.Marshal(e)
			fmt.Println(string(b))
			os.Exit(1)
		}
		b, _ := json.Marshal(map[string]string{"msg": rsp.Msg})
		fmt.Println(string(b))
		return
	}
	var service micro.Service
	service = micro.NewService(
		micro.Context(stopctx.New()),
		micro.Server(grpcs.NewServer()),
		micro.Name("greeter"),
		micro.AfterStart(func() error {
			fmt.Printf("gomicrogrpc listening on %s\n", service.Server().Options().Address)
			os.Stdout.Sync()
			return nil
		}),
	)
	service.Init()
	if err := greetermicro.RegisterGreeterHandler(service.Server(), greeter{}); err != nil {
		fmt.Fprintln(os.Stderr, "register:", err)
		os.Exit(2)
	}
	if err := service.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		os.Exit(1)
	}
}
