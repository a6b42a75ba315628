// Cross-language interop tests: real go-micro.dev/v4 v4.11.0 processes
// against the cmicro C binaries (greeter-server, cmicro), over 127.0.0.1.
//
//	CMICRO_BIN_DIR=/path/to/cmake/build go test -count=1 -v ./...
//
// Without CMICRO_BIN_DIR every test is skipped.
//
// INTEROP_GO_ONLY=1 (a harness self-check, not a compatibility test) makes the
// Go goserver stand in for greeter-server, a goclient-based shim stand in
// for `cmicro call` and cstream (a raw mucp stream client) for `cmicro
// stream`, so the harness itself can be validated Go-vs-Go.
package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/errors"
)

var (
	binDir     string // CMICRO_BIN_DIR
	goOnly     bool   // INTEROP_GO_ONLY=1
	goServer   string // built ./goserver
	goClient   string // built ./goclient
	goStream   string // built ./gostream (stream_test.go)
	cStreamSub string // built ./cstream: `cmicro stream` stand-in when goOnly
	cServer    string // greeter-server (or goserver when goOnly)
	cMicro     string // cmicro CLI (empty when goOnly)
	setupError string
)

func TestMain(m *testing.M) {
	binDir = os.Getenv("CMICRO_BIN_DIR")
	goOnly = os.Getenv("INTEROP_GO_ONLY") == "1"
	if binDir == "" && !goOnly {
		os.Exit(m.Run()) // every test skips
	}

	tmp, err := os.MkdirTemp("", "cmicro-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdtemp:", err)
		os.Exit(2)
	}
	goServer = filepath.Join(tmp, "goserver")
	goClient = filepath.Join(tmp, "goclient")
	goStream = filepath.Join(tmp, "gostream")
	cStreamSub = filepath.Join(tmp, "cstream")
	for _, b := range []struct{ out, pkg string }{{goServer, "./goserver"}, {goClient, "./goclient"},
		{goStream, "./gostream"}, {cStreamSub, "./cstream"}} {
		cmd := exec.Command(goTool(), "build", "-o", b.out, b.pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n", b.pkg, err)
			os.RemoveAll(tmp)
			os.Exit(2)
		}
	}

	if goOnly {
		cServer = goServer
	} else {
		cServer = filepath.Join(binDir, "greeter-server")
		cMicro = filepath.Join(binDir, "cmicro")
		var missing []string
		for _, p := range []string{cServer, cMicro} {
			if fi, err := os.Stat(p); err != nil || fi.IsDir() {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			setupError = fmt.Sprintf("CMICRO_BIN_DIR=%s lacks the C binaries: %s", binDir, strings.Join(missing, ", "))
		}
	}

	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// need skips without CMICRO_BIN_DIR and fails when the C binaries are missing.
func need(t *testing.T) {
	t.Helper()
	if binDir == "" && !goOnly {
		t.Skip("CMICRO_BIN_DIR is not set: point it at a cmicro CMake build dir containing greeter-server and cmicro (or run tests/interop/run.sh)")
	}
	if setupError != "" {
		t.Fatal(setupError)
	}
}

// ---------------------------------------------------------------- processes

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// syncBuf is a goroutine-safe output sink for a child process.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type server struct {
	addr   string
	cmd    *exec.Cmd
	stdout *syncBuf
	stderr *syncBuf
	exited chan struct{}
}

// startServer runs bin --server_address=ADDR --registry=memory, waits until
// ADDR accepts TCP connections (max 10 s) and stops it (SIGTERM, then KILL)
// in t.Cleanup. Its output is logged when the test fails.
func startServer(t *testing.T, bin string) *server {
	t.Helper()
	return startServerArgs(t, bin, "--registry=memory")
}

// startServerArgs is startServer with other flags than --registry=memory
// (none: the program's default registry).
func startServerArgs(t *testing.T, bin string, args ...string) *server {
	t.Helper()
	s := &server{addr: freeAddr(t), stdout: &syncBuf{}, stderr: &syncBuf{}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{"--server_address=" + s.addr}, args...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(5 * time.Second):
				s.cmd.Process.Kill()
				<-s.exited
			}
		}
		if t.Failed() {
			t.Logf("%s stdout:\n%s", filepath.Base(bin), s.stdout.String())
			t.Logf("%s stderr:\n%s", filepath.Base(bin), s.stderr.String())
		}
	})

	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return s
		}
		select {
		case <-s.exited:
			t.Fatalf("%s exited before serving on %s (%v)\nstdout:\n%s\nstderr:\n%s",
				bin, s.addr, s.cmd.ProcessState, s.stdout.String(), s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not accepting connections on %s after 10 s", bin, s.addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type result struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, timeout time.Duration, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ctx.Err() != nil {
		t.Fatalf("%s %q timed out after %v\nstdout: %s\nstderr: %s", filepath.Base(bin), args, timeout, r.stdout, r.stderr)
	}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run %s: %v", bin, err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

type callSpec struct {
	addr        string
	contentType string // "" = the client's default
	endpoint    string
	body        string
	metadata    []string // K=V
}

// goClientCall runs the goclient binary.
func goClientCall(t *testing.T, c callSpec) result {
	t.Helper()
	args := []string{"-address", c.addr, "-endpoint", c.endpoint, "-body", c.body, "-timeout", "5s"}
	if c.contentType != "" {
		args = append(args, "-content_type", c.contentType)
	}
	for _, md := range c.metadata {
		args = append(args, "-metadata", md)
	}
	return run(t, 20*time.Second, goClient, args...)
}

// cClientCall runs `cmicro call [--address A] [--content_type CT] [--metadata K=V]... greeter ENDPOINT BODY`.
func cClientCall(t *testing.T, c callSpec) result {
	t.Helper()
	if goOnly {
		return goClientCall(t, c) // harness self-check stand-in
	}
	// --registry=memory: by address, and mDNS (the default) must not
	// multicast from the host's namespace.
	args := []string{"call", "--registry=memory", "--address", c.addr}
	if c.contentType != "" {
		args = append(args, "--content_type", c.contentType)
	}
	for _, md := range c.metadata {
		args = append(args, "--metadata", md)
	}
	args = append(args, "greeter", c.endpoint, c.body)
	return run(t, 20*time.Second, cMicro, args...)
}

// ---------------------------------------------------------------- assertions

func decodeJSON(t *testing.T, what, s string) map[string]interface{} {
	t.Helper()
	var m map[string]interface{}
	if err := json.Unmarshal([]byte(strings.TrimSpace(s)), &m); err != nil {
		t.Fatalf("%s: stdout is not a JSON object: %v\nstdout: %q", what, err, s)
	}
	return m
}

func expectOK(t *testing.T, what string, r result, want map[string]interface{}) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d, want 0\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
	}
	got := decodeJSON(t, what, r.stdout)
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Fatalf("%s: reply %s, want %s", what, gj, wj)
	}
}

// expectErr checks an exit-1 Go Micro error JSON {"id","code","detail","status"}.
func expectErr(t *testing.T, what string, r result, id string, code int, detail, status string) {
	t.Helper()
	if r.code != 1 {
		t.Fatalf("%s: exit %d, want 1 (remote error)\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
	}
	e := decodeJSON(t, what, r.stdout)
	gotCode, _ := e["code"].(float64)
	if e["id"] != id || int(gotCode) != code || e["detail"] != detail || e["status"] != status {
		t.Fatalf("%s: error %s, want id=%q code=%d detail=%q status=%q",
			what, strings.TrimSpace(r.stdout), id, code, detail, status)
	}
}

var bothCodecs = []string{"application/json", "application/json-rpc"}

// ---------------------------------------------------------------- tests

func TestGoClientCallsCGreeterJSON(t *testing.T) {
	need(t)
	s := startServer(t, cServer)
	r := goClientCall(t, callSpec{addr: s.addr, contentType: "application/json",
		endpoint: "Greeter.Hello", body: `{"name":"John"}`})
	expectOK(t, "goclient json -> greeter-server", r, map[string]interface{}{"msg": "Hello John"})
}

func TestGoClientCallsCGreeterJSONRPC(t *testing.T) {
	need(t)
	s := startServer(t, cServer)
	r := goClientCall(t, callSpec{addr: s.addr, contentType: "application/json-rpc",
		endpoint: "Greeter.Hello", body: `{"name":"John"}`})
	expectOK(t, "goclient json-rpc -> greeter-server", r, map[string]interface{}{"msg": "Hello John"})
}

func TestCGreeterPrintsListeningLine(t *testing.T) {
	need(t)
	s := startServer(t, cServer)
	want := "listening on " + s.addr
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(s.stdout.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("server stdout lacks %q:\n%s", want, s.stdout.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCClientCallsGoGreeter(t *testing.T) {
	need(t)
	s := startServer(t, goServer)
	for _, ct := range append([]string{""}, bothCodecs...) {
		name := ct
		if name == "" {
			name = "default"
		}
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			r := cClientCall(t, callSpec{addr: s.addr, contentType: ct,
				endpoint: "Greeter.Hello", body: `{"name":"John"}`})
			expectOK(t, "cmicro call -> goserver ("+name+")", r, map[string]interface{}{"msg": "Hello John"})
		})
	}
}

func TestGoErrorReachesCClient(t *testing.T) {
	need(t)
	s := startServer(t, goServer)
	for _, ct := range bothCodecs {
		t.Run(strings.ReplaceAll(ct, "/", "_"), func(t *testing.T) {
			r := cClientCall(t, callSpec{addr: s.addr, contentType: ct, endpoint: "Greeter.Hello", body: `{}`})
			expectErr(t, "Hello {}", r, "greeter", 400, "name required", "Bad Request")
			r = cClientCall(t, callSpec{addr: s.addr, contentType: ct, endpoint: "Greeter.Fail",
				body: `{"code":409,"detail":"already exists"}`})
			expectErr(t, "Fail 409", r, "greeter", 409, "already exists", "Conflict")
		})
	}
}

func TestCErrorReachesGoClient(t *testing.T) {
	need(t)
	s := startServer(t, cServer)
	for _, ct := range bothCodecs {
		t.Run(strings.ReplaceAll(ct, "/", "_"), func(t *testing.T) {
			r := goClientCall(t, callSpec{addr: s.addr, contentType: ct, endpoint: "Greeter.Hello", body: `{}`})
			expectErr(t, "Hello {}", r, "greeter", 400, "name required", "Bad Request")
			r = goClientCall(t, callSpec{addr: s.addr, contentType: ct, endpoint: "Greeter.Hello", body: `{"name":""}`})
			expectErr(t, "Hello name empty", r, "greeter", 400, "name required", "Bad Request")
			r = goClientCall(t, callSpec{addr: s.addr, contentType: ct, endpoint: "Greeter.Fail",
				body: `{"code":409,"detail":"already exists"}`})
			expectErr(t, "Fail 409", r, "greeter", 409, "already exists", "Conflict")
		})
	}
}

func TestMetadataCToGo(t *testing.T) {
	need(t)
	s := startServer(t, goServer)
	r := cClientCall(t, callSpec{addr: s.addr, endpoint: "Greeter.Meta", body: `{"key":"X-Trace"}`,
		metadata: []string{"X-Trace=abc"}})
	expectOK(t, "cmicro --metadata X-Trace=abc -> goserver", r, map[string]interface{}{"value": "abc"})
	// A key that is not title-cased on the C side must still arrive in a
	// form Go's metadata.Get (exact, then strings.Title) finds.
	r = cClientCall(t, callSpec{addr: s.addr, endpoint: "Greeter.Meta", body: `{"key":"X-Lower"}`,
		metadata: []string{"x-lower=def"}})
	expectOK(t, "cmicro --metadata x-lower=def -> goserver", r, map[string]interface{}{"value": "def"})
}

func TestMetadataGoToC(t *testing.T) {
	need(t)
	s := startServer(t, cServer)
	for _, ct := range bothCodecs {
		t.Run(strings.ReplaceAll(ct, "/", "_"), func(t *testing.T) {
			r := goClientCall(t, callSpec{addr: s.addr, contentType: ct, endpoint: "Greeter.Meta",
				body: `{"key":"X-Trace"}`, metadata: []string{"X-Trace=abc"}})
			expectOK(t, "goclient -metadata X-Trace=abc", r, map[string]interface{}{"value": "abc"})
			// Go v4 sends "x-trace" as "X-Trace": the C side must match case-insensitively.
			r = goClientCall(t, callSpec{addr: s.addr, contentType: ct, endpoint: "Greeter.Meta",
				body: `{"key":"x-trace"}`, metadata: []string{"x-trace=lower"}})
			expectOK(t, "goclient -metadata x-trace=lower, key x-trace", r, map[string]interface{}{"value": "lower"})
		})
	}
}

// inProcessCall is a go-micro client call by address with a map request/response.
func inProcessCall(c client.Client, addr, endpoint string, req map[string]interface{}, opts ...client.CallOption) (map[string]interface{}, error) {
	r := c.NewRequest("greeter", endpoint, req)
	rsp := map[string]interface{}{}
	opts = append([]client.CallOption{client.WithAddress(addr), client.WithRetries(0)}, opts...)
	err := c.Call(context.Background(), r, &rsp, opts...)
	return rsp, err
}

func TestGoClientToCGreeterConcurrent(t *testing.T) {
	need(t)
	s := startServer(t, cServer)
	c := client.NewClient() // one client, one connection pool
	const workers, calls = 50, 20
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fails []string
	)
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				name := fmt.Sprintf("w%d-c%d", w, i)
				rsp, err := inProcessCall(c, s.addr, "Greeter.Hello", map[string]interface{}{"name": name},
					client.WithRequestTimeout(15*time.Second))
				if err == nil && rsp["msg"] != "Hello "+name {
					err = fmt.Errorf("reply %v", rsp)
				}
				if err != nil {
					mu.Lock()
					fails = append(fails, fmt.Sprintf("%s: %v", name, err))
					mu.Unlock()
				}
			}
		}(w)
	}
	wg.Wait()
	t.Logf("%d calls in %v", workers*calls, time.Since(start))
	if len(fails) > 0 {
		n := len(fails)
		if len(fails) > 10 {
			fails = fails[:10]
		}
		t.Fatalf("%d of %d calls failed; first ones:\n%s", n, workers*calls, strings.Join(fails, "\n"))
	}
}

func TestGoClientUnknownEndpoint(t *testing.T) {
	need(t)
	s := startServer(t, cServer)
	c := client.NewClient()
	start := time.Now()
	_, err := inProcessCall(c, s.addr, "Greeter.Nope", map[string]interface{}{"name": "John"},
		client.WithRequestTimeout(10*time.Second))
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Greeter.Nope succeeded, want an error")
	}
	if elapsed > 2*time.Second {
		t.Errorf("error took %v, want < 2 s (it must be answered, not timed out): %v", elapsed, err)
	}
	e := errors.FromError(err)
	// A real Go server answers "Micro-Error: rpc: can't find method Nope"
	// (plain text: errors.FromError gives code 0); a JSON error with 404 or
	// 500 is accepted too. It must not be a client-side error.
	if e.Code != 0 && e.Code != 404 && e.Code != 500 {
		t.Errorf("code %d, want 0 (plain text), 404 or 500: %v", e.Code, err)
	}
	if strings.HasPrefix(e.Id, "go.micro.client") {
		t.Errorf("error was produced on the client side, not by the server: %v", err)
	}
	if !strings.Contains(e.Detail+e.Id, "Nope") {
		t.Errorf("error does not mention the endpoint: %v", err)
	}
	t.Logf("unknown endpoint error (%v): %v", elapsed, err)

	rsp, err := inProcessCall(c, s.addr, "Greeter.Hello", map[string]interface{}{"name": "John"},
		client.WithRequestTimeout(5*time.Second))
	if err != nil || rsp["msg"] != "Hello John" {
		t.Fatalf("Hello after unknown endpoint: rsp=%v err=%v", rsp, err)
	}
}
