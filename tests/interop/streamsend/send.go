// Package streamsend works around a Go Micro v4.11.0 server bug for the
// Go peers of the interop tests.
//
// The server's rpcCodec.Write (server/rpc_codec.go) encodes a stream
// message into the codec's one write buffer and queues a
// transport.Message whose Body ALIASES that buffer; a goroutine writes the
// queue to the connection later. A handler that calls stream.Send twice
// before the first message is written overwrites it: replies arrive
// duplicated or garbled ("Hello c", "Hello c" for b, c). Reported as
// https://github.com/micro/go-micro/issues/2671. Observed here with
// ServerStream (N sends in a row) and a pipelining client.
//
// Send encodes the message itself, into a fresh slice, and hands it over
// as a *bytes.Frame, which rpcCodec.Write sends as it is (no copy into the
// shared buffer). The bytes on the wire are what the codec would have
// written: encoding/json plus "\n" for JSON content types (the json
// codec's json.Encoder, also for protobuf messages), proto.Marshal for
// protobuf.
package streamsend

import (
	"encoding/json"
	"fmt"
	"strings"

	"go-micro.dev/v4/codec/bytes"
	"go-micro.dev/v4/server"
	"google.golang.org/protobuf/proto"
)

// Encode encodes v as the codec of content type ct would.
func Encode(ct string, v interface{}) ([]byte, error) {
	switch {
	case strings.HasPrefix(ct, "application/json") && ct != "application/json-rpc":
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		return append(b, '\n'), nil
	case ct == "application/protobuf" || ct == "application/x-protobuf" || ct == "application/octet-stream":
		m, ok := v.(proto.Message)
		if !ok {
			return nil, fmt.Errorf("streamsend: %T is not a protobuf message", v)
		}
		return proto.Marshal(m)
	}
	return nil, fmt.Errorf("streamsend: content type %q not supported", ct)
}

// Frame is v encoded for content type ct, ready for a stream's Send (or
// a generated stream's SendMsg).
func Frame(ct string, v interface{}) (*bytes.Frame, error) {
	b, err := Encode(ct, v)
	if err != nil {
		return nil, err
	}
	return &bytes.Frame{Data: b}, nil
}

// Send is stream.Send(v) without the buffer aliasing.
func Send(stream server.Stream, v interface{}) error {
	f, err := Frame(stream.Request().ContentType(), v)
	if err != nil {
		return err
	}
	return stream.Send(f)
}
