//go:build tools

// Package consulwrap pins Consul's main package so `go build
// github.com/hashicorp/consul` resolves from this module.
package consulwrap

import _ "github.com/hashicorp/consul"
