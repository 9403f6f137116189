// Package batcher groups concurrent requests into batches for one engine call: a maximum batch size, a maximum
// wait for a batch to fill, and a bounded queue that refuses work at once when full instead of letting it hang.
package batcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrOverloaded is returned at once when the queue is full.
var ErrOverloaded = errors.New("the request queue is full")

// ErrClosed is returned for work submitted after Close.
var ErrClosed = errors.New("the batcher is shut down")

// Func runs one batch; it returns one result per item, in order.
type Func[T, R any] func(ctx context.Context, items []T) ([]R, error)

// Options bound the batches and the queue.
type Options struct {
	MaxBatch int           // most items per call
	MaxWait  time.Duration // longest a batch waits to fill once there is load
	MaxQueue int           // most items waiting; beyond it Submit fails with ErrOverloaded
	Workers  int           // batches run at once (1 keeps the engine to one call at a time)
	// Observe, if set, is told each batch's size (for metrics).
	Observe func(size int)
}

// Stats say what happened to one item.
type Stats struct {
	Queued    time.Duration // from Submit until its batch started
	BatchSize int
}

type job[T, R any] struct {
	ctx      context.Context
	item     T
	enqueued time.Time
	done     chan outcome[R]
}

type outcome[R any] struct {
	result R
	stats  Stats
	err    error
}

// Batcher is safe for concurrent use.
type Batcher[T, R any] struct {
	run    Func[T, R]
	opts   Options
	queue  chan *job[T, R]
	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
	// lastSize is the size of the previous batch: a batch waits to fill only when there is load
	lastSize int
	lastMu   sync.Mutex
}

// New starts the workers.
func New[T, R any](run Func[T, R], opts Options) *Batcher[T, R] {
	opts.MaxBatch = max(opts.MaxBatch, 1)
	opts.MaxQueue = max(opts.MaxQueue, 1)
	opts.Workers = max(opts.Workers, 1)
	b := &Batcher[T, R]{run: run, opts: opts, queue: make(chan *job[T, R], opts.MaxQueue)}
	for i := 0; i < opts.Workers; i++ {
		b.wg.Add(1)
		go b.work()
	}
	return b
}

// Submit queues one item and waits for its result, for ctx's end, or fails at once when the queue is full.
func (b *Batcher[T, R]) Submit(ctx context.Context, item T) (R, Stats, error) {
	var zero R
	j := &job[T, R]{ctx: ctx, item: item, enqueued: time.Now(), done: make(chan outcome[R], 1)}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return zero, Stats{}, ErrClosed
	}
	select {
	case b.queue <- j:
		b.mu.RUnlock()
	default:
		b.mu.RUnlock()
		return zero, Stats{}, ErrOverloaded
	}
	select {
	case o := <-j.done:
		return o.result, o.stats, o.err
	case <-ctx.Done():
		return zero, Stats{}, ctx.Err()
	}
}

// Len is the number of items waiting.
func (b *Batcher[T, R]) Len() int { return len(b.queue) }

// Close stops accepting work, finishes what is queued and waits for the workers.
func (b *Batcher[T, R]) Close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.queue)
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *Batcher[T, R]) work() {
	defer b.wg.Done()
	for first := range b.queue {
		batch := b.collect(first)
		if len(batch) > 0 {
			b.execute(batch)
		}
	}
}

// collect takes what is already queued, and under load waits up to MaxWait for the batch to fill.
func (b *Batcher[T, R]) collect(first *job[T, R]) []*job[T, R] {
	batch := make([]*job[T, R], 0, b.opts.MaxBatch)
	add := func(j *job[T, R]) {
		if j.ctx.Err() == nil { // its client has gone: skip the work
			batch = append(batch, j)
		}
	}
	add(first)
	drain := func() bool {
		for len(batch) < b.opts.MaxBatch {
			select {
			case j, ok := <-b.queue:
				if !ok {
					return false
				}
				add(j)
			default:
				return true
			}
		}
		return true
	}
	if !drain() || len(batch) >= b.opts.MaxBatch || b.opts.MaxWait <= 0 {
		return batch
	}
	b.lastMu.Lock()
	loaded := b.lastSize > 1 || len(batch) > 1
	b.lastMu.Unlock()
	if !loaded { // a lone request on an idle server does not wait for company
		return batch
	}
	timer := time.NewTimer(b.opts.MaxWait)
	defer timer.Stop()
	for len(batch) < b.opts.MaxBatch {
		select {
		case j, ok := <-b.queue:
			if !ok {
				return batch
			}
			add(j)
		case <-timer.C:
			return batch
		}
	}
	return batch
}

func (b *Batcher[T, R]) execute(batch []*job[T, R]) {
	started := time.Now()
	items := make([]T, len(batch))
	for i, j := range batch {
		items[i] = j.item
	}
	b.lastMu.Lock()
	b.lastSize = len(batch)
	b.lastMu.Unlock()
	if b.opts.Observe != nil {
		b.opts.Observe(len(batch))
	}
	results, err := b.safeRun(items)
	if err == nil && len(results) != len(items) {
		err = fmt.Errorf("batch function returned %d results for %d items", len(results), len(items))
	}
	for i, j := range batch {
		o := outcome[R]{stats: Stats{Queued: started.Sub(j.enqueued), BatchSize: len(batch)}, err: err}
		if err == nil {
			o.result = results[i]
		}
		j.done <- o
	}
}

// safeRun turns a panic in the batch function into an error for that batch, so one bad batch cannot take the
// server down.
func (b *Batcher[T, R]) safeRun(items []T) (results []R, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("batch function panicked: %v", r)
		}
	}()
	return b.run(context.Background(), items)
}
