package proving

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tandem-pg/tandem/examples/catalog"
)

// Error classes of failed requests.
const (
	ClassRefused   = "refused"   // the connection was refused
	ClassReset     = "reset"     // the connection was reset or closed mid-request
	Class5xx       = "5xx"       // the server answered 5xx
	ClassTimeout   = "timeout"   // no full answer within the request timeout
	ClassTruncated = "truncated" // the body ended early
	ClassStatus    = "status"    // any other unexpected status
	ClassOther     = "other"     // anything else
)

// errGeneratorSaturated marks requests the load generator had no room to send.
const errGeneratorSaturated = "load generator saturated"

// Record is one request made by the load generator.
type Record struct {
	Start   time.Duration // since the load started
	Latency time.Duration // until the full body was read, or the failure
	Kind    string        // "api", "write" or "stream"
	Status  int           // 0 when there was no answer
	Class   string        // "" when the request succeeded
	Release string        // the release that answered (catalog.ReleaseHeader), if any
	Err     string        // the error, when there was one
}

// loadGen sends requests at a fixed rate over keep-alive connections.
type loadGen struct {
	base        string
	rate        int
	streamShare float64
	writeShare  float64
	streamMS    int
	timeout     time.Duration
	maxInFlight int

	client *http.Client
	mu     sync.Mutex
	recs   []Record
	wg     sync.WaitGroup
}

func newLoadGen(base string, rate int, streamShare, writeShare float64, streamDur, timeout time.Duration) *loadGen {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 4096,
		// Shorter than HAProxy's keep-alive timeout (2s): the client closes an idle
		// connection before the server does, never sending on one being closed.
		IdleConnTimeout:    time.Second,
		DisableCompression: true,
	}
	return &loadGen{
		base: base, rate: rate, streamShare: streamShare, writeShare: writeShare, streamMS: int(streamDur / time.Millisecond),
		timeout: timeout, maxInFlight: max(rate*int(timeout/time.Second), 1000),
		client: &http.Client{Transport: tr},
	}
}

// run sends requests from start until ctx ends, spacing them 1/rate apart. Requests in
// flight when ctx ends are finished; wait for them with wait.
func (g *loadGen) run(ctx context.Context, start time.Time) {
	interval := time.Second / time.Duration(g.rate)
	sem := make(chan struct{}, g.maxInFlight)
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		select {
		case sem <- struct{}{}:
		default:
			// The generator itself is saturated: count it as a timeout rather than
			// silently sending less load.
			g.add(Record{Start: at.Sub(start), Kind: "api", Class: ClassTimeout, Err: errGeneratorSaturated})
			continue
		}
		g.wg.Add(1)
		go func() {
			defer func() { <-sem; g.wg.Done() }()
			g.add(g.one(at.Sub(start)))
		}()
	}
}

func (g *loadGen) wait() {
	g.wg.Wait()
	g.client.CloseIdleConnections()
}

func (g *loadGen) add(r Record) {
	g.mu.Lock()
	g.recs = append(g.recs, r)
	g.mu.Unlock()
}

func (g *loadGen) records() []Record {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Record(nil), g.recs...)
}

func (g *loadGen) one(offset time.Duration) Record {
	rec := Record{Start: offset, Kind: "api"}
	method, url, want := http.MethodGet, fmt.Sprintf("%s/api/items/%d", g.base, 1+rand.IntN(1000)), http.StatusOK
	var body io.Reader
	wantLen := int64(-1)
	switch x := rand.Float64(); {
	case x < g.streamShare:
		rec.Kind = "stream"
		url = fmt.Sprintf("%s/content/sample?ms=%d", g.base, g.streamMS)
	case x < g.streamShare+g.writeShare:
		rec.Kind = "write"
		method, url, want = http.MethodPost, g.base+"/api/items", http.StatusCreated
		body = strings.NewReader(fmt.Sprintf(`{"name": "load %d", "price_cents": %d}`, rand.IntN(1e9), rand.IntN(10000)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	t0 := time.Now()
	req, _ := http.NewRequestWithContext(ctx, method, url, body)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.client.Do(req)
	if err != nil {
		rec.Latency = time.Since(t0)
		rec.Class, rec.Err = classify(err), err.Error()
		return rec
	}
	defer resp.Body.Close()
	rec.Status = resp.StatusCode
	rec.Release = resp.Header.Get(catalog.ReleaseHeader)
	wantLen = resp.ContentLength
	n, err := io.Copy(io.Discard, resp.Body)
	rec.Latency = time.Since(t0)
	switch {
	case err != nil:
		rec.Class, rec.Err = classify(err), err.Error()
		if errors.Is(err, io.ErrUnexpectedEOF) {
			rec.Class = ClassTruncated
		}
	case wantLen >= 0 && n != wantLen:
		rec.Class, rec.Err = ClassTruncated, fmt.Sprintf("read %d of %d bytes", n, wantLen)
	case resp.StatusCode >= 500:
		rec.Class = Class5xx
	case resp.StatusCode != want:
		rec.Class = ClassStatus
	}
	return rec
}

func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return ClassTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return ClassRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF):
		return ClassReset
	}
	return ClassOther
}
