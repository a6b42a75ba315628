// Command capture records the exact bytes that real Go Micro v4.11.0 peers
// put on the wire, as golden data for the C implementation. It is not run by
// the test suite; regenerate the files in ../captures with
//
//	go build -o /tmp/goserver ./goserver
//	go run ./capture -goserver /tmp/goserver -out captures
//
// Client side: an in-process go-micro client calls a raw TCP listener that
// records each request and answers with a canned reply.
// Server side: hand-written requests are sent to a goserver process over a
// raw TCP connection and the reply bytes are recorded.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
)

var outDir string

// dump writes b as Go-quoted lines, split after each '\n', so CR, LF and
// the json.Encoder trailing newline are all visible.
func dump(w io.Writer, title string, b []byte) {
	fmt.Fprintf(w, "### %s (%d bytes)\n", title, len(b))
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			i = len(b) - 1
		}
		fmt.Fprintln(w, strconv.Quote(string(b[:i+1])))
		b = b[i+1:]
	}
	fmt.Fprintln(w)
}

// recorder wraps a reader and keeps everything read through it.
type recorder struct {
	r   io.Reader
	buf bytes.Buffer
}

func (t *recorder) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.buf.Write(p[:n])
	return n, err
}

func (t *recorder) take() []byte {
	b := append([]byte(nil), t.buf.Bytes()...)
	t.buf.Reset()
	return b
}

type exchange struct {
	conn     int
	request  []byte
	response []byte
}

// fakeServer accepts connections, reads HTTP/1.1 requests and answers each
// with reply(req, body) (a complete raw HTTP response).
type fakeServer struct {
	ln    net.Listener
	mu    sync.Mutex
	log   []exchange
	reply func(h http.Header, body []byte) []byte
}

func newFakeServer(reply func(http.Header, []byte) []byte) *fakeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	f := &fakeServer{ln: ln, reply: reply}
	go func() {
		connID := 0
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			connID++
			go f.serve(connID, c)
		}
	}()
	return f
}

func (f *fakeServer) serve(id int, c net.Conn) {
	defer c.Close()
	rec := &recorder{r: c}
	br := bufio.NewReader(rec)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		raw := rec.take()
		rsp := f.reply(req.Header, body)
		c.Write(rsp)
		f.mu.Lock()
		f.log = append(f.log, exchange{conn: id, request: raw, response: rsp})
		f.mu.Unlock()
	}
}

func (f *fakeServer) addr() string { return f.ln.Addr().String() }

func httpResponse(hdr map[string]string, body string) []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	for k, v := range hdr { // callers pass at most one or two keys; order irrelevant
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return b.Bytes()
}

// greeterReply answers like a well-behaved server for json and json-rpc.
func greeterReply(h http.Header, body []byte) []byte {
	ct := h.Get("Content-Type")
	if ct == "application/json-rpc" {
		var env struct {
			ID     interface{}       `json:"id"`
			Params []json.RawMessage `json:"params"`
		}
		json.Unmarshal(body, &env)
		id, _ := json.Marshal(env.ID)
		return httpResponse(map[string]string{"Content-Type": ct},
			`{"id":`+string(id)+`,"result":{"msg":"Hello John"},"error":null}`+"\n")
	}
	return httpResponse(map[string]string{"Content-Type": ct}, `{"msg":"Hello John"}`+"\n")
}

func writeFile(name string, fn func(w io.Writer)) {
	var b bytes.Buffer
	fn(&b)
	p := filepath.Join(outDir, name)
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		panic(err)
	}
	fmt.Println("wrote", p)
}

func call(c client.Client, ctx context.Context, addr, ct, endpoint string, req interface{}) (map[string]interface{}, error) {
	r := c.NewRequest("greeter", endpoint, req, client.WithContentType(ct))
	rsp := map[string]interface{}{}
	err := c.Call(ctx, r, &rsp, client.WithAddress(addr), client.WithRetries(0),
		client.WithRequestTimeout(3*time.Second))
	return rsp, err
}

func describe(rsp map[string]interface{}, err error) string {
	if err != nil {
		e := errors.FromError(err)
		j, _ := json.Marshal(e)
		return fmt.Sprintf("error: %q\nerrors.FromError: %s", err.Error(), j)
	}
	j, _ := json.Marshal(rsp)
	return "ok: " + string(j)
}

func clientCaptures() {
	hdr := "# Captured from a real go-micro.dev/v4 v4.11.0 client (client.NewClient, WithAddress),\n" +
		"# Go " + strings.TrimPrefix(goVersion(), "go") + ". Each line is a Go-quoted slice of the raw TCP bytes, split after \\n.\n\n"

	for _, tc := range []struct{ file, ct string }{
		{"client-request-json.txt", "application/json"},
		{"client-request-jsonrpc.txt", "application/json-rpc"},
	} {
		f := newFakeServer(greeterReply)
		c := client.NewClient()
		rsp, err := call(c, context.Background(), f.addr(), tc.ct, "Greeter.Hello", map[string]interface{}{"name": "John"})
		rsp2, err2 := call(c, context.Background(), f.addr(), tc.ct, "Greeter.Hello", map[string]interface{}{"name": "John"})
		writeFile(tc.file, func(w io.Writer) {
			fmt.Fprint(w, hdr)
			fmt.Fprintf(w, "# Two sequential calls Greeter.Hello {\"name\":\"John\"} with content type %s through ONE client.\n", tc.ct)
			fmt.Fprintf(w, "# Result 1: %s\n# Result 2: %s\n\n", describe(rsp, err), describe(rsp2, err2))
			for i, x := range f.log {
				dump(w, fmt.Sprintf("call %d request (tcp connection #%d)", i+1, x.conn), x.request)
				dump(w, fmt.Sprintf("call %d canned reply from the fake server", i+1), x.response)
			}
		})
		f.ln.Close()
	}

	// metadata key casing
	{
		f := newFakeServer(greeterReply)
		c := client.NewClient()
		md := metadata.Metadata{
			"X-Trace": "abc", "x-lower": "1", "user_id": "2", "a.b": "3",
			"MiXeD-CaSe": "4", "trace-id": "5",
		}
		ctx := metadata.NewContext(context.Background(), md)
		rsp, err := call(c, ctx, f.addr(), "application/json", "Greeter.Meta", map[string]interface{}{"key": "X-Trace"})
		writeFile("client-request-metadata.txt", func(w io.Writer) {
			fmt.Fprint(w, hdr)
			fmt.Fprintln(w, "# metadata.NewContext with keys: X-Trace=abc x-lower=1 user_id=2 a.b=3 MiXeD-CaSe=4 trace-id=5")
			fmt.Fprintf(w, "# Result: %s\n\n", describe(rsp, err))
			for _, x := range f.log {
				dump(w, "request", x.request)
			}
		})
		f.ln.Close()
	}

	// What the Go client accepts from a (C) server.
	cases := []struct {
		name, ct string
		reply    []byte
	}{
		{"json: good reply", "application/json",
			httpResponse(map[string]string{"Content-Type": "application/json"}, `{"msg":"Hello John"}`)},
		{"json: Micro-Error header with errors JSON, empty body", "application/json",
			httpResponse(map[string]string{"Micro-Error": `{"id":"greeter","code":400,"detail":"name required","status":"Bad Request"}`}, "")},
		{"json: Micro-Error header with plain text", "application/json",
			httpResponse(map[string]string{"Micro-Error": `rpc: can't find method Nope`}, "")},
		{"json: empty body, no error header", "application/json",
			httpResponse(map[string]string{"Content-Type": "application/json"}, "")},
		{"json: body {} no error header", "application/json",
			httpResponse(map[string]string{"Content-Type": "application/json"}, "{}")},
		{"json-rpc: error only in envelope (no Micro-Error header)", "application/json-rpc",
			httpResponse(map[string]string{"Content-Type": "application/json-rpc"},
				`{"id":"0","result":null,"error":"{\"id\":\"greeter\",\"code\":400,\"detail\":\"name required\",\"status\":\"Bad Request\"}"}`+"\n")},
		{"json-rpc: error only in Micro-Error header, empty body", "application/json-rpc",
			httpResponse(map[string]string{"Micro-Error": `{"id":"greeter","code":400,"detail":"name required","status":"Bad Request"}`}, "")},
		{"json-rpc: result with numeric id 0", "application/json-rpc",
			httpResponse(map[string]string{"Content-Type": "application/json-rpc"}, `{"id":0,"result":{"msg":"Hello John"},"error":null}`)},
		{"json-rpc: result with id mismatch \"99\"", "application/json-rpc",
			httpResponse(map[string]string{"Content-Type": "application/json-rpc"}, `{"id":"99","result":{"msg":"Hello John"},"error":null}`)},
		{"json-rpc: bare JSON body (no envelope)", "application/json-rpc",
			httpResponse(map[string]string{"Content-Type": "application/json-rpc"}, `{"msg":"Hello John"}`)},
		{"json: HTTP status 500 with text body", "application/json",
			[]byte("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops")},
	}
	writeFile("client-acceptance.txt", func(w io.Writer) {
		fmt.Fprint(w, hdr)
		fmt.Fprintln(w, "# How the Go client interprets various canned server replies to Greeter.Hello.")
		fmt.Fprintln(w)
		for _, tc := range cases {
			reply := tc.reply
			f := newFakeServer(func(http.Header, []byte) []byte { return reply })
			c := client.NewClient()
			rsp, err := call(c, context.Background(), f.addr(), tc.ct, "Greeter.Hello", map[string]interface{}{"name": "John"})
			fmt.Fprintf(w, "## %s\n", tc.name)
			dump(w, "reply", reply)
			fmt.Fprintf(w, "=> %s\n\n", describe(rsp, err))
			f.ln.Close()
		}
	})
}

// ---- server side ----

type rawConn struct {
	c   net.Conn
	rec *recorder
	br  *bufio.Reader
}

func dialRaw(addr string) *rawConn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		panic(err)
	}
	rec := &recorder{r: c}
	return &rawConn{c: c, rec: rec, br: bufio.NewReader(rec)}
}

func (r *rawConn) roundTrip(req string) ([]byte, error) {
	r.c.SetDeadline(time.Now().Add(4 * time.Second))
	if _, err := r.c.Write([]byte(req)); err != nil {
		return nil, err
	}
	rsp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		return r.rec.take(), err
	}
	io.ReadAll(rsp.Body)
	return r.rec.take(), nil
}

func rawReq(addr string, hdrs [][2]string, body string) string {
	var b strings.Builder
	b.WriteString("POST / HTTP/1.1\r\n")
	b.WriteString("Host: " + addr + "\r\n")
	if !hasHdr(hdrs, "Transfer-Encoding") {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	for _, h := range hdrs {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return b.String()
}

func hasHdr(h [][2]string, k string) bool {
	for _, x := range h {
		if strings.EqualFold(x[0], k) {
			return true
		}
	}
	return false
}

func std(ct, endpoint string) [][2]string {
	return [][2]string{
		{"Accept", ct}, {"Content-Type", ct},
		{"Micro-Endpoint", endpoint}, {"Micro-Id", "0"}, {"Micro-Method", endpoint},
		{"Micro-Service", "greeter"}, {"Timeout", "5000000000"},
	}
}

func serverCaptures(goserver string) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(goserver, "--server_address="+addr, "--registry=memory")
	cmd.Stderr = io.Discard
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "listening on") {
			break
		}
	}
	go io.Copy(io.Discard, out)

	hdr := "# Captured from a real go-micro.dev/v4 v4.11.0 server (tests/interop/goserver), Go " +
		strings.TrimPrefix(goVersion(), "go") + ".\n# Each line is a Go-quoted slice of the raw TCP bytes, split after \\n.\n" +
		"# The listen address was " + addr + " (random per run).\n\n"

	type step struct {
		note string
		req  string
	}
	scenario := func(file, intro string, steps []step) {
		writeFile(file, func(w io.Writer) {
			fmt.Fprint(w, hdr)
			fmt.Fprintln(w, intro)
			fmt.Fprintln(w)
			rc := dialRaw(addr)
			defer rc.c.Close()
			for i, s := range steps {
				fmt.Fprintf(w, "## step %d: %s\n", i+1, s.note)
				dump(w, "request (hand-written)", []byte(s.req))
				b, err := rc.roundTrip(s.req)
				if err != nil {
					fmt.Fprintf(w, "# read error: %v\n", err)
				}
				dump(w, "response", b)
			}
		})
	}

	J, R := "application/json", "application/json-rpc"
	scenario("server-json.txt",
		"# One TCP connection: Hello success, then Hello error ({}) and Fail 409, sent with DIFFERENT\n"+
			"# header values to show that responses echo the FIRST request's headers.",
		[]step{
			{"Greeter.Hello {\"name\":\"John\"} (first request on the connection)",
				rawReq(addr, std(J, "Greeter.Hello"), `{"name":"John"}`+"\n")},
			{"Greeter.Hello {} on the same connection, Micro-Id 1, extra X-Second header",
				rawReq(addr, append(std(J, "Greeter.Hello")[:3], [2]string{"Micro-Id", "1"}, [2]string{"X-Second", "yes"}), `{}`)},
			{"Greeter.Fail {\"code\":409,\"detail\":\"conflict\"}",
				rawReq(addr, std(J, "Greeter.Fail"), `{"code":409,"detail":"conflict"}`)},
		})
	scenario("server-jsonrpc.txt",
		"# json-rpc: success and errors, each on its own fresh connection is not needed; one connection.",
		[]step{
			{"json-rpc Greeter.Hello, string id \"0\" (what the Go client sends)",
				rawReq(addr, std(R, "Greeter.Hello"), `{"params":[{"name":"John"}],"id":"0","method":"Greeter.Hello"}`+"\n")},
			{"json-rpc Greeter.Hello {} (handler error)",
				rawReq(addr, std(R, "Greeter.Hello"), `{"params":[{}],"id":"1","method":"Greeter.Hello"}`+"\n")},
			{"json-rpc with numeric id 7",
				rawReq(addr, std(R, "Greeter.Hello"), `{"params":[{"name":"John"}],"id":7,"method":"Greeter.Hello"}`+"\n")},
			{"json-rpc Greeter.Nope (unknown method)",
				rawReq(addr, std(R, "Greeter.Nope"), `{"params":[{}],"id":"3","method":"Greeter.Nope"}`+"\n")},
		})
	scenario("server-legacy-jsonrpc.txt",
		"# Legacy: Content-Type application/json-rpc and NO Micro-* headers; the endpoint comes from the envelope.",
		[]step{
			{"json-rpc, method only in envelope",
				rawReq(addr, [][2]string{{"Content-Type", R}}, `{"params":[{"name":"John"}],"id":"5","method":"Greeter.Hello"}`)},
			{"application/json and NO Micro-* headers (legacy map turns it into json-rpc)",
				rawReq(addr, [][2]string{{"Content-Type", J}}, `{"params":[{"name":"John"}],"id":"6","method":"Greeter.Hello"}`)},
		})
	for _, s := range []struct{ file, note, req string }{
		{"server-unknown-method.txt", "Greeter.Nope (unknown method), json",
			rawReq(addr, std(J, "Greeter.Nope"), `{}`)},
		{"server-unknown-service.txt", "Nope.Hello (unknown handler), json",
			rawReq(addr, std(J, "Nope.Hello"), `{}`)},
		{"server-illformed-endpoint.txt", "endpoint \"Hello\" (no dot), json",
			rawReq(addr, std(J, "Hello"), `{}`)},
		{"server-no-content-type.txt", "no Content-Type header (server assumes application/protobuf)",
			rawReq(addr, [][2]string{{"Micro-Endpoint", "Greeter.Hello"}, {"Micro-Service", "greeter"}}, `{"name":"John"}`)},
		{"server-unknown-content-type.txt", "Content-Type text/plain",
			rawReq(addr, [][2]string{{"Content-Type", "text/plain"}, {"Micro-Endpoint", "Greeter.Hello"}}, `{"name":"John"}`)},
		{"server-minimal-request.txt", "minimal request: Host, Content-Length, Content-Type, Micro-Endpoint only",
			rawReq(addr, [][2]string{{"Content-Type", J}, {"Micro-Endpoint", "Greeter.Hello"}}, `{"name":"John"}`)},
		{"server-chunked-empty.txt", "chunked, empty body (zero-valued request => handler error)",
			rawReq(addr, [][2]string{{"Transfer-Encoding", "chunked"}, {"Content-Type", J}, {"Micro-Endpoint", "Greeter.Hello"}}, "0\r\n\r\n")},
		{"server-metadata-lowercase.txt", "Greeter.Meta {\"key\":\"X-Trace\"} with a lower-case header line x-trace: abc",
			rawReq(addr, append(std(J, "Greeter.Meta"), [2]string{"x-trace", "abc"}), `{"key":"X-Trace"}`)},
		{"server-metadata-getkey-lower.txt", "Greeter.Meta {\"key\":\"x-trace\"} with header X-Trace: abc (Get tries key, then strings.Title(key))",
			rawReq(addr, append(std(J, "Greeter.Meta"), [2]string{"X-Trace", "abc"}), `{"key":"x-trace"}`)},
	} {
		scenario(s.file, "# Fresh connection, single request.", []step{{s.note, s.req}})
	}
}

func goVersion() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func main() {
	goserver := flag.String("goserver", "", "path to a built goserver binary")
	flag.StringVar(&outDir, "out", "captures", "output directory")
	flag.Parse()
	os.MkdirAll(outDir, 0o755)
	clientCaptures()
	if *goserver != "" {
		serverCaptures(*goserver)
	}
}
