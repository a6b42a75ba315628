// Package mucpstream is a raw HTTP/1.1 client for Go Micro v4 streams
// (mucp over the HTTP transport), written byte by byte the way cmicro's C
// client speaks it, so that it can stand in for the C client in the
// INTEROP_GO_ONLY harness self-check and probe real Go servers:
//
//   - a fresh TCP connection per stream;
//   - every client message is one "POST / HTTP/1.1" request carrying
//     Content-Type, Accept, Micro-Service, Micro-Endpoint, Micro-Method,
//     Micro-Id and Micro-Stream (the same id on every message);
//   - the first message is a placeholder ({} for JSON, empty for
//     protobuf) that Go Micro's server discards;
//   - the half-close is an EOS message (Micro-Error: EOS, empty chunked
//     body, the same Micro-* headers) after which the connection stays
//     open for reading;
//   - every server message is one HTTP/1.1 response; Micro-Error: EOS is
//     the end of the stream (io.EOF), any other Micro-Error a remote error
//     (*RemoteError, its text as sent).
//
// Requests and responses are independent and pipelined: Send and Recv may
// run concurrently (one sender, one receiver).
package mucpstream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options of a stream.
type Options struct {
	Address     string            // host:port
	Service     string            // Micro-Service
	Endpoint    string            // Handler.Method
	ContentType string            // default application/json
	Metadata    map[string]string // extra headers
	DialTimeout time.Duration     // default 5 s
	// Placeholder overrides the opening message's body (default: {}\n for
	// JSON content types, empty otherwise).
	Placeholder []byte
}

// RemoteError is a Micro-Error other than EOS, as sent (a Go Micro error
// JSON, or plain text such as "rpc: can't find method Nope").
type RemoteError struct{ Text string }

func (e *RemoteError) Error() string { return e.Text }

// Msg is one server message.
type Msg struct {
	Header http.Header
	Body   []byte
}

// Stream is one open stream.
type Stream struct {
	conn net.Conn
	br   *bufio.Reader
	opts Options
	id   string

	wmu     sync.Mutex
	sentEOS bool
	ended   atomic.Bool // the server ended the stream (EOS or error)
}

var seq atomic.Uint64

// IsJSON tells whether ct is one of Go Micro's JSON content types.
func IsJSON(ct string) bool {
	return strings.HasPrefix(ct, "application/json")
}

// Open dials Address and writes the placeholder message.
func Open(o Options) (*Stream, error) {
	if o.ContentType == "" {
		o.ContentType = "application/json"
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	c, err := net.DialTimeout("tcp", o.Address, o.DialTimeout)
	if err != nil {
		return nil, err
	}
	s := &Stream{conn: c, br: bufio.NewReader(c), opts: o,
		id: fmt.Sprint(seq.Add(1) - 1)}
	ph := o.Placeholder
	if ph == nil && IsJSON(o.ContentType) {
		ph = []byte("{}\n")
	}
	if err := s.write(ph, false); err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

// ID is the stream id (Micro-Id and Micro-Stream).
func (s *Stream) ID() string { return s.id }

// head writes the request head common to every message.
func (s *Stream) head(b *bytes.Buffer, eos bool, n int) {
	fmt.Fprintf(b, "POST / HTTP/1.1\r\nHost: %s\r\n", s.opts.Address)
	if eos {
		b.WriteString("Transfer-Encoding: chunked\r\n")
	} else {
		fmt.Fprintf(b, "Content-Length: %d\r\n", n)
	}
	h := map[string]string{
		"Accept":         s.opts.ContentType,
		"Content-Type":   s.opts.ContentType,
		"Micro-Endpoint": s.opts.Endpoint,
		"Micro-Id":       s.id,
		"Micro-Method":   s.opts.Endpoint,
		"Micro-Service":  s.opts.Service,
		"Micro-Stream":   s.id,
	}
	if eos {
		h["Micro-Error"] = "EOS"
	}
	for k, v := range s.opts.Metadata {
		h[http.CanonicalHeaderKey(k)] = v
	}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(b, "%s: %s\r\n", k, h[k])
	}
	b.WriteString("\r\n")
}

func (s *Stream) write(body []byte, eos bool) error {
	var b bytes.Buffer
	s.head(&b, eos, len(body))
	if eos {
		b.WriteString("0\r\n\r\n")
	} else {
		b.Write(body)
	}
	_, err := s.conn.Write(b.Bytes())
	return err
}

// ErrClosed: Send after CloseSend or after the server ended the stream.
var ErrClosed = errors.New("mucpstream: stream closed for sending")

// Send writes one message (the body as encoded: JSON text, protobuf
// bytes). JSON bodies get Go's trailing newline if they lack one.
func (s *Stream) Send(body []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.sentEOS || s.ended.Load() {
		// Never send after the end: a Go server would start a new
		// handler for the same id and discard the body.
		return ErrClosed
	}
	if IsJSON(s.opts.ContentType) && (len(body) == 0 || body[len(body)-1] != '\n') {
		body = append(append([]byte{}, body...), '\n')
	}
	return s.write(body, false)
}

// CloseSend half-closes: Micro-Error: EOS with an empty chunked body; the
// connection stays open for reading. Idempotent; nothing is sent once
// the server has ended the stream.
func (s *Stream) CloseSend() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.sentEOS || s.ended.Load() {
		return nil
	}
	s.sentEOS = true
	return s.write(nil, true)
}

// Recv reads the next server message: the message, io.EOF at the
// server's EOS, *RemoteError for another Micro-Error, or a transport
// error (io.ErrUnexpectedEOF when the connection closed without an end).
// deadline bounds the wait (zero: none); a timeout is a net.Error.
func (s *Stream) Recv(deadline time.Time) (*Msg, error) {
	s.conn.SetReadDeadline(deadline)
	rsp, err := http.ReadResponse(s.br, nil)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	body, err := io.ReadAll(rsp.Body)
	rsp.Body.Close()
	if err != nil {
		return nil, err
	}
	m := &Msg{Header: rsp.Header, Body: body}
	if e := rsp.Header.Get("Micro-Error"); e != "" {
		s.ended.Store(true)
		if e == "EOS" {
			return m, io.EOF
		}
		return m, &RemoteError{Text: e}
	}
	return m, nil
}

// Close closes the connection (without sending anything).
func (s *Stream) Close() error { return s.conn.Close() }
