// Command streamclient is the Go Micro v4 streaming load generator of
// bench/run.sh: S Greeter.Stream streams through ONE Go Micro client by
// address (HTTP transport, JSON; a connection per stream, as Go Micro
// does), each with a sender goroutine sending as fast as the connection
// takes the messages and a receiver goroutine counting the replies
// received inside the window [warm-up, warm-up + duration]. Then each
// stream is closed (Go Micro's mucp client cannot half-close). Prints:
// {"msgs_per_s":..,"streams":S,"size":..,"errors":..}
//
//	streamclient -address 127.0.0.1:PORT [-streams 64] [-duration 3]
//	             [-warmup 0.5] [-size 64] [-window 256]
//
// -size is the encoded request in bytes: {"name":"xx…"} plus the codec's
// "\n", so the name is size-12 bytes (64 -> 52, 1024 -> 1012).
//
// -window bounds the messages a stream has in flight (sent, reply not yet
// received). Without it Go Micro v4's client can deadlock a full pipe:
// rpcStream.Send holds the stream's lock while it blocks in the socket
// write, and Recv needs that lock after each reply header, so the receiver
// stops, the server's writes back up, the server stops reading, and the
// blocked Send never returns.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go-micro.dev/v4/client"
)

type HelloRequest struct {
	Name string `json:"name"`
}

type HelloResponse struct {
	Msg string `json:"msg"`
}

func main() {
	var (
		address  = flag.String("address", "", "server host:port (required)")
		streams  = flag.Int("streams", 1, "concurrent streams")
		duration = flag.Float64("duration", 5, "measured seconds")
		warmup   = flag.Float64("warmup", 0.5, "warm-up seconds")
		size     = flag.Int("size", 64, "encoded request bytes (name = size-12)")
		window   = flag.Int("window", 256, "messages in flight per stream (0: unbounded)")
	)
	flag.Parse()
	if *address == "" || *streams <= 0 || *size < 12 {
		fmt.Fprintln(os.Stderr, "streamclient: -address, -streams > 0, -size >= 12 required")
		os.Exit(2)
	}
	name := strings.Repeat("x", *size-12)
	want := "Hello " + name
	c := client.NewClient(client.ContentType("application/json"), client.Retries(0))
	start := time.Now().Add(time.Duration(*warmup * 1e9))
	end := start.Add(time.Duration(*duration * 1e9))
	var (
		msgs, errs atomic.Int64
		lastErr    atomic.Value
		wg         sync.WaitGroup
	)
	time.AfterFunc(time.Until(end)+30*time.Second, func() {
		fmt.Fprintln(os.Stderr, "streamclient: streams still open 30 s after the window (deadlocked?)")
		os.Exit(1)
	})
	fail := func(err error) {
		lastErr.Store(err.Error())
		if t := time.Now(); !t.Before(start) && !t.After(end) {
			errs.Add(1)
		}
	}
	for i := 0; i < *streams; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := c.NewRequest("greeter", "Greeter.Stream", &HelloRequest{})
			st, err := c.Stream(context.Background(), req, client.WithAddress(*address),
				client.WithRetries(0))
			if err != nil {
				fail(err)
				errs.Add(1)
				return
			}
			var credit chan struct{} // one token per message in flight
			if *window > 0 {
				credit = make(chan struct{}, *window)
			}
			stop := make(chan struct{})
			sent := make(chan struct{})
			go func() { // sender
				defer close(sent)
				m := &HelloRequest{Name: name}
				for time.Now().Before(end) {
					if credit != nil {
						select {
						case credit <- struct{}{}:
						case <-stop:
							return
						}
					}
					if err := st.Send(m); err != nil {
						fail(err)
						return
					}
				}
			}()
			for { // receiver
				var rsp HelloResponse
				err := st.Recv(&rsp)
				t := time.Now()
				if err != nil {
					if t.Before(end) {
						fail(err)
					}
					break
				}
				if credit != nil {
					<-credit
				}
				in := !t.Before(start) && !t.After(end)
				if rsp.Msg != want {
					lastErr.Store("unexpected reply " + rsp.Msg)
					if in {
						errs.Add(1)
					}
				} else if in {
					msgs.Add(1)
				}
				if t.After(end) {
					break
				}
			}
			close(stop)
			<-sent
			st.Close()
		}()
	}
	wg.Wait()
	fmt.Printf("{\"msgs_per_s\":%.0f,\"streams\":%d,\"size\":%d,\"errors\":%d}\n",
		float64(msgs.Load()) / *duration, *streams, *size, errs.Load())
	if e, ok := lastErr.Load().(string); ok {
		fmt.Fprintln(os.Stderr, "streamclient: last error:", e)
	}
}
