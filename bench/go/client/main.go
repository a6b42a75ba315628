// Command client is the Go Micro v4 load generator of bench/run.sh: K
// goroutines calling Greeter.Hello through ONE Go Micro client by address
// (HTTP transport, JSON), like bench_greeter. Prints the same JSON line:
// {"calls_per_s":..,"p50_us":..,"p99_us":..,"p999_us":..,"errors":..}
//
//	client -address 127.0.0.1:PORT -inflight 64 -duration 3 [-size 0]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
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
		inflight = flag.Int("inflight", 1, "calls in flight (goroutines)")
		duration = flag.Float64("duration", 5, "measured seconds")
		warmup   = flag.Float64("warmup", 0.5, "warm-up seconds")
		size     = flag.Int("size", 0, "name length in bytes (0: \"John\")")
	)
	flag.Parse()
	if *address == "" || *inflight <= 0 {
		fmt.Fprintln(os.Stderr, "client: -address and -inflight > 0 required")
		os.Exit(2)
	}
	name := "John"
	if *size > 0 {
		name = strings.Repeat("x", *size)
	}
	want := "Hello " + name
	pool := *inflight
	if pool < 100 {
		pool = 100
	}
	c := client.NewClient(client.ContentType("application/json"),
		client.PoolSize(pool), client.Retries(0))
	start := time.Now().Add(time.Duration(*warmup * 1e9))
	end := start.Add(time.Duration(*duration * 1e9))
	lats := make([][]time.Duration, *inflight)
	errs := make([]int, *inflight)
	var lastErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < *inflight; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req := c.NewRequest("greeter", "Greeter.Hello",
				&HelloRequest{Name: name})
			for {
				t0 := time.Now()
				rsp := HelloResponse{}
				err := c.Call(context.Background(), req, &rsp,
					client.WithAddress(*address),
					client.WithRequestTimeout(5*time.Second),
					client.WithRetries(0))
				t1 := time.Now()
				in := !t0.Before(start) && !t1.After(end)
				if err == nil && rsp.Msg != want {
					err = fmt.Errorf("unexpected reply %q", rsp.Msg)
				}
				if err != nil {
					mu.Lock()
					lastErr = err
					mu.Unlock()
					if in {
						errs[i]++
					}
				} else if in {
					lats[i] = append(lats[i], t1.Sub(t0))
				}
				if !t1.Before(end) {
					return
				}
			}
		}(i)
	}
	wg.Wait()
	var all []time.Duration
	nerr := 0
	for i := range lats {
		all = append(all, lats[i]...)
		nerr += errs[i]
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(p*float64(len(all)-1)+0.5)]) / 1e3
	}
	fmt.Printf("{\"calls_per_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,"+
		"\"p999_us\":%.1f,\"errors\":%d}\n",
		float64(len(all)) / *duration, pct(0.50), pct(0.99), pct(0.999), nerr)
	if lastErr != nil {
		fmt.Fprintln(os.Stderr, "client: last error:", lastErr)
	}
}
