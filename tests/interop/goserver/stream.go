package main

import (
	"context"
	stderrors "errors"
	"io"

	"cmicro/interop/streamsend"

	"go-micro.dev/v4/errors"
	"go-micro.dev/v4/server"
)

// Every reply goes through streamsend.Send: plain stream.Send corrupts
// replies sent back to back (Go Micro v4 issue 2671; see streamsend and
// ServerStreamNaive).

// errEOS ends a stream cleanly from a handler. Go Micro's router sends
// its own EOS (Micro-Error: EOS) only when the handler returns nil AND the
// stream has not seen io.EOF; once a handler's Recv has returned io.EOF
// (the client's EOS arrived), returning nil sends NOTHING: Go assumes the
// client has gone (its Close sends EOS and drops the connection). A client
// that half-closes and keeps reading (cmicro) would then wait forever, so
// these handlers return an error whose text is "EOS", which serveReq
// writes as Micro-Error: EOS: exactly the message the router would send.
var errEOS = stderrors.New("EOS")

// StreamRequest is what the bidirectional endpoints receive.
type StreamRequest struct {
	Name   string `json:"name"`
	Count  int    `json:"count,omitempty"`
	Fail   int32  `json:"fail,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// StreamReply is one reply of Stream / ServerStream.
type StreamReply struct {
	Msg string `json:"msg"`
}

// CountedReply is one reply of ServerStream.
type CountedReply struct {
	Msg string `json:"msg"`
	N   int    `json:"n"`
}

// SumRequest is one message of Sum.
type SumRequest struct {
	N int64 `json:"n"`
}

// SumReply is Sum's single reply.
type SumReply struct {
	Sum   int64 `json:"sum"`
	Count int   `json:"count"`
}

// Stream (bidirectional): {"name":X} -> {"msg":"Hello X"} until the
// client ends its side; then EOS.
func (g *Greeter) Stream(ctx context.Context, stream server.Stream) error {
	for {
		var req StreamRequest
		if err := stream.Recv(&req); err != nil {
			if err == io.EOF {
				return errEOS
			}
			return err
		}
		if err := streamsend.Send(stream, &StreamReply{Msg: "Hello " + req.Name}); err != nil {
			return err
		}
	}
}

// ServerStream: the first real message {"name":X,"count":N} is answered
// with N messages {"msg":"Hello X","n":i}, then EOS (the router's own:
// this handler returns nil without having seen io.EOF).
func (g *Greeter) ServerStream(ctx context.Context, stream server.Stream) error {
	var req StreamRequest
	if err := stream.Recv(&req); err != nil {
		if err == io.EOF {
			return errEOS
		}
		return err
	}
	for i := 0; i < req.Count; i++ {
		if err := streamsend.Send(stream, &CountedReply{Msg: "Hello " + req.Name, N: i}); err != nil {
			return err
		}
	}
	return nil
}

// Sum (client streaming): {"n":k}... until the client's EOS, then
// {"sum":S,"count":C} and EOS. Reachable only by a client that half-closes
// and keeps reading (cmicro); Go's own client cannot (CloseSend is not
// implemented on mucp, Close drops the connection).
func (g *Greeter) Sum(ctx context.Context, stream server.Stream) error {
	var sum int64
	count := 0
	for {
		var req SumRequest
		if err := stream.Recv(&req); err != nil {
			if err != io.EOF {
				return err
			}
			break
		}
		sum += req.N
		count++
	}
	if err := streamsend.Send(stream, &SumReply{Sum: sum, Count: count}); err != nil {
		return err
	}
	return errEOS
}

// SumNil is Sum written the way Go Micro's examples end a handler: return
// nil after io.EOF. The router then sends nothing after the reply (no
// EOS) and the connection stays open: the interop tests document this.
func (g *Greeter) SumNil(ctx context.Context, stream server.Stream) error {
	var sum int64
	count := 0
	for {
		var req SumRequest
		if err := stream.Recv(&req); err != nil {
			if err != io.EOF {
				return err
			}
			break
		}
		sum += req.N
		count++
	}
	return streamsend.Send(stream, &SumReply{Sum: sum, Count: count})
}

// StreamFail (bidirectional): {"name":X} -> {"msg":"Hello X"};
// {"fail":CODE,"detail":"D"} ends the stream with the Go Micro error
// {id "greeter", code CODE, detail D}.
func (g *Greeter) StreamFail(ctx context.Context, stream server.Stream) error {
	for {
		var req StreamRequest
		if err := stream.Recv(&req); err != nil {
			if err == io.EOF {
				return errEOS
			}
			return err
		}
		if req.Fail != 0 {
			return errors.New("greeter", req.Detail, req.Fail)
		}
		if err := streamsend.Send(stream, &StreamReply{Msg: "Hello " + req.Name}); err != nil {
			return err
		}
	}
}

// ServerStreamNaive is ServerStream with plain stream.Send, to show Go
// Micro v4's buffer aliasing (see streamsend): replies sent in a row
// arrive as copies of later ones.
func (g *Greeter) ServerStreamNaive(ctx context.Context, stream server.Stream) error {
	var req StreamRequest
	if err := stream.Recv(&req); err != nil {
		return err
	}
	for i := 0; i < req.Count; i++ {
		if err := stream.Send(&CountedReply{Msg: "Hello " + req.Name, N: i}); err != nil {
			return err
		}
	}
	return nil
}
