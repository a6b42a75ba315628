// Package stopctx gives the Go peer servers a context that SIGTERM or
// SIGINT cancels from the first line of main. Go Micro v4's Run installs
// its own signal handler only after Start, when the AfterStart hook has
// already printed "listening" and the node is registered: a test that
// stops the peer right after that line would kill it with the default
// action, before it deregisters. With micro.Context(stopctx.New()) the
// signal is caught from the start and Run stops (and deregisters) the
// service through its context instead.
package stopctx

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// New returns the context; it is cancelled by the first SIGTERM or SIGINT.
func New() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-ch
		cancel()
	}()
	return ctx
}
