// gRPC interop: a stock grpc-go client (google.golang.org/grpc, the
// version Go Micro's gRPC plugins resolve with go-micro v4.11.0) calls the
// C services started with --server=grpc: greeter-proto-server for unary
// Hello and bidirectional Stream with protobuf, greeter-server (JSON
// handlers) through application/grpc+json for errors, metadata and
// deadlines. No stubs are generated: the calls go through
// ClientConn.Invoke / NewStream with the method paths a
// protoc-gen-go-grpc stub would use.
package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cmicro/interop/pb/greeterpb"

	"go-micro.dev/v4/registry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// rawJSON is a grpc-go codec named "json" (content type
// application/grpc+json) that passes JSON bytes through.
type rawJSON struct{}

func (rawJSON) Marshal(v interface{}) ([]byte, error) {
	switch m := v.(type) {
	case *[]byte:
		return *m, nil
	case []byte:
		return m, nil
	}
	return json.Marshal(v)
}

func (rawJSON) Unmarshal(data []byte, v interface{}) error {
	if b, ok := v.(*[]byte); ok {
		*b = append((*b)[:0], data...)
		return nil
	}
	return json.Unmarshal(data, v)
}

func (rawJSON) Name() string { return "json" }

func init() { encoding.RegisterCodec(rawJSON{}) }

func grpcDial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.Dial(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.Dial %s: %v", addr, err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func startGRPC(t *testing.T, name string) *server {
	t.Helper()
	return startServerArgs(t, cProto(t, name), "--registry=memory", "--server=grpc")
}

var bidi = &grpc.StreamDesc{StreamName: "Stream", ServerStreams: true, ClientStreams: true}

// grpc-go -> greeter-proto-server --server=grpc: unary Hello on every path
// form Go Micro's server accepts, and the error of a C handler.
func TestGRPCGoClientUnary(t *testing.T) {
	srv := startGRPC(t, "greeter-proto-server")
	cc := grpcDial(t, srv.addr)
	for _, path := range []string{"/greeter.Greeter/Hello", "/Greeter/Hello", "/a.b.c.Greeter/Hello"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rsp := &greeterpb.Response{}
		err := cc.Invoke(ctx, path, &greeterpb.Request{Name: "John"}, rsp)
		cancel()
		if err != nil || rsp.Msg != "Hello John" {
			t.Errorf("%s: %v %q", path, err, rsp.Msg)
		}
	}
	// A C handler's error: 400 -> InvalidArgument, the micro error JSON as
	// the message.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := cc.Invoke(ctx, "/greeter.Greeter/Hello", &greeterpb.Request{}, &greeterpb.Response{})
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), `"code":400`) ||
		!strings.Contains(st.Message(), "name required") {
		t.Errorf("empty name: %v, want InvalidArgument with the micro error", err)
	}
	// The detail: one Any, type.googleapis.com/errors.Error.
	p := st.Proto()
	if len(p.Details) != 1 || p.Details[0].TypeUrl != "type.googleapis.com/errors.Error" {
		t.Errorf("details %v, want one errors.Error", p.Details)
	}
	// Unknown method / service and a malformed path: Unimplemented.
	for _, path := range []string{"/greeter.Greeter/Nope", "/greeter.Nope/Hello", "/Greeter.Hello"} {
		err := cc.Invoke(ctx, path, &greeterpb.Request{Name: "x"}, &greeterpb.Response{})
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("%s: %v, want Unimplemented", path, err)
		}
	}
	// Still serving afterwards.
	rsp := &greeterpb.Response{}
	if err := cc.Invoke(ctx, "/greeter.Greeter/Hello", &greeterpb.Request{Name: "Jane"}, rsp); err != nil || rsp.Msg != "Hello Jane" {
		t.Errorf("after errors: %v %q", err, rsp.Msg)
	}
}

// grpc-go bidi Stream: the first message is answered (not discarded),
// CloseSend reaches the handler, then io.EOF.
func TestGRPCGoClientBidiStream(t *testing.T) {
	srv := startGRPC(t, "greeter-proto-server")
	cc := grpcDial(t, srv.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bidiHellos(t, cc, "a", "b", "c", "d", "e")
	// Pipelined: send all, close, then read all.
	s2, err := cc.NewStream(ctx, bidi, "/greeter.Greeter/Stream")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := s2.SendMsg(&greeterpb.Request{Name: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	s2.CloseSend()
	for i := 0; i < 100; i++ {
		rsp := &greeterpb.Response{}
		if err := s2.RecvMsg(rsp); err != nil || rsp.Msg != fmt.Sprintf("Hello %d", i) {
			t.Fatalf("pipelined %d: %v %q", i, err, rsp.Msg)
		}
	}
	if err := s2.RecvMsg(&greeterpb.Response{}); err != io.EOF {
		t.Fatalf("pipelined end: %v", err)
	}
	// A handler error ends the stream with InvalidArgument.
	s3, err := cc.NewStream(ctx, bidi, "/greeter.Greeter/Stream")
	if err != nil {
		t.Fatal(err)
	}
	s3.SendMsg(&greeterpb.Request{})
	err = s3.RecvMsg(&greeterpb.Response{})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("stream error: %v, want InvalidArgument", err)
	}
	// Many concurrent streams on the one connection.
	done := make(chan error, 50)
	for i := 0; i < 50; i++ {
		go func(i int) {
			st, err := cc.NewStream(ctx, bidi, "/greeter.Greeter/Stream")
			if err != nil {
				done <- err
				return
			}
			for j := 0; j < 10; j++ {
				n := fmt.Sprintf("%d-%d", i, j)
				if err := st.SendMsg(&greeterpb.Request{Name: n}); err != nil {
					done <- err
					return
				}
				rsp := &greeterpb.Response{}
				if err := st.RecvMsg(rsp); err != nil || rsp.Msg != "Hello "+n {
					done <- fmt.Errorf("%s: %v %q", n, err, rsp.Msg)
					return
				}
			}
			st.CloseSend()
			if err := st.RecvMsg(&greeterpb.Response{}); err != io.EOF {
				done <- fmt.Errorf("end %d: %v", i, err)
				return
			}
			done <- nil
		}(i)
	}
	for i := 0; i < 50; i++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// grpc-go with application/grpc+json against the JSON greeter-server:
// error codes of C handlers both ways of Go Micro's mapping, metadata, and
// deadlines (grpc-timeout and Go Micro's `timeout` metadata).
func TestGRPCGoClientJSONErrorsMetadataDeadline(t *testing.T) {
	srv := startServerArgs(t, cProto(t, "greeter-server"), "--registry=memory", "--server=grpc")
	cc := grpcDial(t, srv.addr)
	call := func(ctx context.Context, ep, body string) ([]byte, error) {
		out := []byte{}
		in := []byte(body)
		err := cc.Invoke(ctx, "/greeter.Greeter/"+ep, &in, &out, grpc.CallContentSubtype("json"))
		return out, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := call(ctx, "Hello", `{"name":"John"}`)
	if err != nil || !strings.Contains(string(out), "Hello John") {
		t.Fatalf("json Hello: %v %s", err, out)
	}
	want := map[int]codes.Code{400: codes.InvalidArgument, 401: codes.Unauthenticated,
		403: codes.PermissionDenied, 404: codes.NotFound, 408: codes.DeadlineExceeded,
		409: codes.AlreadyExists, 412: codes.FailedPrecondition, 500: codes.Internal,
		501: codes.Unimplemented, 503: codes.Unavailable, 418: codes.Unknown}
	for code, c := range want {
		_, err := call(ctx, "Fail", fmt.Sprintf(`{"code":%d,"detail":"d%d"}`, code, code))
		st, _ := status.FromError(err)
		if st.Code() != c || !strings.Contains(st.Message(), fmt.Sprintf(`"detail":"d%d"`, code)) {
			t.Errorf("Fail %d: %v, want %v", code, err, c)
		}
	}
	// Metadata both ways: the handler reads x-foo.
	mctx := metadata.AppendToOutgoingContext(ctx, "x-foo", "bar")
	out, err = call(mctx, "Meta", `{"key":"X-Foo"}`)
	if err != nil || !strings.Contains(string(out), `"bar"`) {
		t.Errorf("Meta: %v %s", err, out)
	}
	// Go Micro's `timeout` metadata (ns): headers now, the message after
	// the deadline: the server answers DeadlineExceeded itself.
	tctx := metadata.AppendToOutgoingContext(ctx, "timeout", "200000000")
	s, err := cc.NewStream(tctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true},
		"/greeter.Greeter/Hello", grpc.CallContentSubtype("json"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	in := []byte(`{"name":"late"}`)
	s.SendMsg(&in)
	s.CloseSend()
	var o []byte
	err = s.RecvMsg(&o)
	st, _ := status.FromError(err)
	if st.Code() != codes.DeadlineExceeded || !strings.Contains(st.Message(), "408") {
		t.Errorf("late request: %v, want the server's DeadlineExceeded", err)
	}
	// grpc-timeout shorter than the handler: DeadlineExceeded.
	dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = call(dctx, "Slow", `{"ms":3000}`)
	dcancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("Slow: %v, want DeadlineExceeded", err)
	}
	// An unknown method: Unimplemented "unknown service".
	_, err = call(ctx, "Nope", `{}`)
	if st, _ := status.FromError(err); st.Code() != codes.Unimplemented ||
		!strings.Contains(st.Message(), "unknown service Greeter.Nope") {
		t.Errorf("Nope: %v", err)
	}
}

var (
	goBuiltMu sync.Mutex
	goBuilt   = map[string]string{}
)

// goBuild builds the package ./pkg of this module once per test binary.
func goBuild(t *testing.T, pkg string) string {
	t.Helper()
	goBuiltMu.Lock()
	defer goBuiltMu.Unlock()
	if p, ok := goBuilt[pkg]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "cmicro-"+pkg+"-")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, pkg)
	cmd := exec.Command(goTool(), "build", "-o", p, "./"+pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build ./%s: %v", pkg, err)
	}
	goBuilt[pkg] = p
	return p
}

// runIn runs bin with stdin.
func runIn(t *testing.T, stdin string, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ctx.Err() != nil {
		t.Fatalf("%s %q timed out\nstdout: %s\nstderr: %s", filepath.Base(bin), args, r.stdout, r.stderr)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	return r
}

// The C client (--client=grpc) -> a stock grpc-go server: unary with JSON
// (application/grpc+json) and with protobuf (the generated C stub,
// application/grpc+proto), errors mapped back to Go Micro codes, and bidi
// streams.
func TestGRPCCClientCallsGRPCGoServer(t *testing.T) {
	need(t)
	if goOnly {
		t.Skip("INTEROP_GO_ONLY: no C client")
	}
	srv := startServerArgs(t, goBuild(t, "grpcserver"))
	r := run(t, 30*time.Second, cMicro, "call", "--client=grpc", "--address="+srv.addr,
		"greeter", "Greeter.Hello", `{"name":"John"}`)
	if r.code != 0 || !strings.Contains(r.stdout, `"Hello John"`) {
		t.Errorf("cmicro call: %+v", r)
	}
	r = run(t, 30*time.Second, cMicro, "call", "--client=grpc", "--address="+srv.addr,
		"greeter", "Greeter.Hello", `{"name":"conflict"}`)
	if r.code != 1 || !strings.Contains(r.stdout, `"code":409`) || !strings.Contains(r.stdout, "already there") {
		t.Errorf("AlreadyExists -> 409: %+v", r)
	}
	// The CLI's own name for it: --protocol=grpc with --address.
	r = run(t, 30*time.Second, cMicro, "call", "--protocol=grpc", "--address", srv.addr,
		"greeter", "Greeter.Hello", `{"name":"Proto"}`)
	if r.code != 0 || !strings.Contains(r.stdout, `"Hello Proto"`) {
		t.Errorf("cmicro call --protocol=grpc: %+v", r)
	}
	r = runIn(t, "{\"name\":\"p\"}\n", cMicro, "stream", "--protocol", "grpc",
		"--address="+srv.addr, "greeter", "Greeter.Stream")
	if r.code != 0 || r.stdout != "{\"msg\":\"Hello p\"}\n" {
		t.Errorf("cmicro stream --protocol grpc: %+v", r)
	}
	cli := cProto(t, "greeter-proto-client")
	r = run(t, 30*time.Second, cli, "--client=grpc", "--address="+srv.addr, "--name", "Jo")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "Hello Jo" {
		t.Errorf("greeter-proto-client: %+v", r)
	}
	r = run(t, 30*time.Second, cli, "--client=grpc", "--address="+srv.addr, "--name", "")
	if r.code != 1 || !strings.Contains(r.stderr, `"code":400`) || !strings.Contains(r.stderr, "name required") {
		t.Errorf("InvalidArgument -> 400: %+v", r)
	}
	r = run(t, 30*time.Second, cli, "--client=grpc", "--address="+srv.addr, "--stream", "a", "b", "c")
	if r.code != 0 || r.stdout != "Hello a\nHello b\nHello c\n" {
		t.Errorf("proto bidi: %+v", r)
	}
	r = runIn(t, "{\"name\":\"x\"}\n{\"name\":\"y\"}\n{\"name\":\"\"}\n", cMicro, "stream", "--client=grpc",
		"--address="+srv.addr, "greeter", "Greeter.Stream")
	if r.code != 1 || !strings.Contains(r.stdout, `{"msg":"Hello x"}`) ||
		!strings.Contains(r.stdout, `{"msg":"Hello y"}`) || !strings.Contains(r.stdout, `"code":400`) {
		t.Errorf("json bidi ending in an error: %+v", r)
	}
}

// startGRPCCpp runs bench_grpc_server (gRPC C++) on a free port with
// extra (a certificate and key: TLS); its address, and a descriptor set of
// its greeter.proto for the CLI.
func startGRPCCpp(t *testing.T, extra ...string) (string, string) {
	t.Helper()
	bin := filepath.Join(binDir, "bench", "bench_grpc_server")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("%s not built (MICRO_BENCH_GRPC=OFF: libgrpc++-dev missing)", bin)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, append([]string{addr}, extra...)...)
	var out syncBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; !strings.Contains(out.String(), "listening"); i++ {
		if i > 200 {
			t.Fatalf("bench_grpc_server did not start: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ds := filepath.Join(t.TempDir(), "bench.pb")
	pc := exec.Command("protoc", "--include_imports", "--descriptor_set_out="+ds,
		"-I", "../../bench/grpc", "greeter.proto")
	if b, err := pc.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v %s", err, b)
	}
	return addr, ds
}

// The C client -> gRPC C++'s greeter (bench/grpc, Debian's libgrpc++):
// unary and bidi with protobuf from a descriptor set.
func TestGRPCCClientCallsGRPCCppServer(t *testing.T) {
	need(t)
	if goOnly {
		t.Skip("INTEROP_GO_ONLY: no C client")
	}
	addr, ds := startGRPCCpp(t)
	r := run(t, 30*time.Second, cMicro, "call", "--client=grpc", "--descriptor_set", ds,
		"--address="+addr, "bench", "Greeter.Hello", `{"name":"John"}`)
	if r.code != 0 || !strings.Contains(r.stdout, `"Hello John"`) {
		t.Errorf("unary: %+v", r)
	}
	r = runIn(t, "{\"name\":\"a\"}\n{\"name\":\"b\"}\n", cMicro, "stream", "--client=grpc",
		"--descriptor_set", ds, "--address="+addr, "bench", "Greeter.Stream")
	if r.code != 0 || r.stdout != "{\"msg\":\"Hello a\"}\n{\"msg\":\"Hello b\"}\n" {
		t.Errorf("bidi: %+v", r)
	}
}

// In the mDNS namespace (mdns_test.go): a Go Micro gRPC client (plugin
// client/grpc v1.2.1) finds greeter-proto-server --server=grpc by name and
// calls it; a C handler's 400 arrives as 400.
func testGoMicroGRPCCallsC(t *testing.T) {
	s := startServerArgs(t, cProto(t, "greeter-proto-server"), "--registry=mdns", "--server=grpc")
	reg := registry.NewRegistry()
	var svcs []*registry.Service
	if !waitFor(5*time.Second, func() bool {
		svcs = goServices(reg, "greeter")
		return hasAddr(svcs, s.addr)
	}) {
		t.Fatalf("Go GetService(greeter) never showed the C gRPC node %s", s.addr)
	}
	for _, sv := range svcs {
		for _, n := range sv.Nodes {
			if n.Address == s.addr && (n.Metadata["protocol"] != "grpc" ||
				n.Metadata["server"] != "grpc" || n.Metadata["transport"] != "grpc") {
				t.Errorf("C gRPC node metadata %v, want protocol/server/transport=grpc", n.Metadata)
			}
		}
	}
	bin := goBuild(t, "gomicrogrpc")
	r := run(t, 30*time.Second, bin, "-mode", "client", "-name", "John")
	if r.code != 0 || !strings.Contains(r.stdout, `"Hello John"`) {
		t.Errorf("Go Micro gRPC client -> C by name: %+v", r)
	}
	r = run(t, 30*time.Second, bin, "-mode", "client", "-name", "")
	if r.code != 1 || !strings.Contains(r.stdout, `"code":400`) || !strings.Contains(r.stdout, "name required") ||
		!strings.Contains(r.stdout, `"id":"greeter"`) {
		t.Errorf("C error through Go Micro's gRPC client: %+v", r)
	}
	// The bidirectional stream by name: every reply, then io.EOF.
	r = run(t, 30*time.Second, bin, "-mode", "stream", "-name", "a,b,c")
	if r.code != 0 || r.stdout != "Hello a\nHello b\nHello c\n" {
		t.Errorf("Go Micro gRPC stream -> C by name: %+v", r)
	}
}

// In the mDNS namespace: the C client finds a Go Micro gRPC service (plugin
// server/grpc v1.2.0) by name; its record says protocol=grpc, so the mucp
// client calls it over gRPC by itself (no --client flag); errors keep
// their code.
func testCCallsGoMicroGRPC(t *testing.T) {
	s := startServerArgs(t, goBuild(t, "gomicrogrpc"), "-mode", "server")
	var svcs []*registry.Service
	var last result
	if !waitFor(5*time.Second, func() bool {
		svcs, last = cmicroServices(t, "greeter")
		return hasAddr(svcs, s.addr)
	}) {
		t.Fatalf("cmicro never saw the Go Micro gRPC node %s: %s %s", s.addr, last.stdout, last.stderr)
	}
	r := run(t, 20*time.Second, cMicro, "call", "--registry=mdns", "greeter", "Greeter.Hello", `{"name":"John"}`)
	if r.code != 0 || !strings.Contains(r.stdout, `"Hello John"`) {
		t.Errorf("cmicro call by name -> Go Micro gRPC: %+v", r)
	}
	r = run(t, 20*time.Second, cMicro, "call", "--registry=mdns", "greeter", "Greeter.Hello", `{"name":""}`)
	if r.code != 1 || !strings.Contains(r.stdout, `"code":400`) || !strings.Contains(r.stdout, "name required") {
		t.Errorf("Go Micro error through the C client: %+v", r)
	}
	r = runIn(t, "{\"name\":\"a\"}\n{\"name\":\"b\"}\n", cMicro, "stream", "--registry=mdns", "greeter", "Greeter.Stream")
	if r.code != 0 || r.stdout != "{\"msg\":\"Hello a\"}\n{\"msg\":\"Hello b\"}\n" {
		t.Errorf("cmicro stream by name -> Go Micro gRPC: %+v", r)
	}
}
