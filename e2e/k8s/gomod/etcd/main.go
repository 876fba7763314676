// etcd for the e2e's local Kubernetes: the upstream server's own entry point, built from the Go module proxy
// (etcd publishes no binary there).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
