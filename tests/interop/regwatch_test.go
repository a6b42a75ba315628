// Shared by the etcd and Consul interop tests: each side finds, calls and
// watches the other through the registry under test.
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

// cmicroFindsGo: cmicro get service / list services / call, with
// --registry=REG on addr, find and call a Go greeter registered there.
func cmicroFindsGo(t *testing.T, reg, addr string) {
	g := startServerArgs(t, goServer, "--registry="+reg, "--registry_address="+addr)
	var svcs []*registry.Service
	if !waitFor(10*time.Second, func() bool {
		svcs, _ = cmicroServicesIn(t, "greeter", "--registry="+reg, "--registry_address="+addr)
		return hasAddr(svcs, g.addr)
	}) {
		t.Fatalf("cmicro get service greeter --registry=%s never showed the Go node %s (got %v)", reg,
			g.addr, nodeAddrs(svcs))
	}
	checkRecordIn(t, reg, "cmicro get service (Go greeter)", svcs, g.addr, "HelloRequest")
	r := run(t, 20*time.Second, cMicro, "list", "services", "--registry="+reg, "--registry_address="+addr)
	if r.code != 0 || !contains(strings.Fields(r.stdout), "greeter") {
		t.Errorf("cmicro list services --registry=%s: exit %d, %q, want greeter", reg, r.code, r.stdout)
	}
	r = run(t, 20*time.Second, cMicro, "call", "--registry="+reg, "--registry_address="+addr,
		"greeter", "Greeter.Hello", `{"name":"John"}`)
	expectOK(t, "cmicro call --registry="+reg+" greeter Greeter.Hello", r, map[string]interface{}{"msg": "Hello John"})
}

// goFindsC: Go Micro's plugin goReg (on the registry REG at addr) finds,
// lists and calls the C greeter, and sees its record go at SIGTERM.
func goFindsC(t *testing.T, reg, addr string, goReg registry.Registry) {
	c := startServerArgs(t, cServer, "--registry="+reg, "--registry_address="+addr)
	var svcs []*registry.Service
	if !waitFor(10*time.Second, func() bool {
		svcs, _ = goReg.GetService("greeter")
		return hasAddr(svcs, c.addr)
	}) {
		t.Fatalf("Go %s GetService(greeter) never showed the C node %s (got %v)", reg, c.addr, nodeAddrs(svcs))
	}
	checkRecordIn(t, reg, "Go GetService (C greeter)", svcs, c.addr, "Request")
	goListsAndCalls(t, goReg)
	// Deregistration on SIGTERM removes the record.
	c.cmd.Process.Signal(syscall.SIGTERM)
	if !waitFor(10*time.Second, func() bool {
		svcs, _ = goReg.GetService("greeter")
		return !hasAddr(svcs, c.addr)
	}) {
		t.Fatalf("the C node %s is still in %s after SIGTERM", c.addr, reg)
	}
}

// cmicroStreamsAndPublishes: `cmicro stream` reaches the C greeter found
// by name on the registry REG at addr, and `cmicro publish` reaches a
// `cmicro subscribe` whose HTTP-broker node is found through the same
// registry (the first publishes may precede the subscriber's record).
func cmicroStreamsAndPublishes(t *testing.T, reg, addr string) {
	flags := []string{"--registry=" + reg, "--registry_address=" + addr}
	startServerArgs(t, cServer, flags...)
	var r result
	if !waitFor(20*time.Second, func() bool {
		r = runIn(t, "{\"name\":\"a\"}\n{\"name\":\"b\"}\n", cMicro,
			append(append([]string{"stream"}, flags...), "greeter", "Greeter.Stream")...)
		return r.code == 0
	}) || r.stdout != "{\"msg\":\"Hello a\"}\n{\"msg\":\"Hello b\"}\n" {
		t.Fatalf("cmicro stream --registry=%s greeter Greeter.Stream: %+v", reg, r)
	}
	topic := "regtest." + reg
	sub := startCSub(t, append(append([]string{}, flags...), topic)...)
	if !waitFor(20*time.Second, func() bool {
		r = run(t, 10*time.Second, cMicro, append(append([]string{"publish"}, flags...),
			topic, `{"seq":0,"text":"from c"}`)...)
		return r.code == 0 && waitFor(time.Second, func() bool { return sub.count() > 0 })
	}) {
		t.Fatalf("cmicro subscribe --registry=%s got nothing from cmicro publish (last publish %+v)\nsubscriber stderr:\n%s",
			reg, r, sub.errb.String())
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	b, _ := sub.lines[0]["body"].(map[string]interface{})
	if sub.lines[0]["topic"] != topic || b == nil || b["text"] != "from c" {
		t.Errorf("cmicro subscribe --registry=%s: event %v, want topic %s and body {seq:0,text:from c}",
			reg, sub.lines[0], topic)
	}
}
