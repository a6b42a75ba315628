// Package greetermicro is the Go Micro v4 client and server glue for
// examples/greeter-proto/greeter.proto, written by hand in the shape
// protoc-gen-micro (go-micro/generator, v4) generates, because no
// protoc-gen-micro can be installed here (the Go module proxy refuses
// github.com/go-micro/generator). The messages are protoc-gen-go's, in
// ../pb/greeterpb. gen.sh does not touch this file.
package greetermicro

import (
	"context"

	"cmicro/interop/pb/greeterpb"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/server"
)

// ---------------------------------------------------------------- client

// GreeterService is the client API of service Greeter.
type GreeterService interface {
	Hello(ctx context.Context, in *greeterpb.Request, opts ...client.CallOption) (*greeterpb.Response, error)
	Stream(ctx context.Context, opts ...client.CallOption) (Greeter_StreamService, error)
}

type greeterService struct {
	c    client.Client
	name string
}

// NewGreeterService calls service name (the registry name) through c.
func NewGreeterService(name string, c client.Client) GreeterService {
	return &greeterService{c: c, name: name}
}

func (c *greeterService) Hello(ctx context.Context, in *greeterpb.Request, opts ...client.CallOption) (*greeterpb.Response, error) {
	req := c.c.NewRequest(c.name, "Greeter.Hello", in)
	out := new(greeterpb.Response)
	if err := c.c.Call(ctx, req, out, opts...); err != nil {
		return nil, err
	}
	return out, nil
}

// Stream opens Greeter.Stream. As protoc-gen-micro does, the opening
// request is an empty Request: Go Micro sends it as the stream's first
// message, which the server discards.
func (c *greeterService) Stream(ctx context.Context, opts ...client.CallOption) (Greeter_StreamService, error) {
	req := c.c.NewRequest(c.name, "Greeter.Stream", &greeterpb.Request{})
	stream, err := c.c.Stream(ctx, req, opts...)
	if err != nil {
		return nil, err
	}
	return &greeterServiceStream{stream}, nil
}

// Greeter_StreamService is the client end of Greeter.Stream.
type Greeter_StreamService interface {
	Context() context.Context
	SendMsg(interface{}) error
	RecvMsg(interface{}) error
	CloseSend() error
	Close() error
	Send(*greeterpb.Request) error
	Recv() (*greeterpb.Response, error)
}

type greeterServiceStream struct {
	stream client.Stream
}

func (x *greeterServiceStream) CloseSend() error                { return x.stream.CloseSend() }
func (x *greeterServiceStream) Close() error                    { return x.stream.Close() }
func (x *greeterServiceStream) Context() context.Context        { return x.stream.Context() }
func (x *greeterServiceStream) SendMsg(m interface{}) error     { return x.stream.Send(m) }
func (x *greeterServiceStream) RecvMsg(m interface{}) error     { return x.stream.Recv(m) }
func (x *greeterServiceStream) Send(m *greeterpb.Request) error { return x.stream.Send(m) }

func (x *greeterServiceStream) Recv() (*greeterpb.Response, error) {
	m := new(greeterpb.Response)
	if err := x.stream.Recv(m); err != nil {
		return nil, err
	}
	return m, nil
}

// ---------------------------------------------------------------- server

// GreeterHandler is the server API of service Greeter.
type GreeterHandler interface {
	Hello(context.Context, *greeterpb.Request, *greeterpb.Response) error
	Stream(context.Context, Greeter_StreamStream) error
}

// RegisterGreeterHandler registers hdlr under the handler name "Greeter"
// (endpoints Greeter.Hello and Greeter.Stream).
func RegisterGreeterHandler(s server.Server, hdlr GreeterHandler, opts ...server.HandlerOption) error {
	type greeter interface {
		Hello(ctx context.Context, in *greeterpb.Request, out *greeterpb.Response) error
		Stream(ctx context.Context, stream server.Stream) error
	}
	type Greeter struct {
		greeter
	}
	h := &greeterHandler{hdlr}
	return s.Handle(s.NewHandler(&Greeter{h}, opts...))
}

type greeterHandler struct {
	GreeterHandler
}

func (h *greeterHandler) Hello(ctx context.Context, in *greeterpb.Request, out *greeterpb.Response) error {
	return h.GreeterHandler.Hello(ctx, in, out)
}

func (h *greeterHandler) Stream(ctx context.Context, stream server.Stream) error {
	return h.GreeterHandler.Stream(ctx, &greeterStreamStream{stream})
}

// Greeter_StreamStream is the server end of Greeter.Stream.
type Greeter_StreamStream interface {
	Context() context.Context
	SendMsg(interface{}) error
	RecvMsg(interface{}) error
	Close() error
	Send(*greeterpb.Response) error
	Recv() (*greeterpb.Request, error)
}

type greeterStreamStream struct {
	stream server.Stream
}

func (x *greeterStreamStream) Close() error                     { return x.stream.Close() }
func (x *greeterStreamStream) Context() context.Context         { return x.stream.Context() }
func (x *greeterStreamStream) SendMsg(m interface{}) error      { return x.stream.Send(m) }
func (x *greeterStreamStream) RecvMsg(m interface{}) error      { return x.stream.Recv(m) }
func (x *greeterStreamStream) Send(m *greeterpb.Response) error { return x.stream.Send(m) }

func (x *greeterStreamStream) Recv() (*greeterpb.Request, error) {
	m := new(greeterpb.Request)
	if err := x.stream.Recv(m); err != nil {
		return nil, err
	}
	return m, nil
}
