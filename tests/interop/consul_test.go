// Discovery by name through a real Consul agent (v1.14.8 built from the Go
// module proxy by scripts/consul.sh, run here in -dev mode on free loopback
// ports in a temporary directory): Go Micro v4 with its Consul plugin
// (github.com/go-micro/plugins/v4/registry/consul v1.2.1) on one side,
// cmicro's --registry=consul on the other. Each finds, lists and calls the
// other by name, and each side's watcher sees the other's register and
// deregister.
package interop

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	consul "github.com/go-micro/plugins/v4/registry/consul"
	"go-micro.dev/v4/registry"
)

// consulBin finds the agent scripts/consul.sh builds.
func consulBin() string {
	if b := os.Getenv("MICRO_CONSUL_BIN"); b != "" {
		return b
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "cmicro", "consul-1.14.8", "consul")
}

// startConsul runs one -dev agent and returns its HTTP address.
func startConsul(t *testing.T) string {
	t.Helper()
	bin := consulBin()
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no Consul agent at %s (scripts/consul.sh builds it; or set MICRO_CONSUL_BIN)", bin)
	}
	dir := t.TempDir()
	port := func() string { a := freeAddr(t); return a[strings.LastIndex(a, ":")+1:] }
	http0 := port()
	cmd := exec.Command(bin, "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", http0, "-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-serf-lan-port", port(), "-serf-wan-port", port(), "-server-port", port(),
		"-data-dir", dir+"/data", "-log-level", "error")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start consul: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	addr := "127.0.0.1:" + http0
	if !waitFor(60*time.Second, func() bool {
		rsp, err := http.Get("http://" + addr + "/v1/status/leader")
		if err != nil {
			return false
		}
		defer rsp.Body.Close()
		var leader string
		return json.NewDecoder(rsp.Body).Decode(&leader) == nil && leader != ""
	}) {
		t.Fatalf("Consul agent on %s without a leader within 60 s", addr)
	}
	return addr
}

func TestConsulInterop(t *testing.T) {
	need(t)
	if goOnly {
		t.Skip("INTEROP_GO_ONLY: the Consul tests need the C binaries")
	}
	addr := startConsul(t)
	t.Run("CmicroFindsAndCallsGoGreeter", func(t *testing.T) { testConsulCmicroFindsGo(t, addr) })
	t.Run("GoFindsAndCallsCGreeter", func(t *testing.T) { testConsulGoFindsC(t, addr) })
	t.Run("GoWatchesCGreeter", func(t *testing.T) { testConsulGoWatchesC(t, addr) })
	t.Run("CmicroWatchesGoGreeter", func(t *testing.T) { testConsulCmicroWatchesGo(t, addr) })
	t.Run("CmicroStreamsAndPublishes", func(t *testing.T) { cmicroStreamsAndPublishes(t, "consul", addr) })
}

func testConsulCmicroFindsGo(t *testing.T, addr string) { cmicroFindsGo(t, "consul", addr) }

func testConsulGoFindsC(t *testing.T, addr string) {
	goFindsC(t, "consul", addr, consul.NewRegistry(registry.Addrs(addr)))
}

// The v1.2.1 plugin's watcher needs a service (goWatch gives greeter). It
// reports a service whose instance has just been registered, with its TTL
// check still critical, as a "create" without nodes, then the node in an
// "update" once the check passes (Go's own registrations do the same): the
// node's arrival is either.
func testConsulGoWatchesC(t *testing.T, addr string) {
	results := goWatch(t, consul.NewRegistry(registry.Addrs(addr)))
	s := startServerArgs(t, cServer, "--registry=consul", "--registry_address="+addr)
	timeout := time.After(10 * time.Second)
	for seen := false; !seen; {
		select {
		case r, ok := <-results:
			if !ok {
				t.Fatalf("Go watcher stopped before the C node arrived")
			}
			seen = (r.Action == "create" || r.Action == "update") &&
				len(r.Service.Nodes) == 1 && r.Service.Nodes[0].Address == s.addr
		case <-timeout:
			t.Fatalf("Go watcher saw no create/update with the C node %s within 10 s", s.addr)
		}
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	waitResult(t, results, "delete", s.addr, 10*time.Second)
}

// `cmicro watch --registry=consul greeter` sees the Go greeter come and go.
func testConsulCmicroWatchesGo(t *testing.T, addr string) { cmicroWatchesGo(t, "consul", addr) }
