// Protobuf interop: a Go Micro v4 client with protoc-gen-go types against
// the C greeter built from generated stubs (greeter-proto-server), and the
// C generated client (greeter-proto-client) against a Go Micro v4 proto
// greeter (goprotoserver), for every content type Go Micro registers for
// protobuf messages.
package interop

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cmicro/interop/pb/greeterpb"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/errors"
)

var (
	protoOnce   sync.Once
	goProtoSrv  string
	protoBuildE error
)

// goProtoServer builds ./goprotoserver once.
func goProtoServer(t *testing.T) string {
	t.Helper()
	protoOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cmicro-protoserver-")
		if err != nil {
			protoBuildE = err
			return
		}
		goProtoSrv = filepath.Join(dir, "goprotoserver")
		cmd := exec.Command(goTool(), "build", "-o", goProtoSrv, "./goprotoserver")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		protoBuildE = cmd.Run()
	})
	if protoBuildE != nil {
		t.Fatalf("go build ./goprotoserver: %v", protoBuildE)
	}
	return goProtoSrv
}

// cProto returns a C proto binary from CMICRO_BIN_DIR (skips in goOnly).
func cProto(t *testing.T, name string) string {
	t.Helper()
	need(t)
	if goOnly {
		t.Skip("INTEROP_GO_ONLY: no C proto binaries")
	}
	p := filepath.Join(binDir, name)
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		t.Fatalf("%s missing (build the greeter-proto example)", p)
	}
	return p
}

// The content types Go Micro v4 serves protobuf messages with.
var protoTypes = []string{
	"application/protobuf",
	"application/proto-rpc",
	"application/grpc",
	"application/grpc+proto",
	"application/grpc+json",
	"application/json",
	"application/json-rpc",
}

func goProtoCall(addr, ct, name string) (*greeterpb.Response, error) {
	c := client.NewClient(client.ContentType(ct))
	req := c.NewRequest("greeter", "Greeter.Hello", &greeterpb.Request{Name: name})
	rsp := &greeterpb.Response{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.Call(ctx, req, rsp, client.WithAddress(addr), client.WithRetries(0))
	return rsp, err
}

func checkProtoReply(t *testing.T, what string, rsp *greeterpb.Response, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if rsp.Msg != "Hello John" {
		t.Errorf("%s: msg %q, want %q", what, rsp.Msg, "Hello John")
	}
}

func checkProtoError(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error for an empty name", what)
		return
	}
	e := errors.FromError(err)
	if e.Code != 400 || e.Id != "greeter" || e.Detail != "name required" {
		t.Errorf("%s: error %+v, want greeter 400 name required", what, e)
	}
}

// Go Micro client (protoc-gen-go types) -> C generated-stub greeter.
func TestProtoGoClientCallsCProtoGreeter(t *testing.T) {
	srv := startServer(t, cProto(t, "greeter-proto-server"))
	for _, ct := range protoTypes {
		rsp, err := goProtoCall(srv.addr, ct, "John")
		checkProtoReply(t, "Go client -> C greeter, "+ct, rsp, err)
		_, err = goProtoCall(srv.addr, ct, "")
		checkProtoError(t, "Go client -> C greeter (error), "+ct, err)
	}
}

// C generated client -> Go Micro proto greeter, synchronous and async.
func TestProtoCClientCallsGoProtoGreeter(t *testing.T) {
	cli := cProto(t, "greeter-proto-client")
	srv := startServer(t, goProtoServer(t))
	for _, ct := range protoTypes {
		for _, mode := range []string{"sync", "async"} {
			args := []string{"--address=" + srv.addr, "--content_type=" + ct, "--name=John"}
			if mode == "async" {
				args = append(args, "--async")
			}
			r := run(t, 20*time.Second, cli, args...)
			if r.code != 0 || strings.TrimSpace(r.stdout) != "Hello John" {
				t.Errorf("C client (%s) -> Go greeter, %s: exit %d, stdout %q, stderr %q",
					mode, ct, r.code, r.stdout, r.stderr)
			}
		}
		r := run(t, 20*time.Second, cli, "--address="+srv.addr, "--content_type="+ct, "--name=")
		if r.code == 0 || !strings.Contains(r.stderr, `"code":400`) || !strings.Contains(r.stderr, "name required") {
			t.Errorf("C client -> Go greeter (error), %s: exit %d, stderr %q", ct, r.code, r.stderr)
		}
	}
}

// The reference: Go Micro client -> Go Micro proto server, same content types.
func TestProtoGoClientCallsGoProtoGreeter(t *testing.T) {
	need(t)
	srv := startServer(t, goProtoServer(t))
	for _, ct := range protoTypes {
		rsp, err := goProtoCall(srv.addr, ct, "John")
		checkProtoReply(t, "Go client -> Go greeter, "+ct, rsp, err)
		_, err = goProtoCall(srv.addr, ct, "")
		checkProtoError(t, "Go client -> Go greeter (error), "+ct, err)
	}
}
