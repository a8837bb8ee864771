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

// router applies endpoint changes to HAProxy after a lag. set never blocks.
type router struct {
	hap       *haproxy
	lag       time.Duration
	onEvent   func(string)
	onApplied func() // after each change reached HAProxy (its processes changed)
	idle      sync.WaitGroup
	notify    chan struct{}
	done      chan struct{}

	mu      sync.Mutex
	pending []routerChange
	closed  bool
	failed  error
}

type routerChange struct {
	due time.Time
	eps []Endpoint
	why string
}

func newRouter(hap *haproxy, lag time.Duration, onEvent func(string), onApplied func()) *router {
	rt := &router{hap: hap, lag: lag, onEvent: onEvent, onApplied: onApplied,
		notify: make(chan struct{}, 1), done: make(chan struct{})}
	go rt.loop()
	return rt
}

// set queues the endpoint set eps, to reach HAProxy after the lag.
func (rt *router) set(eps []Endpoint, why string) {
	rt.mu.Lock()
	if rt.closed {
		rt.mu.Unlock()
		return
	}
	rt.idle.Add(1)
	rt.pending = append(rt.pending, routerChange{due: time.Now().Add(rt.lag), eps: append([]Endpoint(nil), eps...), why: why})
	rt.mu.Unlock()
	select {
	case rt.notify <- struct{}{}:
	default:
	}
}

func (rt *router) err() error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.failed
}

// close applies what is queued and stops the loop.
func (rt *router) close() {
	rt.mu.Lock()
	rt.closed = true
	rt.mu.Unlock()
	select {
	case rt.notify <- struct{}{}:
	default:
	}
	<-rt.done
}

// take removes and returns the first pending change and those falling due within the
// coalescing window after it.
func (rt *router) take() (batch []routerChange, closed bool) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.pending) == 0 {
		return nil, rt.closed
	}
	first := rt.pending[0]
	n := 1
	for n < len(rt.pending) && rt.pending[n].due.Sub(first.due) <= min(coalesceWindow, rt.lag) {
		n++
	}
	batch = append(batch, rt.pending[:n]...)
	rt.pending = rt.pending[n:]
	return batch, false
}

func (rt *router) loop() {
	defer close(rt.done)
	for {
		batch, closed := rt.take()
		if len(batch) == 0 {
			if closed {
				return
			}
			<-rt.notify
			continue
		}
		// Wait for the first change's lag, then take what fell due with it.
		if d := time.Until(batch[0].due); d > 0 {
			time.Sleep(d)
		}
		for {
			rt.mu.Lock()
			more := len(rt.pending) > 0 && rt.pending[0].due.Sub(batch[0].due) <= min(coalesceWindow, rt.lag)
			if more {
				batch = append(batch, rt.pending[0])
				rt.pending = rt.pending[1:]
			}
			rt.mu.Unlock()
			if !more {
				break
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
		if rt.onApplied != nil {
			rt.onApplied()
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
