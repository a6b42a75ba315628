// Pub/sub between Go Micro v4 and cmicro, both ways, over the HTTP broker
// (subscribers found through the mDNS registry, so this runs in a private
// network namespace like mdns_test.go) and over the NATS broker (Go Micro's
// NATS plugin, github.com/go-micro/plugins/v4/broker/nats, against a real
// nats-server on a free loopback port).
//
// Go side: a real micro.Service with micro.RegisterSubscriber, and
// micro.NewEvent(...).Publish. C side: `cmicro subscribe` and
// `cmicro publish`.
package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	natsbroker "github.com/go-micro/plugins/v4/broker/nats"
	"go-micro.dev/v4"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/registry"
	mserver "go-micro.dev/v4/server"
)

const brokerNetnsEnv = "CMICRO_BROKER_NETNS"

type PubMsg struct {
	Seq  int    `json:"seq"`
	Text string `json:"text"`
}

// cSubscriber runs `cmicro subscribe` and collects its JSON lines.
type cSub struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []map[string]interface{}
	ready chan struct{}
	done  chan struct{}
	errb  syncBuf
}

func startCSub(t *testing.T, args ...string) *cSub {
	t.Helper()
	s := &cSub{ready: make(chan struct{}), done: make(chan struct{})}
	s.cmd = exec.Command(cMicro, append([]string{"subscribe"}, args...)...)
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	s.cmd.Stderr = pw
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("cmicro subscribe: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			s.errb.Write([]byte(sc.Text() + "\n"))
			if !once && strings.Contains(sc.Text(), "subscribed to") {
				once = true
				close(s.ready)
			}
		}
	}()
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var m map[string]interface{}
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				s.mu.Lock()
				s.lines = append(s.lines, m)
				s.mu.Unlock()
			}
		}
		s.cmd.Wait()
		pw.Close()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
		}
	})
	select {
	case <-s.ready:
	case <-s.done:
		t.Fatalf("cmicro subscribe exited early:\n%s", s.errb.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("cmicro subscribe never subscribed:\n%s", s.errb.String())
	}
	return s
}

func (s *cSub) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

// checkCReceived: n messages seq 0..n-1 with Go Micro's event header.
func checkCReceived(t *testing.T, s *cSub, topic string, n int) {
	t.Helper()
	if !waitFor(20*time.Second, func() bool { return s.count() >= n }) {
		t.Fatalf("C subscriber got %d of %d events\nstderr:\n%s", s.count(), n, s.errb.String())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[int]bool{}
	for _, l := range s.lines {
		h, _ := l["header"].(map[string]interface{})
		b, _ := l["body"].(map[string]interface{})
		if l["topic"] != topic || h["Micro-Topic"] != topic || h["Content-Type"] != "application/json" ||
			len(fmt.Sprint(h["Micro-Id"], h["Micro-ID"])) < 36 || b == nil || b["text"] != "from go" {
			t.Errorf("C subscriber event %v: want topic %s, Go Micro's header and body {seq,text:from go}", l, topic)
			continue
		}
		seen[int(b["seq"].(float64))] = true
	}
	for i := 0; i < n; i++ {
		if !seen[i] {
			t.Errorf("C subscriber missed seq %d", i)
		}
	}
}

// goSub is a real Go Micro service with a subscriber.
type goSub struct {
	mu  sync.Mutex
	got map[int]PubMsg
	md  []map[string]string
}

func startGoSub(t *testing.T, topic string, opts ...micro.Option) *goSub {
	t.Helper()
	g := &goSub{got: map[int]PubMsg{}}
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	opts = append(opts, micro.Name("gosub"), micro.Address("127.0.0.1:0"), micro.Context(ctx),
		micro.AfterStart(func() error { close(ready); return nil }))
	svc := micro.NewService(opts...)
	err := micro.RegisterSubscriber(topic, svc.Server(), func(ctx context.Context, m *PubMsg) error {
		g.mu.Lock()
		g.got[m.Seq] = *m
		g.mu.Unlock()
		return nil
	}, mserver.SubscriberQueue("goq"))
	if err != nil {
		t.Fatalf("RegisterSubscriber: %v", err)
	}
	stopped := make(chan struct{})
	go func() {
		svc.Run()
		close(stopped)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-stopped:
		case <-time.After(10 * time.Second):
		}
	})
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("Go subscriber service did not start")
	}
	return g
}

func (g *goSub) has(seq int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.got[seq]
	return ok
}

// cPublishUntil runs `cmicro publish` for each seq until the Go subscriber
// has it (the first may precede the discovery of the subscriber).
func cPublishUntil(t *testing.T, g *goSub, topic string, n int, extra ...string) {
	t.Helper()
	for i := 0; i < n; i++ {
		body := fmt.Sprintf(`{"seq":%d,"text":"from c"}`, i)
		ok := waitFor(20*time.Second, func() bool {
			if g.has(i) {
				return true
			}
			args := append([]string{"publish"}, extra...)
			args = append(args, topic, body)
			r := run(t, 20*time.Second, cMicro, args...)
			if r.code != 0 {
				t.Logf("cmicro publish: exit %d %s", r.code, strings.TrimSpace(r.stderr))
				return false
			}
			return waitFor(2*time.Second, func() bool { return g.has(i) })
		})
		if !ok {
			t.Fatalf("Go subscriber never got seq %d from cmicro publish", i)
		}
		g.mu.Lock()
		m := g.got[i]
		g.mu.Unlock()
		if m.Text != "from c" {
			t.Errorf("Go subscriber seq %d: %+v", i, m)
		}
	}
}

// goPublish publishes n events with micro.NewEvent; a failed publish (no
// subscriber discovered yet) is retried.
func goPublish(t *testing.T, svc micro.Service, topic string, n int) {
	t.Helper()
	ev := micro.NewEvent(topic, svc.Client())
	for i := 0; i < n; i++ {
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := ev.Publish(context.Background(), &PubMsg{Seq: i, Text: "from go"})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Go publish seq %d: %v", i, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// ------------------------------------------------------------- HTTP broker

func TestBrokerHTTPInterop(t *testing.T) {
	need(t)
	if os.Getenv(brokerNetnsEnv) == "1" || os.Getenv(netnsEnv) == "1" {
		t.Skip("already inside the private network namespace")
	}
	if goOnly {
		t.Skip("INTEROP_GO_ONLY: needs the C binaries")
	}
	unshare, err1 := exec.LookPath("unshare")
	ip, err2 := exec.LookPath("ip")
	if os.Geteuid() != 0 || err1 != nil || err2 != nil {
		t.Skip("HTTP broker interop needs root, unshare and ip: Go's util/mdns must run in a private " +
			"network namespace (see mdns_test.go)")
	}
	script := fmt.Sprintf(`set -e; %s link set lo up; %s route add 224.0.0.0/4 dev lo; exec "$0" "$@"`, ip, ip)
	cmd := exec.Command(unshare, "--net", "--", "sh", "-c", script,
		os.Args[0], "-test.run", "^TestBrokerHTTPInNetns$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), brokerNetnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("inside the network namespace:\n%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestBrokerHTTPInNetns") {
		t.Fatalf("HTTP broker interop in a private network namespace failed: %v", err)
	}
}

func TestBrokerHTTPInNetns(t *testing.T) {
	if os.Getenv(brokerNetnsEnv) != "1" {
		t.Skip("runs only inside the namespace TestBrokerHTTPInterop creates")
	}
	need(t)
	t.Run("GoPublisherToCSubscriber", func(t *testing.T) {
		s := startCSub(t, "--broker=http", "--registry=mdns", "--count=5", "interop.http.gc")
		// Each Go service gets its own HTTP broker: Go Micro's global
		// DefaultBroker resets its address to ":0" when disconnected, which
		// races with the next service subscribing on the same global.
		svc := micro.NewService(micro.Name("gopub"), micro.Broker(broker.NewBroker()),
			micro.Registry(registry.NewRegistry()))
		if err := svc.Options().Broker.Connect(); err != nil {
			t.Fatal(err)
		}
		defer svc.Options().Broker.Disconnect()
		goPublish(t, svc, "interop.http.gc", 5)
		checkCReceived(t, s, "interop.http.gc", 5)
	})
	t.Run("CPublisherToGoSubscriber", func(t *testing.T) {
		g := startGoSub(t, "interop.http.cg", micro.Broker(broker.NewBroker()),
			micro.Registry(registry.NewRegistry()))
		cPublishUntil(t, g, "interop.http.cg", 5, "--broker=http", "--registry=mdns")
	})
	// TLS (Go Micro's broker.Secure): subscribers listen with a
	// self-signed certificate and advertise secure=true; publishers use
	// https without verification (Go Micro v4's behaviour, both sides).
	t.Run("GoPublisherToCSecureSubscriber", func(t *testing.T) {
		s := startCSub(t, "--broker=http", "--registry=mdns", "--broker_secure=true", "--count=5",
			"interop.https.gc")
		svc := micro.NewService(micro.Name("gopubs"), micro.Broker(broker.NewBroker()),
			micro.Registry(registry.NewRegistry()))
		if err := svc.Options().Broker.Connect(); err != nil {
			t.Fatal(err)
		}
		defer svc.Options().Broker.Disconnect()
		goPublish(t, svc, "interop.https.gc", 5)
		checkCReceived(t, s, "interop.https.gc", 5)
	})
	t.Run("CPublisherToGoSecureSubscriber", func(t *testing.T) {
		g := startGoSub(t, "interop.https.cg", micro.Broker(broker.NewBroker(broker.Secure(true))),
			micro.Registry(registry.NewRegistry()))
		cPublishUntil(t, g, "interop.https.cg", 5, "--broker=http", "--registry=mdns")
	})
}

// ------------------------------------------------------------- NATS broker

func natsServer(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nats-server", "/usr/bin/nats-server"} {
			if _, e := os.Stat(p); e == nil {
				bin = p
			}
		}
	}
	if bin == "" {
		t.Skip("nats-server is not installed (scripts/install-deps.sh installs it)")
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", port, "-l", filepath.Join(dir, "nats.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if !waitFor(5*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatal("nats-server did not start")
	}
	return "nats://" + addr
}

func TestBrokerNATSInterop(t *testing.T) {
	need(t)
	if goOnly {
		t.Skip("INTEROP_GO_ONLY: needs the C binaries")
	}
	if os.Getenv(brokerNetnsEnv) == "1" || os.Getenv(netnsEnv) == "1" {
		t.Skip("runs outside the namespace")
	}
	url := natsServer(t)
	cflags := []string{"--broker=nats", "--broker_address=" + url, "--registry=memory"}
	newGoBroker := func() broker.Broker { return natsbroker.NewBroker(broker.Addrs(url)) }

	t.Run("GoPublisherToCSubscriber", func(t *testing.T) {
		s := startCSub(t, append(cflags, "--count=5", "interop.nats.gc")...)
		svc := micro.NewService(micro.Name("gopub"), micro.Broker(newGoBroker()),
			micro.Registry(registry.NewMemoryRegistry()))
		if err := svc.Options().Broker.Connect(); err != nil {
			t.Fatal(err)
		}
		defer svc.Options().Broker.Disconnect()
		goPublish(t, svc, "interop.nats.gc", 5)
		checkCReceived(t, s, "interop.nats.gc", 5)
	})
	t.Run("CPublisherToGoSubscriber", func(t *testing.T) {
		g := startGoSub(t, "interop.nats.cg", micro.Broker(newGoBroker()),
			micro.Registry(registry.NewMemoryRegistry()))
		cPublishUntil(t, g, "interop.nats.cg", 5, cflags...)
	})
}
