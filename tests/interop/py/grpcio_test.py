"""Python grpcio (PyPI) against the C greeter started with --server=grpc.

Run by run.sh with CMICRO_BIN_DIR set: greeter-proto-server serves
greeter.proto (examples/greeter-proto) over gRPC; the stubs are generated
here by grpcio-tools from the same .proto. Unary Hello, bidirectional
Stream, a C handler's error, an unknown method, and deadlines.
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
