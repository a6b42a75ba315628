// Shared by the etcd and Consul interop tests.
package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"go-micro.dev/v4/registry"
)

// cmicroWatchesGo: `cmicro watch --registry=REG greeter` prints one JSON
// line per event ({"action":"create","service":{...}}), and sees a Go
// greeter registered in REG at addr come and go.
func cmicroWatchesGo(t *testing.T, reg, addr string) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, cMicro, "watch", "--registry="+reg, "--registry_address="+addr, "greeter")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuf{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start cmicro watch: %v", err)
	}
	defer func() { cancel(); cmd.Wait() }()
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// The watch is set up once it says so on stderr.
	if !waitFor(10*time.Second, func() bool { return strings.Contains(stderr.String(), "watching") }) {
		t.Fatalf("cmicro watch did not start: %s", stderr.String())
	}
	g := startServerArgs(t, goServer, "--registry="+reg, "--registry_address="+addr)
	wait := func(action string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("cmicro watch ended before %s: %s", action, stderr.String())
				}
				var ev struct {
					Action  string
					Service registry.Service
				}
				if err := json.Unmarshal([]byte(l), &ev); err != nil {
					t.Fatalf("cmicro watch printed %q: %v", l, err)
				}
				if ev.Action == action && len(ev.Service.Nodes) == 1 && ev.Service.Nodes[0].Address == g.addr {
					return
				}
			case <-timeout:
				t.Fatalf("cmicro watch saw no %s for the Go node %s within 10 s (stderr %s)",
					action, g.addr, stderr.String())
			}
		}
	}
	wait("create")
	g.cmd.Process.Signal(syscall.SIGTERM)
	wait("delete")
}
