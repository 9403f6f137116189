// Package workers holds the engine copies a server runs, fed by one batcher queue. Each worker is one engine on
// one (device, threads): on a CPU, copies that each take a share of the cores; on a machine with several GPUs,
// one or more per GPU. A worker whose engine fails is taken out, its batch retried on another, and the failure
// is reported (/readyz); the server is not ready once no worker is left.
package workers

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/engine"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/yolo"
)

// ErrNoWorkers is returned when every worker has failed.
var ErrNoWorkers = errors.New("every engine worker has failed")

// Worker is one engine copy and where it runs.
type Worker struct {
	Name   string // e.g. "cpu/0 threads 1", "cuda:1/0"
	Engine engine.Engine
}

// Status is one worker's state for /readyz: "up", or "failed" with the error that took it out.
type Status struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

// Pool is an engine.Engine over its workers; safe for concurrent use by as many callers as it has workers.
type Pool struct {
	workers []Worker
	free    chan int // indices of idle, live workers
	mu      sync.Mutex
	status  []Status
	live    int
	empty   chan struct{} // closed when the last worker fails
}

// New makes a pool of the workers; it needs at least one.
func New(ws []Worker) (*Pool, error) {
	if len(ws) == 0 {
		return nil, errors.New("an engine pool needs at least one worker")
	}
	p := &Pool{workers: ws, free: make(chan int, len(ws)), status: make([]Status, len(ws)), live: len(ws),
		empty: make(chan struct{})}
	for i, w := range ws {
		p.status[i] = Status{Name: w.Name, State: "up"}
		p.free <- i
	}
	return p, nil
}

// Size is the number of workers the pool started with: the batches that may run at once.
func (p *Pool) Size() int { return len(p.workers) }

// Live is the number of workers still up.
func (p *Pool) Live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.live
}

// Status is every worker's state.
func (p *Pool) Status() []Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Status(nil), p.status...)
}

// Infer runs the batch on an idle worker. An engine error takes that worker out and the batch runs again on
// another; ErrNoWorkers once none is left.
func (p *Pool) Infer(ctx context.Context, input []float32, n int) ([][]yolo.Output, error) {
	var failures []error
	for {
		var i int
		select {
		case i = <-p.free:
		case <-p.empty:
			return nil, errors.Join(append(failures, ErrNoWorkers)...)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		outs, err := p.workers[i].Engine.Infer(ctx, input, n)
		if err == nil || ctx.Err() != nil { // a cancelled request says nothing about the engine
			p.free <- i
			return outs, err
		}
		p.fail(i, err)
		failures = append(failures, fmt.Errorf("worker %s: %w", p.workers[i].Name, err))
	}
}

func (p *Pool) fail(i int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status[i].State, p.status[i].Error = "failed", err.Error()
	p.live--
	if p.live == 0 {
		close(p.empty)
	}
}

// Close closes every worker's engine.
func (p *Pool) Close() error {
	var errs []error
	for _, w := range p.workers {
		errs = append(errs, w.Engine.Close())
	}
	return errors.Join(errs...)
}
