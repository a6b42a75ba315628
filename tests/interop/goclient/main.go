// Command goclient performs one Go Micro v4 RPC by address and prints the
// reply (or the parsed Go Micro error) as JSON on stdout.
//
//	goclient -address 127.0.0.1:PORT -content_type application/json \
//	    -endpoint Greeter.Hello -body '{"name":"John"}' -metadata K=V -timeout 5s
//
// Exit status: 0 success, 1 remote/RPC error (error JSON on stdout),
// 2 usage error.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var (
		address     = flag.String("address", "", "server host:port (required)")
		contentType = flag.String("content_type", "application/json", "content type")
		service     = flag.String("service", "greeter", "service name")
		endpoint    = flag.String("endpoint", "Greeter.Hello", "endpoint Handler.Method")
		body        = flag.String("body", "{}", "request body (JSON object)")
		timeout     = flag.Duration("timeout", 5*time.Second, "request timeout")
		md          multiFlag
	)
	flag.Var(&md, "metadata", "K=V metadata entry (repeatable)")
	flag.Parse()
	if *address == "" {
		fmt.Fprintln(os.Stderr, "goclient: -address is required")
		os.Exit(2)
	}

	var req map[string]interface{}
	if err := json.Unmarshal([]byte(*body), &req); err != nil {
		fmt.Fprintln(os.Stderr, "goclient: bad -body:", err)
		os.Exit(2)
	}
	if req == nil {
		req = map[string]interface{}{}
	}

	ctx := context.Background()
	if len(md) > 0 {
		m := metadata.Metadata{}
		for _, kv := range md {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				fmt.Fprintln(os.Stderr, "goclient: bad -metadata (want K=V):", kv)
				os.Exit(2)
			}
			m[k] = v
		}
		ctx = metadata.NewContext(ctx, m)
	}

	c := client.NewClient(client.ContentType(*contentType))
	r := c.NewRequest(*service, *endpoint, req, client.WithContentType(*contentType))
	rsp := map[string]interface{}{}
	err := c.Call(ctx, r, &rsp,
		client.WithAddress(*address),
		client.WithRequestTimeout(*timeout),
		client.WithRetries(0),
	)
	if err != nil {
		e := errors.FromError(err)
		out, _ := json.Marshal(e)
		fmt.Println(string(out))
		os.Exit(1)
	}
	out, _ := json.Marshal(rsp)
	fmt.Println(string(out))
}
