package local

import (
	"context"
	"strings"
	"sync"
	"time"
)

// coalesceWindow: changes falling due within this of the first pending one are applied
// together, in one reload, as the OpenShift router coalesces its reloads. A change is
// never applied before its lag is over, only up to this much later.
const coalesceWindow = time.Second

// router applies endpoint changes to HAProxy after a lag.
type router struct {
	hap     *haproxy
	lag     time.Duration
	onEvent func(string)
	queue   chan routerChange
	idle    sync.WaitGroup
	done    chan struct{}

	mu     sync.Mutex
	failed error
}

type routerChange struct {
	due time.Time
	eps []Endpoint
	why string
}

func newRouter(hap *haproxy, lag time.Duration, onEvent func(string)) *router {
	rt := &router{hap: hap, lag: lag, onEvent: onEvent, queue: make(chan routerChange, 256), done: make(chan struct{})}
	go rt.loop()
	return rt
}

// set queues the endpoint set eps, to reach HAProxy after the lag.
func (rt *router) set(eps []Endpoint, why string) {
	rt.idle.Add(1)
	rt.queue <- routerChange{due: time.Now().Add(rt.lag), eps: append([]Endpoint(nil), eps...), why: why}
}

func (rt *router) err() error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.failed
}

// close applies what is queued and stops the loop.
func (rt *router) close() {
	close(rt.queue)
	<-rt.done
}

func (rt *router) loop() {
	defer close(rt.done)
	var next *routerChange
	for {
		if next == nil {
			ch, ok := <-rt.queue
			if !ok {
				return
			}
			next = &ch
		}
		batch := []routerChange{*next}
		next = nil
		if d := time.Until(batch[0].due); d > 0 {
			time.Sleep(d)
		}
	collect:
		for {
			select {
			case ch, ok := <-rt.queue:
				if !ok {
					break collect
				}
				if ch.due.Sub(batch[0].due) > min(coalesceWindow, rt.lag) {
					next = &ch
					break collect
				}
				batch = append(batch, ch)
			default:
				break collect
			}
		}
		last := batch[len(batch)-1]
		if d := time.Until(last.due); d > 0 {
			time.Sleep(d)
		}
		if err := rt.hap.apply(context.Background(), last.eps); err != nil {
			rt.mu.Lock()
			if rt.failed == nil {
				rt.failed = err
			}
			rt.mu.Unlock()
		}
		var whys []string
		for _, ch := range batch {
			whys = append(whys, ch.why)
		}
		rt.onEvent("router applied: " + strings.Join(whys, ", "))
		for range batch {
			rt.idle.Done()
		}
	}
}
