// Discovery by name through a real etcd (Debian's etcd-server, started here
// on free loopback ports in a temporary directory): Go Micro v4 with its
// etcd plugin (github.com/go-micro/plugins/v4/registry/etcd) on one side,
// cmicro's --registry=etcd on the other. Each finds, lists and calls the
// other by name, and each side's watcher sees the other's register and
// deregister.
package interop

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"syscall"
	"testing"
	"time"

	etcd "github.com/go-micro/plugins/v4/registry/etcd"
	"go-micro.dev/v4/registry"
)

// startEtcd runs one etcd member and returns its client address.
func startEtcd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd is not installed (scripts/install-deps.sh installs etcd-server)")
	}
	dir := t.TempDir()
	caddr, paddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "--name", "interop", "--data-dir", dir+"/data",
		"--listen-client-urls", "http://"+caddr, "--advertise-client-urls", "http://"+caddr,
		"--listen-peer-urls", "http://"+paddr, "--initial-advertise-peer-urls", "http://"+paddr,
		"--initial-cluster", "interop=http://"+paddr,
		"--heartbeat-interval", "10", "--election-timeout", "100",
		"--log-level", "error", "--logger", "zap", "--log-outputs", dir+"/etcd.log")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	if !waitFor(30*time.Second, func() bool {
		rsp, err := http.Get("http://" + caddr + "/health")
		if err != nil {
			return false
		}
		defer rsp.Body.Close()
		var h struct{ Health string }
		return json.NewDecoder(rsp.Body).Decode(&h) == nil && h.Health == "true"
	}) {
		t.Fatalf("etcd on %s not healthy within 30 s", caddr)
	}
	return caddr
}

func TestEtcdInterop(t *testing.T) {
	need(t)
	if goOnly {
		t.Skip("INTEROP_GO_ONLY: the etcd tests need the C binaries")
	}
	addr := startEtcd(t)
	t.Run("CmicroFindsAndCallsGoGreeter", func(t *testing.T) { testEtcdCmicroFindsGo(t, addr) })
	t.Run("GoFindsAndCallsCGreeter", func(t *testing.T) { testEtcdGoFindsC(t, addr) })
	t.Run("GoWatchesCGreeter", func(t *testing.T) { testEtcdGoWatchesC(t, addr) })
	t.Run("CmicroWatchesGoGreeter", func(t *testing.T) { testEtcdCmicroWatchesGo(t, addr) })
	t.Run("CmicroStreamsAndPublishes", func(t *testing.T) { cmicroStreamsAndPublishes(t, "etcd", addr) })
}

func testEtcdCmicroFindsGo(t *testing.T, addr string) { cmicroFindsGo(t, "etcd", addr) }

func testEtcdGoFindsC(t *testing.T, addr string) {
	goFindsC(t, "etcd", addr, etcd.NewRegistry(registry.Addrs(addr)))
}

func testEtcdGoWatchesC(t *testing.T, addr string) {
	results := goWatch(t, etcd.NewRegistry(registry.Addrs(addr)))
	s := startServerArgs(t, cServer, "--registry=etcd", "--registry_address="+addr)
	waitResult(t, results, "create", s.addr, 10*time.Second)
	s.cmd.Process.Signal(syscall.SIGTERM)
	waitResult(t, results, "delete", s.addr, 10*time.Second)
}

// `cmicro watch --registry=etcd greeter` sees the Go greeter come and go.
func testEtcdCmicroWatchesGo(t *testing.T, addr string) { cmicroWatchesGo(t, "etcd", addr) }
