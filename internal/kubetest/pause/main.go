// Command pause is the test cluster's sandbox ("pause") container: it holds a pod's
// namespaces, reaps the zombies it inherits as PID 1, and exits on SIGINT or SIGTERM.
// internal/kubetest builds it as a static binary into the image
// localhost/tandemk8s/pause:3.10, so the cluster needs no image from a registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
