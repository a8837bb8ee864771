package haproxy

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

// RouterOptions say how late and how often a Router applies changes.
type RouterOptions struct {
	// Lag is how long each change waits before it reaches HAProxy (the local backend's
	// model of a router that follows late); changes falling due within a second of
	// each other are applied together.
	Lag time.Duration
	// Interval is the least time between two applications: changes that arrive
	// meanwhile are coalesced into the next one, as the OpenShift router's reloads are
	// (RELOAD_INTERVAL, 5 s). Zero applies each batch as soon as it is due.
	Interval time.Duration
	// OnEvent receives a line per application, naming the changes it carried.
	OnEvent func(string)
	// OnApplied runs after each application (HAProxy's processes changed).
	OnApplied func()
}

// Router applies endpoint changes to an HAProxy late and coalesced. Set never blocks.
type Router struct {
	hap       *HAProxy
	lag       time.Duration
	interval  time.Duration
	onEvent   func(string)
	onApplied func()
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

// NewRouter starts a router in front of hap; Close stops it.
func NewRouter(hap *HAProxy, opts RouterOptions) *Router {
	if opts.OnEvent == nil {
		opts.OnEvent = func(string) {}
	}
	rt := &Router{hap: hap, lag: opts.Lag, interval: opts.Interval, onEvent: opts.OnEvent, onApplied: opts.OnApplied,
		notify: make(chan struct{}, 1), done: make(chan struct{})}
	go rt.loop()
	return rt
}

// Set queues the endpoint set eps, to reach HAProxy after the lag; why names the change.
func (rt *Router) Set(eps []Endpoint, why string) {
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

// Wait waits until every change queued so far reached HAProxy.
func (rt *Router) Wait() { rt.idle.Wait() }

// Err returns the first error applying a change to HAProxy, if any.
func (rt *Router) Err() error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.failed
}

// Close applies what is queued and stops the router.
func (rt *Router) Close() {
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
func (rt *Router) take() (batch []routerChange, closed bool) {
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

// takeWhile moves the pending changes to batch, in order, while ok says yes to their
// due time.
func (rt *Router) takeWhile(batch []routerChange, ok func(due time.Time) bool) []routerChange {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for len(rt.pending) > 0 && ok(rt.pending[0].due) {
		batch = append(batch, rt.pending[0])
		rt.pending = rt.pending[1:]
	}
	return batch
}

func (rt *Router) loop() {
	defer close(rt.done)
	var applied time.Time // the last application
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
		first := batch[0].due
		batch = rt.takeWhile(batch, func(due time.Time) bool { return due.Sub(first) <= min(coalesceWindow, rt.lag) })
		last := batch[len(batch)-1]
		if d := time.Until(last.due); d > 0 {
			time.Sleep(d)
		}
		if d := time.Until(applied.Add(rt.interval)); rt.interval > 0 && d > 0 {
			// Too soon after the last application: what comes meanwhile joins this one.
			time.Sleep(d)
			batch = rt.takeWhile(batch, func(due time.Time) bool { return !due.After(time.Now()) })
			last = batch[len(batch)-1]
		}
		applied = time.Now()
		if err := rt.hap.Apply(context.Background(), last.eps); err != nil {
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
