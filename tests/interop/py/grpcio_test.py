"""Python grpcio (PyPI) against the C greeter started with --server=grpc.

Run by run.sh with CMICRO_BIN_DIR set: greeter-proto-server serves
greeter.proto (examples/greeter-proto) over gRPC; the stubs are generated
here by grpcio-tools from the same .proto. Unary Hello, bidirectional
Stream, a C handler's error, an unknown method, and deadlines; then the
same greeter over TLS (--transport_secure, ALPN h2) with
grpc.ssl_channel_credentials, and mutual TLS. The certificates are made
here at run time with the openssl command (Debian's openssl package).
"""
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import grpc
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.join(HERE, "..", "..", "..", "examples", "greeter-proto")
BIN_DIR = os.environ.get("CMICRO_BIN_DIR", "")

GEN = tempfile.mkdtemp(prefix="cmicro-grpcio-")
if protoc.main(["protoc", "-I" + PROTO_DIR, "--python_out=" + GEN,
                "--grpc_python_out=" + GEN,
                os.path.join(PROTO_DIR, "greeter.proto")]) != 0:
    raise SystemExit("grpc_tools.protoc failed")
sys.path.insert(0, GEN)
import greeter_pb2  # noqa: E402
import greeter_pb2_grpc  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_certs():
    """A CA, a server certificate for 127.0.0.1/localhost, a client
    certificate, and an unrelated CA, as PEM files in a temp dir."""
    d = tempfile.mkdtemp(prefix="cmicro-grpcio-tls-")
    p = {n: os.path.join(d, n) for n in
         ("ca.pem", "ca.key", "other.pem", "other.key", "srv.pem", "srv.key",
          "cli.pem", "cli.key", "ext.cnf", "cli.cnf", "x.csr")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes"]
    for name in ("ca", "other"):
        openssl("req", "-x509", *ec, "-keyout", p[name + ".key"],
                "-out", p[name + ".pem"], "-days", "1",
                "-subj", "/O=grpcio interop %s" % name)
    with open(p["ext.cnf"], "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "extendedKeyUsage=serverAuth,clientAuth\n"
                "basicConstraints=CA:FALSE\n")
    with open(p["cli.cnf"], "w") as f:
        f.write("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
    for name, ext in (("srv", "ext.cnf"), ("cli", "cli.cnf")):
        openssl("req", *ec, "-keyout", p[name + ".key"], "-out", p["x.csr"],
                "-subj", "/O=grpcio interop/CN=" + name)
        openssl("x509", "-req", "-in", p["x.csr"], "-CA", p["ca.pem"],
                "-CAkey", p["ca.key"], "-CAcreateserial", "-days", "1",
                "-out", p[name + ".pem"], "-extfile", p[ext])
    data = {}
    for n in ("ca.pem", "other.pem", "cli.pem", "cli.key"):
        with open(p[n], "rb") as f:
            data[n] = f.read()
    return p, data


def start_server(addr, *extra):
    proc = subprocess.Popen(
        [os.path.join(BIN_DIR, "greeter-proto-server"),
         "--server_address=" + addr, "--registry=memory", "--server=grpc"]
        + list(extra),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    if "listening on" not in line:
        raise RuntimeError("greeter-proto-server: " + line)
    return proc


def stop_server(proc):
    proc.terminate()
    out = proc.communicate(timeout=10)[0]
    return out


class GrpcioAgainstC(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.addr = "127.0.0.1:%d" % free_port()
        cls.proc = subprocess.Popen(
            [os.path.join(BIN_DIR, "greeter-proto-server"),
             "--server_address=" + cls.addr, "--registry=memory",
             "--server=grpc"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = cls.proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError("greeter-proto-server: " + line)
        cls.channel = grpc.insecure_channel(cls.addr)
        grpc.channel_ready_future(cls.channel).result(timeout=10)
        cls.stub = greeter_pb2_grpc.GreeterStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.proc.terminate()
        cls.proc.wait(timeout=10)

    def test_unary(self):
        r = self.stub.Hello(greeter_pb2.Request(name="John"), timeout=10)
        self.assertEqual(r.msg, "Hello John")

    def test_handler_error(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.Hello(greeter_pb2.Request(name=""), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn('"code":400', cm.exception.details())
        self.assertIn("name required", cm.exception.details())

    def test_bidi_stream(self):
        names = ["a", "b", "c", "d"]
        replies = self.stub.Stream(
            iter([greeter_pb2.Request(name=n) for n in names]), timeout=10)
        self.assertEqual([r.msg for r in replies],
                         ["Hello " + n for n in names])

    def test_bidi_stream_error(self):
        replies = self.stub.Stream(
            iter([greeter_pb2.Request(name="x"), greeter_pb2.Request()]),
            timeout=10)
        got = []
        with self.assertRaises(grpc.RpcError) as cm:
            for r in replies:
                got.append(r.msg)
        self.assertEqual(got, ["Hello x"])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_unknown_method(self):
        nope = self.channel.unary_unary(
            "/greeter.Greeter/Nope",
            request_serializer=greeter_pb2.Request.SerializeToString,
            response_deserializer=greeter_pb2.Response.FromString)
        with self.assertRaises(grpc.RpcError) as cm:
            nope(greeter_pb2.Request(name="x"), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        self.assertIn("unknown service Greeter.Nope", cm.exception.details())

    def test_deadline_exceeded_by_server(self):
        # Go Micro's `timeout` metadata (ns): the headers go now, the
        # message after the deadline, so the server itself answers.
        late = self.channel.stream_unary(
            "/greeter.Greeter/Hello",
            request_serializer=greeter_pb2.Request.SerializeToString,
            response_deserializer=greeter_pb2.Response.FromString)

        def slow():
            time.sleep(0.6)
            yield greeter_pb2.Request(name="late")

        with self.assertRaises(grpc.RpcError) as cm:
            late(slow(), timeout=10, metadata=(("timeout", "200000000"),))
        self.assertEqual(cm.exception.code(),
                         grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertIn("408", cm.exception.details())

    def test_still_serving(self):
        for i in range(20):
            r = self.stub.Hello(greeter_pb2.Request(name=str(i)), timeout=10)
            self.assertEqual(r.msg, "Hello %d" % i)


class GrpcioTLSAgainstC(unittest.TestCase):
    """greeter-proto-server --server=grpc --transport_secure with a
    certificate from the test CA; then mutual TLS."""

    @classmethod
    def setUpClass(cls):
        cls.paths, cls.pem = make_certs()

    def secure(self, addr, root, key=None, chain=None):
        creds = grpc.ssl_channel_credentials(
            root_certificates=root, private_key=key, certificate_chain=chain)
        ch = grpc.secure_channel(addr, creds)
        self.addCleanup(ch.close)
        return ch, greeter_pb2_grpc.GreeterStub(ch)

    def test_tls_unary_and_bidi(self):
        addr = "127.0.0.1:%d" % free_port()
        proc = start_server(addr, "--transport_secure",
                            "--transport_tls_cert_file=" + self.paths["srv.pem"],
                            "--transport_tls_key_file=" + self.paths["srv.key"])
        try:
            ch, stub = self.secure(addr, self.pem["ca.pem"])
            grpc.channel_ready_future(ch).result(timeout=10)
            r = stub.Hello(greeter_pb2.Request(name="TLS"), timeout=10)
            self.assertEqual(r.msg, "Hello TLS")
            names = ["a", "b", "c"]
            replies = stub.Stream(
                iter([greeter_pb2.Request(name=n) for n in names]), timeout=10)
            self.assertEqual([x.msg for x in replies],
                             ["Hello " + n for n in names])
            # A client trusting another CA is refused; the server serves on.
            _, bad = self.secure(addr, self.pem["other.pem"])
            with self.assertRaises(grpc.RpcError) as cm:
                bad.Hello(greeter_pb2.Request(name="x"), timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
            r = stub.Hello(greeter_pb2.Request(name="again"), timeout=10)
            self.assertEqual(r.msg, "Hello again")
        finally:
            stop_server(proc)

    def test_mutual_tls(self):
        addr = "127.0.0.1:%d" % free_port()
        proc = start_server(addr, "--transport_secure",
                            "--transport_tls_cert_file=" + self.paths["srv.pem"],
                            "--transport_tls_key_file=" + self.paths["srv.key"],
                            "--transport_tls_ca_file=" + self.paths["ca.pem"],
                            "--transport_tls_client_auth=true")
        try:
            _, nocert = self.secure(addr, self.pem["ca.pem"])
            with self.assertRaises(grpc.RpcError) as cm:
                nocert.Hello(greeter_pb2.Request(name="x"), timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
            _, stub = self.secure(addr, self.pem["ca.pem"],
                                  key=self.pem["cli.key"],
                                  chain=self.pem["cli.pem"])
            r = stub.Hello(greeter_pb2.Request(name="mutual"), timeout=10)
            self.assertEqual(r.msg, "Hello mutual")
            replies = stub.Stream(iter([greeter_pb2.Request(name="m")]),
                                  timeout=10)
            self.assertEqual([x.msg for x in replies], ["Hello m"])
        finally:
            out = stop_server(proc)
        self.assertIn("TLS handshake with", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
