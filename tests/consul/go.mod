// The Consul agent the registry tests run (scripts/consul.sh builds it once
// per machine). Only a wrapper: Consul v1.14.8 (MPL-2.0) comes from the Go
// module proxy; no Consul code lives in this repository.
module consulwrap

go 1.22

require github.com/hashicorp/consul v1.14.8

// Consul v1.14.8's own go.mod excludes these; a wrapper must repeat it.
exclude (
	github.com/hashicorp/go-msgpack v1.1.5
	github.com/hashicorp/go-msgpack v1.1.6
)
