// Discovery by name over mDNS: Go Micro's default registry (util/mdns)
// against cmicro's --registry=mdns, both ways.
//
// Where the multicast goes. cmicro sets IP_MULTICAST_IF on every send, but
// Go's util/mdns never does: its queries and announcements follow the
// routing table, which on a machine with a default route means eth0 (Go
// joins 224.0.0.251 on every interface, lo included, so receiving on lo is
// fine; sending is the problem). Traffic must stay off the real network,
// so TestMDNSInterop re-runs this test binary in a private network
// namespace (unshare --net, as root) holding only lo, brought up, with
// 224.0.0.0/4 routed to lo. There Go's multicast goes over lo. Without
// root or unshare/ip the test skips and says why.
package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
)

const netnsEnv = "CMICRO_MDNS_NETNS"

func TestMDNSInterop(t *testing.T) {
	need(t)
	if os.Getenv(netnsEnv) == "1" {
		t.Skip("already inside the private network namespace")
	}
	if goOnly {
		t.Skip("INTEROP_GO_ONLY: the mDNS tests need the C binaries")
	}
	why := ""
	unshare, err1 := exec.LookPath("unshare")
	ip, err2 := exec.LookPath("ip")
	switch {
	case os.Geteuid() != 0:
		why = "not root"
	case err1 != nil:
		why = "no unshare(1)"
	case err2 != nil:
		why = "no ip(8)"
	}
	if why != "" {
		t.Skipf("mDNS interop skipped: %s. Go Micro's util/mdns sends multicast without IP_MULTICAST_IF, "+
			"so it follows the default route (eth0 here) instead of lo; the test must run it in a private "+
			"network namespace (unshare --net, lo up, 224.0.0.0/4 via lo), which needs root, unshare and ip", why)
	}
	script := fmt.Sprintf(`set -e; %s link set lo up; %s route add 224.0.0.0/4 dev lo; exec "$0" "$@"`, ip, ip)
	cmd := exec.Command(unshare, "--net", "--", "sh", "-c", script,
		os.Args[0], "-test.run", "^TestMDNSInNetns$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("inside the network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("mDNS interop in a private network namespace failed: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestMDNSInNetns") {
		t.Fatalf("TestMDNSInNetns did not pass")
	}
}

// TestMDNSInNetns is run by TestMDNSInterop inside its namespace.
func TestMDNSInNetns(t *testing.T) {
	if os.Getenv(netnsEnv) != "1" {
		t.Skip("runs only inside the network namespace that TestMDNSInterop creates")
	}
	need(t)
	t.Run("CmicroFindsAndCallsGoGreeter", testCmicroFindsGoGreeter)
	t.Run("GoFindsAndCallsCGreeter", testGoFindsCGreeter)
	t.Run("BothListedByBoth", testBothListed)
	t.Run("GoWatchSeesCGreeterComeAndGo", testGoWatchesCGreeter)
	t.Run("GoMicroGRPCClientCallsCByName", testGoMicroGRPCCallsC)
	t.Run("CCallsGoMicroGRPCByName", testCCallsGoMicroGRPC)
}

// cmicroServices runs `cmicro get service NAME --registry=mdns` and decodes
// its output, one JSON record a line.
func cmicroServices(t *testing.T, name string) ([]*registry.Service, result) {
	t.Helper()
	return cmicroServicesIn(t, name, "--registry=mdns")
}

// cmicroServicesIn runs `cmicro get service NAME` with the registry flags
// reg and decodes its lines.
func cmicroServicesIn(t *testing.T, name string, reg ...string) ([]*registry.Service, result) {
	t.Helper()
	r := run(t, 20*time.Second, cMicro, append([]string{"get", "service", name}, reg...)...)
	var svcs []*registry.Service
	if r.code != 0 {
		return nil, r
	}
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var s registry.Service
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("cmicro get service: line is not a registry.Service: %v\n%s", err, line)
		}
		svcs = append(svcs, &s)
	}
	return svcs, r
}

func nodeAddrs(svcs []*registry.Service) []string {
	var a []string
	for _, s := range svcs {
		for _, n := range s.Nodes {
			a = append(a, n.Address)
		}
	}
	sort.Strings(a)
	return a
}

func hasAddr(svcs []*registry.Service, addr string) bool {
	for _, a := range nodeAddrs(svcs) {
		if a == addr {
			return true
		}
	}
	return false
}

// checkRecord asserts that the node at addr arrived with its metadata, and
// its version record with a Greeter.Hello endpoint whose request type is
// reqType ("" for either greeter's: nodes of one version share the
// endpoints of whichever answer came first, in Go as in cmicro).
func checkRecord(t *testing.T, who string, svcs []*registry.Service, addr, reqType string) {
	t.Helper()
	checkRecordIn(t, "mdns", who, svcs, addr, reqType)
}

// checkRecordIn is checkRecord for a node registered in registry reg.
func checkRecordIn(t *testing.T, reg, who string, svcs []*registry.Service, addr, reqType string) {
	t.Helper()
	for _, s := range svcs {
		for _, n := range s.Nodes {
			if n.Address != addr {
				continue
			}
			if s.Version != "latest" {
				t.Errorf("%s: version %q, want latest", who, s.Version)
			}
			if n.Metadata["registry"] != reg || n.Metadata["protocol"] != "mucp" || n.Metadata["transport"] != "http" {
				t.Errorf("%s: node metadata %v lacks registry=%s protocol=mucp transport=http", who, n.Metadata, reg)
			}
			if !strings.HasPrefix(n.Id, "greeter-") {
				t.Errorf("%s: node id %q, want greeter-<uuid>", who, n.Id)
			}
			for _, e := range s.Endpoints {
				if e.Name == "Greeter.Hello" {
					okType := e.Request != nil && (e.Request.Name == reqType ||
						(reqType == "" && (e.Request.Name == "Request" || e.Request.Name == "HelloRequest")))
					if !okType || len(e.Request.Values) == 0 ||
						e.Request.Values[0].Name != "name" || e.Response == nil {
						b, _ := json.Marshal(e)
						t.Errorf("%s: Greeter.Hello endpoint %s, want request %s{name}", who, b, reqType)
					}
					return
				}
			}
			t.Errorf("%s: no Greeter.Hello among %d endpoints", who, len(s.Endpoints))
			return
		}
	}
	t.Errorf("%s: no node at %s", who, addr)
}

// waitFor polls f every 100 ms for up to d.
func waitFor(d time.Duration, f func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func cmicroList(t *testing.T) []string {
	t.Helper()
	r := run(t, 20*time.Second, cMicro, "list", "services", "--registry=mdns")
	if r.code != 0 {
		t.Fatalf("cmicro list services --registry=mdns: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	return strings.Fields(r.stdout)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func testCmicroFindsGoGreeter(t *testing.T) {
	s := startServerArgs(t, goServer) // no --registry: Go Micro's default, mdns
	var svcs []*registry.Service
	var last result
	if !waitFor(5*time.Second, func() bool {
		svcs, last = cmicroServices(t, "greeter")
		return hasAddr(svcs, s.addr)
	}) {
		t.Fatalf("cmicro get service greeter --registry=mdns never showed the Go node %s\nstdout: %s\nstderr: %s",
			s.addr, last.stdout, last.stderr)
	}
	checkRecord(t, "cmicro get service (Go greeter)", svcs, s.addr, "HelloRequest")
	if l := cmicroList(t); !contains(l, "greeter") {
		t.Errorf("cmicro list services --registry=mdns = %v, want greeter", l)
	}
	r := run(t, 20*time.Second, cMicro, "call", "--registry=mdns", "greeter", "Greeter.Hello", `{"name":"John"}`)
	expectOK(t, "cmicro call --registry=mdns greeter Greeter.Hello", r, map[string]interface{}{"msg": "Hello John"})
}

func goServices(reg registry.Registry, name string) []*registry.Service {
	svcs, _ := reg.GetService(name)
	return svcs
}

func testGoFindsCGreeter(t *testing.T) {
	s := startServerArgs(t, cServer, "--registry=mdns")
	reg := registry.NewRegistry() // Go Micro's mDNS registry
	var svcs []*registry.Service
	if !waitFor(5*time.Second, func() bool {
		svcs = goServices(reg, "greeter")
		return hasAddr(svcs, s.addr)
	}) {
		t.Fatalf("Go registry.GetService(greeter) never showed the C node %s (got %v)", s.addr, nodeAddrs(svcs))
	}
	checkRecord(t, "Go GetService (C greeter)", svcs, s.addr, "Request")
	goListsAndCalls(t, reg)
}

// goListsAndCalls: reg lists greeter, and a Go client on reg calls it by
// name.
func goListsAndCalls(t *testing.T, reg registry.Registry) {
	t.Helper()
	list, err := reg.ListServices()
	var names []string
	for _, x := range list {
		names = append(names, x.Name)
	}
	if err != nil || !contains(names, "greeter") {
		t.Errorf("Go %s ListServices = %v (%v), want greeter", reg, names, err)
	}
	c := client.NewClient(client.Registry(reg))
	rsp := map[string]interface{}{}
	err = c.Call(context.Background(), c.NewRequest("greeter", "Greeter.Hello", map[string]interface{}{"name": "John"}),
		&rsp, client.WithRequestTimeout(10*time.Second))
	if err != nil || rsp["msg"] != "Hello John" {
		t.Fatalf("Go client call by name greeter Greeter.Hello (%s): rsp=%v err=%v", reg, rsp, err)
	}
}

func testBothListed(t *testing.T) {
	g := startServerArgs(t, goServer)
	c := startServerArgs(t, cServer, "--registry=mdns")
	want := []string{g.addr, c.addr}
	sort.Strings(want)
	reg := registry.NewRegistry()
	var gs []*registry.Service
	if !waitFor(5*time.Second, func() bool {
		gs = goServices(reg, "greeter")
		return hasAddr(gs, g.addr) && hasAddr(gs, c.addr)
	}) {
		t.Fatalf("Go GetService(greeter) nodes %v, want %v", nodeAddrs(gs), want)
	}
	checkRecord(t, "Go GetService (Go node)", gs, g.addr, "")
	checkRecord(t, "Go GetService (C node)", gs, c.addr, "")
	var cs []*registry.Service
	if !waitFor(5*time.Second, func() bool {
		cs, _ = cmicroServices(t, "greeter")
		return hasAddr(cs, g.addr) && hasAddr(cs, c.addr)
	}) {
		t.Fatalf("cmicro get service greeter nodes %v, want %v", nodeAddrs(cs), want)
	}
	checkRecord(t, "cmicro get service (Go node)", cs, g.addr, "")
	checkRecord(t, "cmicro get service (C node)", cs, c.addr, "")
	if l := cmicroList(t); !contains(l, "greeter") || len(l) != 1 {
		t.Errorf("cmicro list services = %v, want exactly [greeter]", l)
	}
}

func testGoWatchesCGreeter(t *testing.T) {
	results := goWatch(t, registry.NewRegistry())
	time.Sleep(300 * time.Millisecond) // let the Go listener join the group
	s := startServerArgs(t, cServer, "--registry=mdns")
	waitResult(t, results, "create", s.addr, 5*time.Second) // from the C registry's announcement
	s.cmd.Process.Signal(syscall.SIGTERM)
	waitResult(t, results, "delete", s.addr, 5*time.Second) // from its goodbye (TTL 0) at deregistration
}

// goWatch starts a Go watcher of greeter on reg, stopped at the end of the
// test; the channel closes when the watcher stops.
func goWatch(t *testing.T, reg registry.Registry) <-chan *registry.Result {
	t.Helper()
	w, err := reg.Watch(registry.WatchService("greeter"))
	if err != nil {
		t.Fatalf("Go Watch (%s): %v", reg, err)
	}
	t.Cleanup(w.Stop)
	results := make(chan *registry.Result, 64)
	go func() {
		for {
			r, err := w.Next()
			if err != nil {
				close(results)
				return
			}
			results <- r
		}
	}()
	return results
}

// waitResult waits up to d for a Go watch result action on the one node at
// addr.
func waitResult(t *testing.T, results <-chan *registry.Result, action, addr string, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case r, ok := <-results:
			if !ok {
				t.Fatalf("Go watcher stopped before %s", action)
			}
			if r.Action == action && len(r.Service.Nodes) == 1 && r.Service.Nodes[0].Address == addr {
				return
			}
		case <-timeout:
			t.Fatalf("Go watcher saw no %s for the node %s within %v", action, addr, d)
		}
	}
}
