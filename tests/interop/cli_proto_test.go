// cmicro call --descriptor_set: the CLI sends protobuf built from a protoc
// descriptor set (no generated code) to the Go Micro v4 proto greeter
// (goprotoserver, protoc-gen-go types) and prints the reply as JSON.
package interop

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// greeterDescriptorSet runs protoc on examples/greeter-proto/greeter.proto.
func greeterDescriptorSet(t *testing.T) string {
	t.Helper()
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		t.Skip("protoc not installed (protobuf-compiler)")
	}
	out := filepath.Join(t.TempDir(), "greeter.desc")
	cmd := exec.Command(protoc, "-I", "../../examples/greeter-proto",
		"--include_imports", "--descriptor_set_out="+out, "greeter.proto")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, b)
	}
	return out
}

func TestCLIProtoCallsGoProtoGreeter(t *testing.T) {
	need(t)
	if goOnly {
		t.Skip("INTEROP_GO_ONLY: no cmicro CLI")
	}
	desc := greeterDescriptorSet(t)
	srv := startServer(t, goProtoServer(t))
	base := []string{"--registry=memory", "call", "--address=" + srv.addr,
		"--descriptor_set=" + desc}
	for _, ct := range []string{"", "application/protobuf",
		"application/proto-rpc", "application/grpc"} {
		args := append([]string{}, base...)
		if ct != "" {
			args = append(args, "--content_type="+ct)
		}
		for _, ep := range []string{"Greeter.Hello", "greeter.Greeter.Hello"} {
			r := run(t, 20*time.Second, cMicro, append(args, "greeter", ep, `{"name":"John"}`)...)
			if r.code != 0 || strings.TrimSpace(r.stdout) != `{"msg":"Hello John"}` {
				t.Errorf("cmicro call %s (%q): exit %d, stdout %q, stderr %q",
					ep, ct, r.code, r.stdout, r.stderr)
			}
		}
		// The greeter's error: exit 1, the error JSON on stdout.
		r := run(t, 20*time.Second, cMicro, append(args, "greeter", "Greeter.Hello", `{"name":""}`)...)
		if r.code != 1 || !strings.Contains(r.stdout, `"code":400`) ||
			!strings.Contains(r.stdout, "name required") {
			t.Errorf("cmicro call (error, %q): exit %d, stdout %q, stderr %q",
				ct, r.code, r.stdout, r.stderr)
		}
	}
	// What the descriptor set does not describe is refused before sending.
	for _, c := range []struct{ ep, body, want string }{
		{"Greeter.Bye", `{"name":"John"}`, "no method Bye"},
		{"Nope.Hello", `{"name":"John"}`, "no service Nope"},
		{"Greeter.Hello", `{"nom":"John"}`, `unknown field "nom"`},
		{"Greeter.Hello", `{"name":5}`, "greeter.Request"},
	} {
		r := run(t, 20*time.Second, cMicro, append(base, "greeter", c.ep, c.body)...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("cmicro call %s %s: exit %d, stderr %q (want exit 2, %q)",
				c.ep, c.body, r.code, r.stderr, c.want)
		}
	}
	// A file that is not a descriptor set.
	r := run(t, 20*time.Second, cMicro, "--registry=memory", "call",
		"--address="+srv.addr, "--descriptor_set=../../examples/greeter-proto/greeter.proto",
		"greeter", "Greeter.Hello", `{"name":"John"}`)
	if r.code != 2 || !strings.Contains(r.stderr, "descriptor set") {
		t.Errorf("cmicro call with a .proto as the set: exit %d, stderr %q", r.code, r.stderr)
	}
	// Without --descriptor_set the CLI still speaks JSON.
	r = run(t, 20*time.Second, cMicro, "--registry=memory", "call",
		"--address="+srv.addr, "greeter", "Greeter.Hello", `{"name":"John"}`)
	if r.code != 0 || !strings.Contains(r.stdout, `"msg":"Hello John"`) {
		t.Errorf("cmicro call (JSON): exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
