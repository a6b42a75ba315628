// Command gostream is a Go Micro v4 stream client (the real client.Stream
// of go-micro.dev/v4 v4.11.0) for the interop tests. It opens one stream
// by address, sends the JSON requests read from stdin (one per line) and
// prints every reply as one JSON line on stdout.
//
//	gostream -address 127.0.0.1:PORT [-content_type CT] [-endpoint E]
//	         [-mode lockstep|drain|client] [-expect N] [-proto]
//	         [-wait 1s] [-timeout 10s] < requests
//
// Modes:
//
//	lockstep  for each request: Send, then Recv one reply; then Close.
//	drain     a goroutine sends every request without waiting; replies
//	          are received until the server's end of stream (io.EOF), an
//	          error, or -expect N replies; then Close.
//	client    client streaming as a Go Micro user would write it: send
//	          every request, CloseSend (Go's mucp client answers "streamer
//	          not implemented"), wait -wait for the final reply with a Recv,
//	          Close (EOS, then the connection is dropped), see what the
//	          pending Recv returns, Recv once more, and report all that as
//	          the last stdout line {"report":{closesend, before_close,
//	          close, pending_after_close, recv_after_close}}.
//
// -proto uses the protoc-gen-go types of greeter.proto (Request/Response)
// through greetermicro, the protoc-gen-micro-shaped client (Greeter.Stream
// only), for application/protobuf or JSON.
//
// Exit status: 0 success; 1 remote error (the Go Micro error JSON
// {"id","code","detail","status"} of errors.FromError on stdout); 2 usage
// or local error; 3 the -timeout passed.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"cmicro/interop/greetermicro"
	"cmicro/interop/pb/greeterpb"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/errors"
)

// msgStream is the part of client.Stream this program uses, so that the
// greetermicro typed stream and the generic one look the same.
type msgStream interface {
	Send(req map[string]interface{}) error
	Recv() (map[string]interface{}, error)
	CloseSend() error
	Close() error
}

type generic struct{ s client.Stream }

func (g generic) Send(req map[string]interface{}) error { return g.s.Send(req) }
func (g generic) Recv() (map[string]interface{}, error) {
	m := map[string]interface{}{}
	err := g.s.Recv(&m)
	return m, err
}
func (g generic) CloseSend() error { return g.s.CloseSend() }
func (g generic) Close() error     { return g.s.Close() }

type typed struct {
	s greetermicro.Greeter_StreamService
}

func (t typed) Send(req map[string]interface{}) error {
	name, _ := req["name"].(string)
	return t.s.Send(&greeterpb.Request{Name: name})
}
func (t typed) Recv() (map[string]interface{}, error) {
	r, err := t.s.Recv()
	if err != nil {
		return nil, err
	}
	return map[string]interface{}{"msg": r.Msg}, nil
}
func (t typed) CloseSend() error { return t.s.CloseSend() }
func (t typed) Close() error     { return t.s.Close() }

var outMu sync.Mutex

func printJSON(v interface{}) {
	b, _ := json.Marshal(v)
	outMu.Lock()
	fmt.Println(string(b))
	outMu.Unlock()
}

func remote(err error) {
	printJSON(errors.FromError(err))
	os.Exit(1)
}

func local(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "gostream: "+format+"\n", a...)
	os.Exit(2)
}

func main() {
	var (
		address     = flag.String("address", "", "server host:port (required)")
		contentType = flag.String("content_type", "application/json", "content type")
		service     = flag.String("service", "greeter", "service name")
		endpoint    = flag.String("endpoint", "Greeter.Stream", "endpoint Handler.Method")
		mode        = flag.String("mode", "lockstep", "lockstep | drain | client")
		expect      = flag.Int("expect", 0, "drain: stop after N replies (0: at end of stream)")
		useProto    = flag.Bool("proto", false, "greeter.proto types through greetermicro (Greeter.Stream)")
		wait        = flag.Duration("wait", time.Second, "client mode: how long to wait for the final reply")
		timeout     = flag.Duration("timeout", 10*time.Second, "give up (exit 3) after this long")
	)
	flag.Parse()
	if *address == "" {
		local("-address is required")
	}
	var reqs []map[string]interface{}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			local("stdin: not a JSON object: %s", line)
		}
		reqs = append(reqs, m)
	}
	time.AfterFunc(*timeout, func() {
		fmt.Fprintf(os.Stderr, "gostream: timed out after %v\n", *timeout)
		os.Exit(3)
	})

	c := client.NewClient(client.ContentType(*contentType))
	ctx := context.Background()
	opts := []client.CallOption{client.WithAddress(*address), client.WithRetries(0),
		client.WithRequestTimeout(*timeout)}
	var s msgStream
	if *useProto {
		if *endpoint != "Greeter.Stream" {
			local("-proto serves Greeter.Stream only")
		}
		ts, err := greetermicro.NewGreeterService(*service, c).Stream(ctx, opts...)
		if err != nil {
			remote(err)
		}
		s = typed{ts}
	} else {
		// The opening request's body is the placeholder Go Micro sends
		// first and the server discards.
		req := c.NewRequest(*service, *endpoint, map[string]interface{}{})
		gs, err := c.Stream(ctx, req, opts...)
		if err != nil {
			remote(err)
		}
		s = generic{gs}
	}

	switch *mode {
	case "lockstep":
		for _, r := range reqs {
			if err := s.Send(r); err != nil {
				remote(err)
			}
			rsp, err := s.Recv()
			if err != nil {
				remote(err)
			}
			printJSON(rsp)
		}
		s.Close()
	case "drain":
		go func() {
			for _, r := range reqs {
				if err := s.Send(r); err != nil {
					fmt.Fprintln(os.Stderr, "gostream: send:", err)
					return
				}
			}
		}()
		for n := 0; *expect == 0 || n < *expect; n++ {
			rsp, err := s.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				remote(err)
			}
			printJSON(rsp)
		}
		s.Close()
	case "client":
		for _, r := range reqs {
			if err := s.Send(r); err != nil {
				remote(err)
			}
		}
		report := map[string]interface{}{}
		if err := s.CloseSend(); err != nil {
			report["closesend"] = err.Error()
		} else {
			report["closesend"] = nil
		}
		type recvd struct {
			rsp map[string]interface{}
			err error
		}
		ch := make(chan recvd, 1)
		go func() {
			rsp, err := s.Recv()
			ch <- recvd{rsp, err}
		}()
		var got *recvd
		select {
		case r := <-ch:
			got = &r
			report["before_close"] = describe(r.rsp, r.err)
		case <-time.After(*wait):
			report["before_close"] = "nothing within " + wait.String()
		}
		report["close"] = errString(s.Close())
		if got == nil {
			// Close wrote EOS and then closed the socket: the Recv that
			// was pending meanwhile either fails or, when the server's
			// reply to the EOS wins that race, returns the reply.
			select {
			case r := <-ch:
				report["pending_after_close"] = describe(r.rsp, r.err)
			case <-time.After(*wait):
				report["pending_after_close"] = "nothing within " + wait.String()
			}
		}
		rsp, err := s.Recv()
		report["recv_after_close"] = describe(rsp, err)
		printJSON(map[string]interface{}{"report": report})
	default:
		local("unknown -mode %q", *mode)
	}
}

func errString(err error) interface{} {
	if err == nil {
		return nil
	}
	return err.Error()
}

func describe(rsp map[string]interface{}, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	b, _ := json.Marshal(rsp)
	return "reply: " + string(b)
}
