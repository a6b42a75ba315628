// TLS and mutual TLS between Go Micro v4's HTTP transport
// (transport.Secure(true) + transport.TLSConfig) and cmicro, both ways:
// a Go Micro client calls greeter-server --transport_secure=true, and
// `cmicro call --tls` calls a Go Micro server. Certificates (a CA, a
// server certificate for 127.0.0.1, a client certificate, and one from an
// unrelated CA) are made by the test in a temp dir.
package interop

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	mserver "go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"
)

type TLSHelloReq struct {
	Name string `json:"name"`
}

type TLSHelloRsp struct {
	Msg string `json:"msg"`
}

// TLSGreeter is a Go Micro handler: endpoint "TLSGreeter.Hello".
type TLSGreeter struct{}

func (g *TLSGreeter) Hello(ctx context.Context, req *TLSHelloReq, rsp *TLSHelloRsp) error {
	rsp.Msg = "Hello " + req.Name + " over TLS"
	return nil
}

type certFiles struct {
	dir                          string
	ca, srv, srvKey, cli, cliKey string
	badCli, badCliKey            string
	pool                         *x509.CertPool
	cliPair, badPair, srvPair    tls.Certificate
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mkCert(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	tmpl.SerialNumber = serial
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, der, kder
}

func makeCerts(t *testing.T) *certFiles {
	t.Helper()
	dir := t.TempDir()
	c := &certFiles{dir: dir}
	now := time.Now()
	caT := &x509.Certificate{Subject: pkix.Name{Organization: []string{"interop CA"}}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	ca, caKey, caDer, _ := mkCert(t, caT, nil, nil)
	otherT := *caT
	otherT.Subject = pkix.Name{Organization: []string{"unrelated CA"}}
	other, otherKey, _, _ := mkCert(t, &otherT, nil, nil)
	c.ca = filepath.Join(dir, "ca.pem")
	writePEM(t, c.ca, "CERTIFICATE", caDer)
	c.pool = x509.NewCertPool()
	c.pool.AddCert(ca)
	leaf := func(name string, parent *x509.Certificate, pk *ecdsa.PrivateKey, server bool) (string, string, tls.Certificate) {
		tmpl := &x509.Certificate{Subject: pkix.Name{Organization: []string{"interop"}, CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
			tmpl.DNSNames = []string{"localhost"}
		}
		_, _, der, kder := mkCert(t, tmpl, parent, pk)
		cp, kp := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
		writePEM(t, cp, "CERTIFICATE", der)
		writePEM(t, kp, "PRIVATE KEY", kder)
		pair, err := tls.LoadX509KeyPair(cp, kp)
		if err != nil {
			t.Fatal(err)
		}
		return cp, kp, pair
	}
	c.srv, c.srvKey, c.srvPair = leaf("srv", ca, caKey, true)
	c.cli, c.cliKey, c.cliPair = leaf("cli", ca, caKey, false)
	c.badCli, c.badCliKey, c.badPair = leaf("bad", other, otherKey, false)
	return c
}

// goTLSCall calls endpoint at addr with a Go Micro client whose HTTP
// transport has Secure(true) and cfg.
func goTLSCall(t *testing.T, addr, endpoint string, cfg *tls.Config) (string, error) {
	t.Helper()
	tr := transport.NewHTTPTransport(transport.Secure(true), transport.TLSConfig(cfg))
	c := client.NewClient(client.Transport(tr), client.Registry(registry.NewMemoryRegistry()),
		client.Retries(0), client.RequestTimeout(10*time.Second))
	var rsp map[string]interface{}
	req := c.NewRequest("greeter", endpoint, &TLSHelloReq{Name: "go"}, client.WithContentType("application/json"))
	err := c.Call(context.Background(), req, &rsp, client.WithAddress(addr))
	if err != nil {
		return "", err
	}
	msg, _ := rsp["msg"].(string)
	return msg, nil
}

// A Go Micro client over TLS calls greeter-server (TLS, then mTLS).
func TestTLSGoClientToCServer(t *testing.T) {
	need(t)
	if goOnly {
		t.Skip("INTEROP_GO_ONLY: needs the C binaries")
	}
	c := makeCerts(t)
	t.Run("TLS", func(t *testing.T) {
		s := startServerArgs(t, cServer, "--registry=memory", "--transport_secure=true",
			"--transport_tls_cert_file="+c.srv, "--transport_tls_key_file="+c.srvKey)
		msg, err := goTLSCall(t, s.addr, "Greeter.Hello", &tls.Config{RootCAs: c.pool})
		if err != nil || msg != "Hello go" {
			t.Fatalf("Go client over TLS: %q %v", msg, err)
		}
		// A Go client that does not trust the CA is refused.
		if _, err := goTLSCall(t, s.addr, "Greeter.Hello", &tls.Config{}); err == nil ||
			!strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Go client without the CA: want a certificate error, got %v", err)
		}
		// A plain Go client gets nothing from a TLS server.
		pc := client.NewClient(client.Registry(registry.NewMemoryRegistry()), client.Retries(0))
		var rsp map[string]interface{}
		if err := pc.Call(context.Background(), pc.NewRequest("greeter", "Greeter.Hello", &TLSHelloReq{Name: "x"}),
			&rsp, client.WithAddress(s.addr)); err == nil {
			t.Fatal("a plaintext Go client got an answer from a TLS server")
		}
		msg, err = goTLSCall(t, s.addr, "Greeter.Hello", &tls.Config{RootCAs: c.pool})
		if err != nil || msg != "Hello go" {
			t.Fatalf("still serving: %q %v", msg, err)
		}
	})
	t.Run("CSelfSigned", func(t *testing.T) {
		// No certificate: greeter-server makes one as Go Micro does; a Go
		// client skipping verification is served, one verifying is not.
		s := startServerArgs(t, cServer, "--registry=memory", "--transport_secure=true")
		msg, err := goTLSCall(t, s.addr, "Greeter.Hello", &tls.Config{InsecureSkipVerify: true})
		if err != nil || msg != "Hello go" {
			t.Fatalf("Go client, InsecureSkipVerify, C self-signed: %q %v", msg, err)
		}
		if _, err := goTLSCall(t, s.addr, "Greeter.Hello", &tls.Config{RootCAs: c.pool}); err == nil {
			t.Fatal("a verifying Go client accepted the self-signed certificate")
		}
	})
	t.Run("MutualTLS", func(t *testing.T) {
		s := startServerArgs(t, cServer, "--registry=memory", "--transport_secure=true",
			"--transport_tls_cert_file="+c.srv, "--transport_tls_key_file="+c.srvKey,
			"--transport_tls_ca_file="+c.ca, "--transport_tls_client_auth=true")
		if _, err := goTLSCall(t, s.addr, "Greeter.Hello", &tls.Config{RootCAs: c.pool}); err == nil {
			t.Fatal("mTLS: a Go client without a certificate was served")
		} else {
			t.Logf("without a client certificate: %v", err)
		}
		if _, err := goTLSCall(t, s.addr, "Greeter.Hello",
			&tls.Config{RootCAs: c.pool, Certificates: []tls.Certificate{c.badPair}}); err == nil {
			t.Fatal("mTLS: a Go client with a wrong-CA certificate was served")
		} else {
			t.Logf("wrong-CA client certificate: %v", err)
		}
		msg, err := goTLSCall(t, s.addr, "Greeter.Hello",
			&tls.Config{RootCAs: c.pool, Certificates: []tls.Certificate{c.cliPair}})
		if err != nil || msg != "Hello go" {
			t.Fatalf("mTLS with the right certificate: %q %v", msg, err)
		}
		if !strings.Contains(s.stderr.String()+s.stdout.String(), "TLS handshake with") {
			t.Errorf("greeter-server logged no reason for the refused handshakes:\n%s", s.stderr.String())
		}
	})
}

// startGoTLSServer runs a Go Micro server (HTTP transport, TLS) with the
// TLSGreeter handler on a free port.
func startGoTLSServer(t *testing.T, opts ...transport.Option) string {
	t.Helper()
	addr := freeAddr(t)
	tr := transport.NewHTTPTransport(opts...)
	srv := mserver.NewServer(mserver.Name("greeter"), mserver.Address(addr), mserver.Transport(tr),
		mserver.Registry(registry.NewMemoryRegistry()))
	if err := srv.Handle(srv.NewHandler(&TLSGreeter{})); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	return addr
}

// `cmicro call --tls` calls a Go Micro server over TLS: verified with
// --ca_file, mTLS with --cert_file/--key_file, and Go Micro's self-signed
// certificate (transport.Secure(true) alone) with
// --tls_insecure_skip_verify only.
func TestTLSCClientToGoServer(t *testing.T) {
	need(t)
	if goOnly {
		t.Skip("INTEROP_GO_ONLY: needs the C binaries")
	}
	c := makeCerts(t)
	body := `{"name":"c"}`
	want := "Hello c over TLS"
	t.Run("TLS", func(t *testing.T) {
		addr := startGoTLSServer(t, transport.Secure(true),
			transport.TLSConfig(&tls.Config{Certificates: []tls.Certificate{c.srvPair}}))
		r := run(t, 30*time.Second, cMicro, "call", "--tls", "--ca_file", c.ca, "--address", addr,
			"greeter", "TLSGreeter.Hello", body)
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("cmicro call --tls: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		r = run(t, 30*time.Second, cMicro, "call", "--tls", "--address", addr, "greeter", "TLSGreeter.Hello", body)
		if r.code == 0 || !strings.Contains(r.stderr, "certificate") {
			t.Fatalf("cmicro call --tls without the CA: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("MutualTLS", func(t *testing.T) {
		addr := startGoTLSServer(t, transport.Secure(true), transport.TLSConfig(&tls.Config{
			Certificates: []tls.Certificate{c.srvPair}, ClientCAs: c.pool,
			ClientAuth: tls.RequireAndVerifyClientCert}))
		r := run(t, 30*time.Second, cMicro, "call", "--tls", "--ca_file", c.ca, "--cert_file", c.cli,
			"--key_file", c.cliKey, "--address", addr, "greeter", "TLSGreeter.Hello", body)
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("cmicro call mTLS: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		r = run(t, 30*time.Second, cMicro, "call", "--tls", "--ca_file", c.ca, "--address", addr,
			"greeter", "TLSGreeter.Hello", body)
		if r.code == 0 || !strings.Contains(r.stderr, "certificate") {
			t.Fatalf("cmicro call mTLS without a certificate: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		t.Logf("refused: %s", strings.TrimSpace(r.stderr))
	})
	t.Run("GoSelfSigned", func(t *testing.T) {
		addr := startGoTLSServer(t, transport.Secure(true))
		r := run(t, 30*time.Second, cMicro, "call", "--tls", "--address", addr, "greeter", "TLSGreeter.Hello", body)
		if r.code == 0 {
			t.Fatalf("Go Micro's self-signed certificate was accepted without --tls_insecure_skip_verify")
		}
		r = run(t, 30*time.Second, cMicro, "call", "--tls", "--tls_insecure_skip_verify=true", "--address", addr,
			"greeter", "TLSGreeter.Hello", body)
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("cmicro call --tls_insecure_skip_verify: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
	})
}
