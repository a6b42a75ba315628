// Command cstream stands in for `cmicro stream` in the INTEROP_GO_ONLY
// harness self-check. It has the CLI's contract and speaks the mucp stream
// wire exactly as the C client does (package mucpstream: placeholder first
// message, Micro-Stream/Micro-Id, EOS half-close keeping the connection
// open for reading), so running it against a real Go Micro server checks
// the C side's assumptions.
//
//	cstream stream [--address host:port] [--content_type CT] [--registry R]
//	        [--metadata K=V]... [--timeout D] SERVICE ENDPOINT
//
// One JSON request per line on stdin, each sent as it is read; every reply
// is printed as one JSON line on stdout as it arrives; end of input
// half-closes. Exit 0 at the end of the stream; 1 with the error JSON
// {"id","code","detail","status"} on stdout on a remote error; 2 on local
// errors (usage, dial, a lost connection, the timeout).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"cmicro/interop/mucpstream"

	merrors "go-micro.dev/v4/errors"
)

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "cstream: %s\nusage: cstream stream [--address host:port] [--content_type CT] [--metadata K=V] [--timeout D] SERVICE ENDPOINT\n", msg)
	os.Exit(2)
}

func main() {
	var (
		pos     []string
		o       = mucpstream.Options{ContentType: "application/json", Metadata: map[string]string{}}
		timeout = 30 * time.Second
	)
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			pos = append(pos, a)
			continue
		}
		k, v, ok := strings.Cut(a[2:], "=")
		if !ok {
			if i+1 >= len(args) {
				usage("missing value for " + a)
			}
			i++
			v = args[i]
		}
		switch k {
		case "address":
			o.Address = v
		case "content_type":
			o.ContentType = v
		case "registry":
			// by address only: nothing to look up
		case "metadata":
			mk, mv, ok := strings.Cut(v, "=")
			if !ok {
				usage("bad --metadata (want K=V): " + v)
			}
			o.Metadata[mk] = mv
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil {
				usage("bad --timeout: " + v)
			}
			timeout = d
		default:
			usage("unknown flag --" + k)
		}
	}
	if len(pos) != 3 || pos[0] != "stream" {
		usage("want: stream SERVICE ENDPOINT")
	}
	if o.Address == "" {
		usage("the stand-in needs --address")
	}
	if !mucpstream.IsJSON(o.ContentType) {
		usage("the stand-in speaks JSON content types only")
	}
	o.Service, o.Endpoint = pos[1], pos[2]

	s, err := mucpstream.Open(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cstream: open:", err)
		os.Exit(2)
	}
	defer s.Close()

	// Writer: each stdin line as one message, then the half-close.
	werr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 64*1024), 16<<20)
		for sc.Scan() {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			if !json.Valid(line) {
				werr <- fmt.Errorf("stdin: not JSON: %s", line)
				return
			}
			if err := s.Send(line); err != nil {
				if errors.Is(err, mucpstream.ErrClosed) {
					return // the server ended the stream: the reader reports
				}
				werr <- err
				return
			}
		}
		if err := sc.Err(); err != nil {
			werr <- err
			return
		}
		if err := s.CloseSend(); err != nil {
			werr <- err
		}
	}()

	deadline := time.Now().Add(timeout)
	out := bufio.NewWriter(os.Stdout)
	for {
		select {
		case err := <-werr:
			out.Flush()
			fmt.Fprintln(os.Stderr, "cstream: send:", err)
			os.Exit(2)
		default:
		}
		m, err := s.Recv(deadline)
		if err == io.EOF {
			out.Flush()
			os.Exit(0)
		}
		var re *mucpstream.RemoteError
		if errors.As(err, &re) {
			e := merrors.Parse(re.Text)
			j, _ := json.Marshal(e)
			fmt.Fprintln(out, string(j))
			out.Flush()
			os.Exit(1)
		}
		if err != nil {
			out.Flush()
			fmt.Fprintln(os.Stderr, "cstream: receive:", err)
			os.Exit(2)
		}
		var c bytes.Buffer
		if err := json.Compact(&c, m.Body); err != nil {
			fmt.Fprintf(os.Stderr, "cstream: reply is not JSON: %q\n", m.Body)
			os.Exit(2)
		}
		fmt.Fprintln(out, c.String())
		out.Flush()
	}
}
