// Streams (Go Micro v4 client.Stream / server.Stream over the HTTP
// transport) between Go Micro v4.11.0 and cmicro, both directions:
//
//   - Go client (gostream, real client.Stream) -> C greeter-server and
//     greeter-proto-server;
//   - C client (`cmicro stream`) -> Go goserver / goprotoserver;
//
// for bidirectional, server-streaming and client-streaming endpoints, a
// handler error mid-stream and an unknown endpoint; plus what Go does on
// the wire that the C side must live with (Go's client cannot half-close;
// a Go handler that returns nil after the client's EOS sends no end of
// stream; Go's server corrupts replies sent back to back).
//
// With INTEROP_GO_ONLY=1 goserver / goprotoserver stand in for the C
// servers and cstream (package mucpstream: the C client's wire, byte for
// byte) for `cmicro stream`.
package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cmicro/interop/mucpstream"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
)

// ---------------------------------------------------------------- helpers

// runStdin is run with stdin.
func runStdin(t *testing.T, timeout time.Duration, stdin string, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ctx.Err() != nil {
		t.Fatalf("%s %q timed out after %v (a stream that never ends?)\nstdin: %q\nstdout: %s\nstderr: %s",
			filepath.Base(bin), args, timeout, stdin, r.stdout, r.stderr)
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

func lines(reqs ...string) string {
	if len(reqs) == 0 {
		return ""
	}
	return strings.Join(reqs, "\n") + "\n"
}

// goStreamRun runs gostream -address addr ARGS < reqs.
func goStreamRun(t *testing.T, addr string, reqs []string, args ...string) result {
	t.Helper()
	return runStdin(t, 30*time.Second, lines(reqs...), goStream,
		append([]string{"-address", addr, "-timeout", "15s"}, args...)...)
}

// cStreamRun runs `cmicro stream --registry=memory --address addr
// [--content_type ct] EXTRA... greeter endpoint` < reqs (cstream when goOnly).
func cStreamRun(t *testing.T, addr, ct, endpoint string, reqs []string, extra ...string) result {
	t.Helper()
	bin := cMicro
	if goOnly {
		bin = cStreamSub
	}
	args := []string{"stream", "--registry=memory", "--address", addr}
	if ct != "" {
		args = append(args, "--content_type", ct)
	}
	args = append(args, extra...)
	args = append(args, "greeter", endpoint)
	return runStdin(t, 30*time.Second, lines(reqs...), bin, args...)
}

// protoServer is greeter-proto-server, or goprotoserver when goOnly.
func protoServer(t *testing.T) string {
	t.Helper()
	need(t)
	if goOnly {
		return goProtoServer(t)
	}
	return cProto(t, "greeter-proto-server")
}

// canon re-encodes one JSON text with sorted keys.
func canon(t *testing.T, what, s string) string {
	t.Helper()
	var v interface{}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s: not JSON: %q (%v)", what, s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func outLines(r result) []string {
	var out []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// expectReplies checks exit 0 and exactly the replies want, in order.
func expectReplies(t *testing.T, what string, r result, want []string) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d, want 0\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
	}
	checkReplies(t, what, r, outLines(r), want)
}

func checkReplies(t *testing.T, what string, r result, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d replies, want %d\nstdout: %s\nstderr: %s", what, len(got), len(want), r.stdout, r.stderr)
	}
	for i := range want {
		if g, w := canon(t, what, got[i]), canon(t, what, want[i]); g != w {
			t.Fatalf("%s: reply %d is %s, want %s\nstdout: %s", what, i, g, w, r.stdout)
		}
	}
}

// expectStreamErr checks exit 1, the replies before, and the error JSON
// {"id","code","detail","status"} as the last line.
func expectStreamErr(t *testing.T, what string, r result, before []string, id string, code int, detail, status string) {
	t.Helper()
	if r.code != 1 {
		t.Fatalf("%s: exit %d, want 1 (remote error)\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
	}
	ls := outLines(r)
	if len(ls) == 0 {
		t.Fatalf("%s: no output, want the error JSON\nstderr: %s", what, r.stderr)
	}
	checkReplies(t, what, r, ls[:len(ls)-1], before)
	e := decodeJSON(t, what, ls[len(ls)-1])
	gotCode, _ := e["code"].(float64)
	if e["id"] != id || int(gotCode) != code || e["detail"] != detail || e["status"] != status {
		t.Fatalf("%s: error %s, want id=%q code=%d detail=%q status=%q", what, ls[len(ls)-1], id, code, detail, status)
	}
}

// expectUnknownEndpoint checks exit 1 with an error that came from the
// server and names the method. A Go server sends plain text ("rpc: can't
// find method Nope": errors.Parse gives code 0 and that detail); a JSON
// error with 404 or 500 is accepted too.
func expectUnknownEndpoint(t *testing.T, what string, r result, elapsed time.Duration) {
	t.Helper()
	if r.code != 1 {
		t.Fatalf("%s: exit %d, want 1\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
	}
	ls := outLines(r)
	if len(ls) != 1 {
		t.Fatalf("%s: want exactly the error line\nstdout: %s", what, r.stdout)
	}
	e := decodeJSON(t, what, ls[0])
	code, _ := e["code"].(float64)
	id, _ := e["id"].(string)
	detail, _ := e["detail"].(string)
	if code != 0 && code != 404 && code != 500 {
		t.Errorf("%s: code %v, want 0 (plain text), 404 or 500: %s", what, code, ls[0])
	}
	if strings.HasPrefix(id, "go.micro.client") {
		t.Errorf("%s: the error was made on the client side: %s", what, ls[0])
	}
	if !strings.Contains(id+detail, "Nope") {
		t.Errorf("%s: the error does not name the method: %s", what, ls[0])
	}
	if elapsed > 3*time.Second {
		t.Errorf("%s: took %v; the error must be answered on the first receive, not timed out", what, elapsed)
	}
	t.Logf("%s: %s (%v)", what, ls[0], elapsed)
}

func names(prefix string, n int) (reqs, replies []string) {
	for i := 0; i < n; i++ {
		reqs = append(reqs, fmt.Sprintf(`{"name":"%s%d"}`, prefix, i))
		replies = append(replies, fmt.Sprintf(`{"msg":"Hello %s%d"}`, prefix, i))
	}
	return
}

func counted(name string, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf(`{"msg":"Hello %s","n":%d}`, name, i))
	}
	return out
}

// ------------------------------------------- (a) bidirectional, Go -> C

func TestStreamGoClientBidiCServer(t *testing.T) {
	need(t)
	s := startServer(t, cServer)
	reqs, want := names("n", 6)
	// Send one, receive one.
	expectReplies(t, "gostream lockstep -> greeter-server Greeter.Stream", goStreamRun(t, s.addr, reqs), want)
	// Pipelined: a goroutine sends all 50 while the replies are read.
	reqs, want = names("p", 50)
	expectReplies(t, "gostream drain -> greeter-server Greeter.Stream",
		goStreamRun(t, s.addr, reqs, "-mode", "drain", "-expect", "50"), want)
}

// Several Go Micro streams at once through one client, each pipelined.
func TestStreamGoClientConcurrentCServer(t *testing.T) {
	need(t)
	s := startServer(t, cServer)
	c := client.NewClient(client.ContentType("application/json"))
	const streams, msgs = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- func() error {
				req := c.NewRequest("greeter", "Greeter.Stream", map[string]interface{}{})
				st, err := c.Stream(context.Background(), req, client.WithAddress(s.addr), client.WithRetries(0))
				if err != nil {
					return err
				}
				defer st.Close()
				go func() {
					for j := 0; j < msgs; j++ {
						if st.Send(map[string]interface{}{"name": fmt.Sprintf("s%d-%d", i, j)}) != nil {
							return
						}
					}
				}()
				for j := 0; j < msgs; j++ {
					rsp := map[string]interface{}{}
					done := make(chan error, 1)
					go func() { done <- st.Recv(&rsp) }()
					select {
					case err := <-done:
						if err != nil {
							return fmt.Errorf("stream %d reply %d: %v", i, j, err)
						}
					case <-time.After(10 * time.Second):
						return fmt.Errorf("stream %d reply %d: nothing within 10 s", i, j)
					}
					if w := fmt.Sprintf("Hello s%d-%d", i, j); rsp["msg"] != w {
						return fmt.Errorf("stream %d reply %d: %v, want %q", i, j, rsp, w)
					}
				}
				return nil
			}()
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// Go Micro client with protoc-gen-go types (greetermicro, protoc-gen-micro's
// shape) -> the C generated-stub greeter's Greeter.Stream.
func TestStreamGoClientProtoCProtoServer(t *testing.T) {
	s := startServer(t, protoServer(t))
	reqs, want := names("q", 5)
	for _, ct := range []string{"application/protobuf", "application/json"} {
		t.Run(strings.ReplaceAll(ct, "/", "_"), func(t *testing.T) {
			expectReplies(t, "gostream -proto lockstep "+ct,
				goStreamRun(t, s.addr, reqs, "-proto", "-content_type", ct), want)
			expectReplies(t, "gostream -proto drain "+ct,
				goStreamRun(t, s.addr, reqs, "-proto", "-content_type", ct, "-mode", "drain", "-expect", "5"), want)
		})
	}
}

// ------------------------------------------- (b) bidirectional, C -> Go

func TestStreamCClientBidiGoServer(t *testing.T) {
	need(t)
	s := startServer(t, goServer)
	reqs, want := names("c", 6)
	// stdin ends: the CLI half-closes (EOS), the Go handler's Recv gives
	// io.EOF and it ends the stream: exit 0 after every reply.
	expectReplies(t, "cmicro stream -> goserver Greeter.Stream", cStreamRun(t, s.addr, "", "Greeter.Stream", reqs), want)
	reqs, want = names("m", 100)
	expectReplies(t, "cmicro stream (100) -> goserver Greeter.Stream",
		cStreamRun(t, s.addr, "application/json", "Greeter.Stream", reqs), want)
	// Nothing to send: open, half-close, end.
	expectReplies(t, "cmicro stream (no input) -> goserver Greeter.Stream",
		cStreamRun(t, s.addr, "", "Greeter.Stream", nil), nil)
}

// C client -> the Go Micro protobuf greeter (greeterpb types). The CLI
// speaks JSON, which Go Micro decodes into the protobuf types with jsonpb;
// protobuf on the wire needs --descriptor_set, which the stream command
// may not support (then the subtest skips and says so).
func TestStreamCClientGoProtoServer(t *testing.T) {
	need(t)
	s := startServer(t, goProtoServer(t))
	reqs, want := names("j", 5)
	expectReplies(t, "cmicro stream json -> goprotoserver Greeter.Stream",
		cStreamRun(t, s.addr, "application/json", "Greeter.Stream", reqs), want)
	t.Run("protobuf_descriptor_set", func(t *testing.T) {
		if goOnly {
			t.Skip("INTEROP_GO_ONLY: the stand-in speaks JSON only")
		}
		desc := greeterDescriptorSet(t)
		r := cStreamRun(t, s.addr, "application/protobuf", "Greeter.Stream", reqs, "--descriptor_set="+desc)
		if r.code == 2 {
			t.Skipf("cmicro stream refuses protobuf with --descriptor_set (exit 2): %s", strings.TrimSpace(r.stderr))
		}
		expectReplies(t, "cmicro stream protobuf -> goprotoserver Greeter.Stream", r, want)
	})
}

// ------------------------------------------- (c) server streaming

func TestStreamServerStreamGoClientCServer(t *testing.T) {
	need(t)
	s := startServer(t, cServer)
	// drain: until the server's EOS (io.EOF).
	expectReplies(t, "gostream -> greeter-server Greeter.ServerStream count 5",
		goStreamRun(t, s.addr, []string{`{"name":"Ann","count":5}`}, "-endpoint", "Greeter.ServerStream", "-mode", "drain"),
		counted("Ann", 5))
	expectReplies(t, "gostream -> greeter-server Greeter.ServerStream count 0",
		goStreamRun(t, s.addr, []string{`{"name":"Ann","count":0}`}, "-endpoint", "Greeter.ServerStream", "-mode", "drain"),
		nil)
	expectReplies(t, "gostream -> greeter-server Greeter.ServerStream count 200",
		goStreamRun(t, s.addr, []string{`{"name":"Bob","count":200}`}, "-endpoint", "Greeter.ServerStream", "-mode", "drain"),
		counted("Bob", 200))
}

func TestStreamServerStreamCClientGoServer(t *testing.T) {
	need(t)
	s := startServer(t, goServer)
	expectReplies(t, "cmicro stream -> goserver Greeter.ServerStream count 5",
		cStreamRun(t, s.addr, "", "Greeter.ServerStream", []string{`{"name":"Ann","count":5}`}), counted("Ann", 5))
	expectReplies(t, "cmicro stream -> goserver Greeter.ServerStream count 0",
		cStreamRun(t, s.addr, "", "Greeter.ServerStream", []string{`{"name":"Ann","count":0}`}), nil)
	expectReplies(t, "cmicro stream -> goserver Greeter.ServerStream count 200",
		cStreamRun(t, s.addr, "", "Greeter.ServerStream", []string{`{"name":"Bob","count":200}`}), counted("Bob", 200))
}

// ------------------------------------------- (d) client streaming

// cmicro's half-close (EOS, connection kept open for reading) lets a Go
// Micro handler see io.EOF and still send the final reply.
func TestStreamSumCClientGoServer(t *testing.T) {
	need(t)
	s := startServer(t, goServer)
	expectReplies(t, "cmicro stream -> goserver Greeter.Sum",
		cStreamRun(t, s.addr, "", "Greeter.Sum", []string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`}),
		[]string{`{"sum":10,"count":4}`})
	expectReplies(t, "cmicro stream (no input) -> goserver Greeter.Sum",
		cStreamRun(t, s.addr, "", "Greeter.Sum", nil), []string{`{"sum":0,"count":0}`})
}

// The C client's wire (mucpstream), in process, against the C server's
// Greeter.Sum: the half-close the C client will send, whatever the CLI
// does.
func TestStreamHalfCloseCServer(t *testing.T) {
	need(t)
	s := startServer(t, cServer)
	st, err := mucpstream.Open(mucpstream.Options{Address: s.addr, Service: "greeter", Endpoint: "Greeter.Sum"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, n := range []int{5, 6, 7} {
		if err := st.Send([]byte(fmt.Sprintf(`{"n":%d}`, n))); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	m, err := st.Recv(deadline)
	if err != nil {
		t.Fatalf("receive after the half-close: %v", err)
	}
	if g := canon(t, "sum", string(m.Body)); g != `{"count":3,"sum":18}` {
		t.Fatalf("reply %s, want {\"sum\":18,\"count\":3}", m.Body)
	}
	t.Logf("reply headers: %v", m.Header)
	if m, err = st.Recv(deadline); err != io.EOF {
		t.Fatalf("after the reply: %v %v, want the server's EOS", m, err)
	}
	t.Logf("EOS headers: %v", m.Header)
}

// Go's client cannot get the final reply of a client-streaming call:
// CloseSend is not implemented on mucp ("streamer not implemented", nothing
// sent), and no reply comes while the stream is open because the server
// is still waiting for messages. Close sends EOS and drops the connection
// at once, so the server's reply to it is lost, except that a Recv already
// pending when Close runs sometimes wins that race on loopback. A Recv
// after Close returns "connection is shut down".
func TestStreamSumGoClientLimit(t *testing.T) {
	need(t)
	for _, srv := range []struct{ name, bin string }{{"greeter-server", cServer}, {"goserver_reference", goServer}} {
		t.Run(srv.name, func(t *testing.T) {
			s := startServer(t, srv.bin)
			got := map[string]int{}
			for i := 0; i < 5; i++ {
				r := goStreamRun(t, s.addr, []string{`{"n":1}`, `{"n":2}`, `{"n":3}`},
					"-endpoint", "Greeter.Sum", "-mode", "client", "-wait", "500ms")
				ls := outLines(r)
				if r.code != 0 || len(ls) != 1 {
					t.Fatalf("gostream -mode client: exit %d, want 0 and only the report\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
				}
				var rep struct {
					Report map[string]interface{} `json:"report"`
				}
				if err := json.Unmarshal([]byte(ls[0]), &rep); err != nil || rep.Report == nil {
					t.Fatalf("bad report %q: %v", ls[0], err)
				}
				rp := rep.Report
				if rp["closesend"] != "streamer not implemented" {
					t.Errorf("CloseSend: %v, want \"streamer not implemented\"", rp["closesend"])
				}
				if rp["before_close"] != "nothing within 500ms" {
					t.Errorf("before Close: %v, want nothing (the server waits for more)", rp["before_close"])
				}
				if rp["close"] != nil {
					t.Errorf("Close: %v, want nil", rp["close"])
				}
				if rp["recv_after_close"] != "error: connection is shut down" {
					t.Errorf("Recv after Close: %v, want \"error: connection is shut down\"", rp["recv_after_close"])
				}
				pending, _ := rp["pending_after_close"].(string)
				switch {
				case pending == `reply: {"count":3,"sum":6}`:
					got["reply (won the race)"]++
				case strings.HasPrefix(pending, "error: "):
					got["error"]++
				default:
					t.Errorf("the Recv pending across Close: %q, want an error or the sum", pending)
				}
				if i == 0 {
					t.Logf("report: %s", ls[0])
				}
			}
			t.Logf("Recv pending across Close, 5 runs: %v", got)
			// The server survived the dropped streams.
			reqs, want := names("after", 2)
			expectReplies(t, "Greeter.Stream after the client-stream runs", goStreamRun(t, s.addr, reqs), want)
		})
	}
}

// ------------------------------------------- (e) handler error mid-stream

func TestStreamFailGoClientCServer(t *testing.T) {
	need(t)
	s := startServer(t, cServer)
	r := goStreamRun(t, s.addr, []string{`{"name":"a"}`, `{"name":"b"}`, `{"fail":409,"detail":"boom"}`},
		"-endpoint", "Greeter.StreamFail")
	expectStreamErr(t, "gostream -> greeter-server Greeter.StreamFail", r,
		[]string{`{"msg":"Hello a"}`, `{"msg":"Hello b"}`}, "greeter", 409, "boom", "Conflict")
	r = goStreamRun(t, s.addr, []string{`{"fail":400,"detail":"bad stream"}`},
		"-endpoint", "Greeter.StreamFail", "-mode", "drain")
	expectStreamErr(t, "gostream drain -> greeter-server Greeter.StreamFail 400", r,
		nil, "greeter", 400, "bad stream", "Bad Request")
}

func TestStreamFailCClientGoServer(t *testing.T) {
	need(t)
	s := startServer(t, goServer)
	r := cStreamRun(t, s.addr, "", "Greeter.StreamFail", []string{`{"name":"a"}`, `{"name":"b"}`, `{"fail":409,"detail":"boom"}`})
	expectStreamErr(t, "cmicro stream -> goserver Greeter.StreamFail", r,
		[]string{`{"msg":"Hello a"}`, `{"msg":"Hello b"}`}, "greeter", 409, "boom", "Conflict")
	r = cStreamRun(t, s.addr, "", "Greeter.StreamFail", []string{`{"fail":400,"detail":"bad stream"}`})
	expectStreamErr(t, "cmicro stream -> goserver Greeter.StreamFail 400", r,
		nil, "greeter", 400, "bad stream", "Bad Request")
}

// ------------------------------------------- (f) unknown endpoint

func TestStreamUnknownEndpointGoClientCServer(t *testing.T) {
	need(t)
	s := startServer(t, cServer)
	start := time.Now()
	r := goStreamRun(t, s.addr, []string{`{"name":"a"}`}, "-endpoint", "Greeter.Nope")
	expectUnknownEndpoint(t, "gostream -> greeter-server Greeter.Nope", r, time.Since(start))
	reqs, want := names("ok", 2)
	expectReplies(t, "Greeter.Stream after Greeter.Nope", goStreamRun(t, s.addr, reqs), want)
}

func TestStreamUnknownEndpointCClientGoServer(t *testing.T) {
	need(t)
	s := startServer(t, goServer)
	start := time.Now()
	r := cStreamRun(t, s.addr, "", "Greeter.Nope", []string{`{"name":"a"}`})
	expectUnknownEndpoint(t, "cmicro stream -> goserver Greeter.Nope", r, time.Since(start))
}

// ------------------------------------------- what Go does (observations)

// The C client's wire (mucpstream) against the real Go server: what the C
// side must expect from Go. These pin Go Micro v4.11.0's behaviour.
func TestStreamGoServerWireObserved(t *testing.T) {
	need(t)
	s := startServer(t, goServer)
	open := func(ep string) *mucpstream.Stream {
		st, err := mucpstream.Open(mucpstream.Options{Address: s.addr, Service: "greeter", Endpoint: ep})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	sendAll := func(st *mucpstream.Stream, bodies ...string) {
		for _, b := range bodies {
			if err := st.Send([]byte(b)); err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Run("half-close accepted, handler still sends", func(t *testing.T) {
		st := open("Greeter.Sum")
		sendAll(st, `{"n":2}`, `{"n":3}`)
		if err := st.CloseSend(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		m, err := st.Recv(deadline)
		if err != nil || canon(t, "sum", string(m.Body)) != `{"count":2,"sum":5}` {
			t.Fatalf("after EOS: %v %v, want the sum", m, err)
		}
		t.Logf("reply headers: %v", m.Header)
		m, err = st.Recv(deadline)
		if err != io.EOF {
			t.Fatalf("after the sum: %v %v, want EOS (the handler returns an error whose text is EOS)", m, err)
		}
		t.Logf("EOS headers: %v, body %q", m.Header, m.Body)
	})

	t.Run("handler returning nil after io.EOF sends no EOS", func(t *testing.T) {
		st := open("Greeter.SumNil")
		sendAll(st, `{"n":2}`, `{"n":3}`)
		if err := st.CloseSend(); err != nil {
			t.Fatal(err)
		}
		m, err := st.Recv(time.Now().Add(5 * time.Second))
		if err != nil || canon(t, "sum", string(m.Body)) != `{"count":2,"sum":5}` {
			t.Fatalf("after EOS: %v %v, want the sum", m, err)
		}
		m, err = st.Recv(time.Now().Add(time.Second))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("after the sum: %v %v; want nothing (no EOS, connection left open) for 1 s", m, err)
		}
	})

	t.Run("unknown endpoint is plain text on the first reply", func(t *testing.T) {
		st := open("Greeter.Nope")
		sendAll(st, `{"name":"a"}`)
		_, err := st.Recv(time.Now().Add(5 * time.Second))
		var re *mucpstream.RemoteError
		if !errors.As(err, &re) || re.Text != "rpc: can't find method Nope" {
			t.Fatalf("got %v, want Micro-Error: rpc: can't find method Nope", err)
		}
	})

	t.Run("handler error is the error JSON", func(t *testing.T) {
		st := open("Greeter.StreamFail")
		sendAll(st, `{"fail":409,"detail":"boom"}`)
		m, err := st.Recv(time.Now().Add(5 * time.Second))
		var re *mucpstream.RemoteError
		if !errors.As(err, &re) {
			t.Fatalf("got %v, want a Micro-Error", err)
		}
		e := merrors.Parse(re.Text)
		if e.Id != "greeter" || e.Code != 409 || e.Detail != "boom" || e.Status != "Conflict" {
			t.Fatalf("Micro-Error %q", re.Text)
		}
		t.Logf("error headers: %v", m.Header)
	})

	t.Run("plain stream.Send corrupts replies sent back to back (go-micro#2671)", func(t *testing.T) {
		st := open("Greeter.ServerStreamNaive")
		sendAll(st, `{"name":"x","count":20}`)
		if err := st.CloseSend(); err != nil {
			t.Fatal(err)
		}
		bad := 0
		deadline := time.Now().Add(5 * time.Second)
		for i := 0; ; i++ {
			m, err := st.Recv(deadline)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if canon(t, "reply", string(m.Body)) != canon(t, "want", fmt.Sprintf(`{"msg":"Hello x","n":%d}`, i)) {
				bad++
			}
		}
		// Not asserted: it depends on scheduling. Seen here: most of them.
		t.Logf("%d of 20 replies were not what the handler sent", bad)
	})
}
