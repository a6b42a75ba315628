// gRPC over TLS (HTTP/2 with ALPN h2) with real peers: a stock grpc-go
// client (credentials.NewTLS with the test CA) calls
// greeter-proto-server --server=grpc --transport_secure for unary Hello
// and bidi Stream, under TLS and mutual TLS; the cmicro client (the CLI
// with --protocol=grpc --tls, and the generated C stub with
// --client=grpc) calls a stock grpc-go server over TLS and mTLS.
// Certificates are made at run time (makeCerts, tls_test.go).
package interop

import (
	"context"
	"crypto/tls"
	"io"
	"strings"
	"testing"
	"time"

	"cmicro/interop/pb/greeterpb"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

func grpcDialTLS(t *testing.T, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.Dial(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatalf("grpc.Dial %s: %v", addr, err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// unaryHello calls Hello once on cc: the reply's message, or the error.
func unaryHello(cc *grpc.ClientConn, name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rsp := &greeterpb.Response{}
	err := cc.Invoke(ctx, "/greeter.Greeter/Hello", &greeterpb.Request{Name: name}, rsp,
		grpc.WaitForReady(false))
	return rsp.Msg, err
}

// bidiHellos runs one Stream: each name sent and answered in turn, then
// CloseSend and io.EOF.
func bidiHellos(t *testing.T, cc *grpc.ClientConn, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := cc.NewStream(ctx, bidi, "/greeter.Greeter/Stream")
	if err != nil {
		t.Fatalf("NewStream: %v", err)
	}
	for _, n := range names {
		if err := s.SendMsg(&greeterpb.Request{Name: n}); err != nil {
			t.Fatalf("send %s: %v", n, err)
		}
		rsp := &greeterpb.Response{}
		if err := s.RecvMsg(rsp); err != nil || rsp.Msg != "Hello "+n {
			t.Fatalf("recv for %s: %v %q", n, err, rsp.Msg)
		}
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if err := s.RecvMsg(&greeterpb.Response{}); err != io.EOF {
		t.Fatalf("after CloseSend: %v, want io.EOF", err)
	}
}

// grpc-go over TLS -> greeter-proto-server --server=grpc --transport_secure.
func TestGRPCTLSGoClient(t *testing.T) {
	c := makeCerts(t)
	t.Run("TLS", func(t *testing.T) {
		srv := startServerArgs(t, cProto(t, "greeter-proto-server"), "--registry=memory", "--server=grpc",
			"--transport_secure", "--transport_tls_cert_file="+c.srv, "--transport_tls_key_file="+c.srvKey)
		cc := grpcDialTLS(t, srv.addr, &tls.Config{RootCAs: c.pool})
		for _, n := range []string{"John", "Jane"} {
			if msg, err := unaryHello(cc, n); err != nil || msg != "Hello "+n {
				t.Fatalf("unary over TLS: %q %v", msg, err)
			}
		}
		bidiHellos(t, cc, "a", "b", "c", "d", "e")
		// A client that does not trust the CA is refused.
		bad := grpcDialTLS(t, srv.addr, &tls.Config{})
		if _, err := unaryHello(bad, "x"); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("grpc-go without the CA: %v, want a certificate error", err)
		}
		// A plaintext (h2c) grpc-go client gets nothing from it.
		plain, err := grpc.Dial(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close()
		if _, err := unaryHello(plain, "x"); err == nil {
			t.Error("a plaintext grpc-go client was answered by the TLS server")
		}
		if msg, err := unaryHello(cc, "again"); err != nil || msg != "Hello again" {
			t.Fatalf("still serving: %q %v", msg, err)
		}
	})
	t.Run("MutualTLS", func(t *testing.T) {
		srv := startServerArgs(t, cProto(t, "greeter-proto-server"), "--registry=memory", "--server=grpc",
			"--transport_secure", "--transport_tls_cert_file="+c.srv, "--transport_tls_key_file="+c.srvKey,
			"--transport_tls_ca_file="+c.ca, "--transport_tls_client_auth=true")
		nocert := grpcDialTLS(t, srv.addr, &tls.Config{RootCAs: c.pool})
		if _, err := unaryHello(nocert, "x"); err == nil {
			t.Fatal("mTLS: a grpc-go client without a certificate was served")
		} else {
			t.Logf("without a client certificate: %v", err)
		}
		wrong := grpcDialTLS(t, srv.addr, &tls.Config{RootCAs: c.pool, Certificates: []tls.Certificate{c.badPair}})
		if _, err := unaryHello(wrong, "x"); err == nil {
			t.Fatal("mTLS: a grpc-go client with a wrong-CA certificate was served")
		}
		cc := grpcDialTLS(t, srv.addr, &tls.Config{RootCAs: c.pool, Certificates: []tls.Certificate{c.cliPair}})
		if msg, err := unaryHello(cc, "m"); err != nil || msg != "Hello m" {
			t.Fatalf("mTLS with the right certificate: %q %v", msg, err)
		}
		bidiHellos(t, cc, "x", "y")
		logs := srv.stderr.String() + srv.stdout.String()
		if !strings.Contains(logs, "did not return a certificate") && !strings.Contains(logs, "certificate required") {
			t.Errorf("greeter-proto-server logged no reason for the refused handshake:\n%s", logs)
		}
	})
}

// The cmicro client over TLS -> a stock grpc-go server (TLS, then mTLS):
// the CLI with --protocol=grpc --tls --ca_file, and the generated C stub
// with --client=grpc --transport_secure.
func TestGRPCTLSCClientCallsGRPCGoServer(t *testing.T) {
	need(t)
	if goOnly {
		t.Skip("INTEROP_GO_ONLY: no C client")
	}
	c := makeCerts(t)
	t.Run("TLS", func(t *testing.T) {
		srv := startServerArgs(t, goBuild(t, "grpcserver"), "--tls_cert="+c.srv, "--tls_key="+c.srvKey)
		r := run(t, 30*time.Second, cMicro, "call", "--protocol=grpc", "--address", srv.addr, "--tls",
			"--ca_file", c.ca, "greeter", "Greeter.Hello", `{"name":"John"}`)
		if r.code != 0 || !strings.Contains(r.stdout, `"Hello John"`) {
			t.Errorf("cmicro call --protocol=grpc --tls: %+v", r)
		}
		r = runIn(t, "{\"name\":\"p\"}\n{\"name\":\"q\"}\n", cMicro, "stream", "--protocol", "grpc",
			"--address="+srv.addr, "--tls", "--ca_file", c.ca, "greeter", "Greeter.Stream")
		if r.code != 0 || r.stdout != "{\"msg\":\"Hello p\"}\n{\"msg\":\"Hello q\"}\n" {
			t.Errorf("cmicro stream --protocol grpc --tls: %+v", r)
		}
		cli := cProto(t, "greeter-proto-client")
		r = run(t, 30*time.Second, cli, "--client=grpc", "--address="+srv.addr, "--transport_secure",
			"--transport_tls_ca_file="+c.ca, "--stream", "a", "b", "c")
		if r.code != 0 || r.stdout != "Hello a\nHello b\nHello c\n" {
			t.Errorf("greeter-proto-client --client=grpc over TLS, bidi: %+v", r)
		}
		r = run(t, 30*time.Second, cli, "--client=grpc", "--address="+srv.addr, "--transport_secure",
			"--transport_tls_ca_file="+c.ca, "--name", "")
		if r.code != 1 || !strings.Contains(r.stderr, `"code":400`) || !strings.Contains(r.stderr, "name required") {
			t.Errorf("InvalidArgument over TLS -> 400: %+v", r)
		}
		// Without the CA (the system's do not know it): a certificate
		// error, not an answer.
		r = run(t, 30*time.Second, cMicro, "call", "--protocol=grpc", "--address", srv.addr, "--tls",
			"greeter", "Greeter.Hello", `{"name":"x"}`)
		if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "certificate") {
			t.Errorf("cmicro call --tls without the CA: %+v", r)
		}
	})
	t.Run("MutualTLS", func(t *testing.T) {
		srv := startServerArgs(t, goBuild(t, "grpcserver"), "--tls_cert="+c.srv, "--tls_key="+c.srvKey,
			"--tls_client_ca="+c.ca)
		r := run(t, 30*time.Second, cMicro, "call", "--protocol=grpc", "--address", srv.addr, "--tls",
			"--ca_file", c.ca, "--cert_file", c.cli, "--key_file", c.cliKey, "greeter", "Greeter.Hello",
			`{"name":"Mutual"}`)
		if r.code != 0 || !strings.Contains(r.stdout, `"Hello Mutual"`) {
			t.Errorf("cmicro call --tls with a client certificate: %+v", r)
		}
		r = run(t, 30*time.Second, cMicro, "call", "--protocol=grpc", "--address", srv.addr, "--tls",
			"--ca_file", c.ca, "greeter", "Greeter.Hello", `{"name":"x"}`)
		if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "certificate") {
			t.Errorf("cmicro call --tls without a client certificate: %+v", r)
		}
	})
}

// The cmicro CLI over TLS -> gRPC C++'s greeter (bench_grpc_server with
// SSL credentials): unary and bidi.
func TestGRPCTLSCClientCallsGRPCCppServer(t *testing.T) {
	need(t)
	if goOnly {
		t.Skip("INTEROP_GO_ONLY: no C client")
	}
	c := makeCerts(t)
	addr, ds := startGRPCCpp(t, c.srv, c.srvKey)
	r := run(t, 30*time.Second, cMicro, "call", "--protocol=grpc", "--tls", "--ca_file", c.ca,
		"--descriptor_set", ds, "--address="+addr, "bench", "Greeter.Hello", `{"name":"John"}`)
	if r.code != 0 || !strings.Contains(r.stdout, `"Hello John"`) {
		t.Errorf("unary over TLS: %+v", r)
	}
	r = runIn(t, "{\"name\":\"a\"}\n{\"name\":\"b\"}\n", cMicro, "stream", "--protocol=grpc", "--tls",
		"--ca_file", c.ca, "--descriptor_set", ds, "--address="+addr, "bench", "Greeter.Stream")
	if r.code != 0 || r.stdout != "{\"msg\":\"Hello a\"}\n{\"msg\":\"Hello b\"}\n" {
		t.Errorf("bidi over TLS: %+v", r)
	}
}
