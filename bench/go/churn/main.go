// Registration churn through Go Micro v4's registry plugins, the Go side of
// `bench_discovery churn` (bench/discovery.sh): THREADS goroutines share one
// registry and each registers a node of service "churn" (TTL 30 s) and
// deregisters it, over and over, for SECONDS. Prints
// "churn go-REGISTRY pairs/s errors".
//
//	churn etcd|consul ADDRESS SECONDS THREADS
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	consul "github.com/go-micro/plugins/v4/registry/consul"
	etcd "github.com/go-micro/plugins/v4/registry/etcd"
	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/registry"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: churn etcd|consul ADDRESS SECONDS THREADS")
		os.Exit(2)
	}
	secs, _ := strconv.Atoi(os.Args[3])
	threads, _ := strconv.Atoi(os.Args[4])
	logger.DefaultLogger = logger.NewLogger(logger.WithLevel(logger.ErrorLevel))
	var r registry.Registry
	switch os.Args[1] {
	case "etcd":
		r = etcd.NewRegistry(registry.Addrs(os.Args[2]))
	case "consul":
		r = consul.NewRegistry(registry.Addrs(os.Args[2]))
	default:
		fmt.Fprintln(os.Stderr, "churn: unknown registry", os.Args[1])
		os.Exit(2)
	}
	var pairs, errs atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	until := start.Add(time.Duration(secs) * time.Second)
	var wg sync.WaitGroup
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func(t int) {
			defer wg.Done()
			for i := 0; time.Now().Before(until); i++ {
				s := &registry.Service{Name: "churn", Version: "latest",
					Nodes: []*registry.Node{{Id: fmt.Sprintf("gochurn-%d-%d", t, i),
						Address: "127.0.0.1:9"}}}
				err := r.Register(s, registry.RegisterTTL(30*time.Second))
				if err == nil {
					err = r.Deregister(s)
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				pairs.Add(1)
			}
		}(t)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if e := firstErr.Load(); e != nil {
		fmt.Fprintln(os.Stderr, "churn: first error:", e)
	}
	fmt.Printf("churn go-%s %.0f %d\n", os.Args[1], float64(pairs.Load())/elapsed, errs.Load())
}
