// grpcserver: a stock grpc-go server (google.golang.org/grpc, no Go Micro)
// for greeter.proto, registered under its proto name greeter.Greeter:
//
//	Hello  {name:X} -> {msg:"Hello X"}; no name: InvalidArgument
//	       "name required"; name "conflict": AlreadyExists; the request's
//	       x-foo metadata comes back as the x-foo response header
//	Stream bidirectional: each {name:X} -> {msg:"Hello X"}, until the
//	       client ends its side; no name: InvalidArgument
//
// It serves application/grpc(+proto) and, through protojson, +json.
//
//	grpcserver --server_address=127.0.0.1:PORT [--tls_cert F --tls_key F
//	           [--tls_client_ca F]]
//
// With --tls_cert it serves over TLS (credentials.NewTLS: ALPN h2), and
// with --tls_client_ca it requires a client certificate signed by that
// CA (mTLS). Prints "grpcserver listening on ADDR".
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"

	"cmicro/interop/pb/greeterpb"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

type jsonCodec struct{}

func (jsonCodec) Marshal(v interface{}) ([]byte, error) {
	return protojson.Marshal(v.(proto.Message))
}
func (jsonCodec) Unmarshal(b []byte, v interface{}) error {
	return protojson.Unmarshal(b, v.(proto.Message))
}
func (jsonCodec) Name() string { return "json" }

func hello(ctx context.Context, in *greeterpb.Request) (*greeterpb.Response, error) {
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("x-foo")) > 0 {
		grpc.SetHeader(ctx, metadata.Pairs("x-foo", md.Get("x-foo")[0]))
	}
	switch in.Name {
	case "":
		return nil, status.Error(codes.InvalidArgument, "name required")
	case "conflict":
		return nil, status.Error(codes.AlreadyExists, "already there")
	}
	return &greeterpb.Response{Msg: "Hello " + in.Name}, nil
}

var desc = grpc.ServiceDesc{
	ServiceName: "greeter.Greeter",
	HandlerType: (*interface{})(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Hello",
		Handler: func(srv interface{}, ctx context.Context, dec func(interface{}) error, _ grpc.UnaryServerInterceptor) (interface{}, error) {
			in := &greeterpb.Request{}
			if err := dec(in); err != nil {
				return nil, err
			}
			return hello(ctx, in)
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Stream",
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(srv interface{}, s grpc.ServerStream) error {
			for {
				in := &greeterpb.Request{}
				err := s.RecvMsg(in)
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				if in.Name == "" {
					return status.Error(codes.InvalidArgument, "name required")
				}
				if err := s.SendMsg(&greeterpb.Response{Msg: "Hello " + in.Name}); err != nil {
					return err
				}
			}
		},
	}},
}

func main() {
	addr := flag.String("server_address", "127.0.0.1:0", "listen address")
	flag.String("registry", "", "ignored (the harness passes it)")
	certFile := flag.String("tls_cert", "", "PEM certificate: serve over TLS")
	keyFile := flag.String("tls_key", "", "PEM key of --tls_cert")
	clientCA := flag.String("tls_client_ca", "", "PEM CA: require client certificates it signed")
	flag.Parse()
	encoding.RegisterCodec(jsonCodec{})
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	var opts []grpc.ServerOption
	if *certFile != "" {
		pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			log.Fatal(err)
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{pair}}
		if *clientCA != "" {
			pem, err := os.ReadFile(*clientCA)
			if err != nil {
				log.Fatal(err)
			}
			cfg.ClientCAs = x509.NewCertPool()
			cfg.ClientCAs.AppendCertsFromPEM(pem)
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	s := grpc.NewServer(opts...)
	s.RegisterService(&desc, nil)
	fmt.Printf("grpcserver listening on %s\n", lis.Addr())
	log.Fatal(s.Serve(lis))
}
