// Streams through protoc-gen-cmicro's typed stream stubs: the C generated
// client (greeter-proto-client --stream: Greeter.Stream, send every name,
// half-close, read until the end) against the Go Micro v4 proto greeter
// (goprotoserver) and against the C one (greeter-proto-server), with
// protobuf and JSON on the wire. (Go client -> C proto server is
// TestStreamGoClientProtoCProtoServer.)
package interop

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func protoStreamCheck(t *testing.T, what, cli, addr, ct string, n int) {
	t.Helper()
	args := []string{"--registry=memory", "--stream", "--address=" + addr, "--content_type=" + ct}
	var want []string
	for i := 0; i < n; i++ {
		args = append(args, fmt.Sprintf("s%d", i))
		want = append(want, fmt.Sprintf("Hello s%d", i))
	}
	r := run(t, 20*time.Second, cli, args...)
	got := outLines(r)
	if r.code != 0 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s, %s: exit %d, stdout %q (want %q), stderr %q", what, ct, r.code, r.stdout, want, r.stderr)
	}
}

func TestStreamCProtoClientGoProtoServer(t *testing.T) {
	cli := cProto(t, "greeter-proto-client")
	srv := startServer(t, goProtoServer(t))
	for _, ct := range []string{"application/protobuf", "application/json"} {
		protoStreamCheck(t, "C typed stream client -> goprotoserver", cli, srv.addr, ct, 5)
	}
}

func TestStreamCProtoClientCProtoServer(t *testing.T) {
	cli := cProto(t, "greeter-proto-client")
	srv := startServer(t, cProto(t, "greeter-proto-server"))
	for _, ct := range []string{"application/protobuf", "application/json"} {
		protoStreamCheck(t, "C typed stream client -> greeter-proto-server", cli, srv.addr, ct, 5)
		// A message without a name: the replies before, then 400.
		r := run(t, 20*time.Second, cli, "--registry=memory", "--stream", "--address="+srv.addr, "--content_type="+ct, "a", "")
		if r.code != 1 || strings.TrimSpace(r.stdout) != "Hello a" || !strings.Contains(r.stderr, `"code":400`) {
			t.Errorf("C typed stream client -> greeter-proto-server (error), %s: exit %d, stdout %q, stderr %q", ct, r.code, r.stdout, r.stderr)
		}
	}
}
