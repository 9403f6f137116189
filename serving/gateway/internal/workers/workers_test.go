package workers

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/yolo"
)

// copyEngine stands in for one engine copy: it answers each image with its own name's index, counts its calls,
// and fails once told to.
type copyEngine struct {
	id      float32
	calls   atomic.Int32
	broken  atomic.Bool
	running atomic.Int32
	most    atomic.Int32
}

func (c *copyEngine) Infer(_ context.Context, _ []float32, n int) ([][]yolo.Output, error) {
	c.calls.Add(1)
	if c.broken.Load() {
		return nil, errors.New("device lost")
	}
	now := c.running.Add(1)
	defer c.running.Add(-1)
	for old := c.most.Load(); now > old && !c.most.CompareAndSwap(old, now); old = c.most.Load() {
	}
	time.Sleep(5 * time.Millisecond)
	outs := make([][]yolo.Output, n)
	for i := range outs {
		outs[i] = []yolo.Output{{Shape: []int64{1}, Data: []float32{c.id}}}
	}
	return outs, nil
}

func (c *copyEngine) Close() error { return nil }

func pool(t *testing.T, engines ...*copyEngine) *Pool {
	t.Helper()
	ws := make([]Worker, len(engines))
	for i, e := range engines {
		ws[i] = Worker{Name: string(rune('a' + i)), Engine: e}
	}
	p, err := New(ws)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConcurrentBatchesSpreadOverTheWorkersOneBatchPerCopyAtATime(t *testing.T) {
	a, b := &copyEngine{id: 1}, &copyEngine{id: 2}
	p := pool(t, a, b)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.Infer(context.Background(), nil, 1); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if a.calls.Load() == 0 || b.calls.Load() == 0 || a.calls.Load()+b.calls.Load() != 20 {
		t.Fatalf("calls a=%d b=%d, want 20 spread over both", a.calls.Load(), b.calls.Load())
	}
	if a.most.Load() > 1 || b.most.Load() > 1 {
		t.Fatalf("a copy ran %d/%d batches at once, want 1", a.most.Load(), b.most.Load())
	}
}

func TestAFailingWorkerIsTakenOutAndItsBatchRunsOnAnother(t *testing.T) {
	a, b := &copyEngine{id: 1}, &copyEngine{id: 2}
	a.broken.Store(true)
	p := pool(t, a, b)
	for range 5 {
		outs, err := p.Infer(context.Background(), nil, 1)
		if err != nil || outs[0][0].Data[0] != 2 {
			t.Fatalf("got %v, %v; want worker b's answer", outs, err)
		}
	}
	if a.calls.Load() != 1 {
		t.Fatalf("the failed worker was called %d times, want once", a.calls.Load())
	}
	status := p.Status()
	if p.Live() != 1 || status[0].State != "failed" || status[0].Error != "device lost" || status[1].State != "up" {
		t.Fatalf("live %d, status %+v", p.Live(), status)
	}
}

func TestWhenEveryWorkerHasFailedInferSaysSo(t *testing.T) {
	a := &copyEngine{id: 1}
	a.broken.Store(true)
	p := pool(t, a)
	if _, err := p.Infer(context.Background(), nil, 1); !errors.Is(err, ErrNoWorkers) {
		t.Fatalf("want ErrNoWorkers, got %v", err)
	}
	if _, err := p.Infer(context.Background(), nil, 1); !errors.Is(err, ErrNoWorkers) {
		t.Fatalf("a later call: want ErrNoWorkers, got %v", err)
	}
}

func TestACancelledRequestDoesNotTakeAWorkerOut(t *testing.T) {
	a := &copyEngine{id: 1}
	p := pool(t, a)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	held := <-p.free // the only worker is busy: the call waits, then sees its context end
	if _, err := p.Infer(ctx, nil, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	p.free <- held
	if p.Live() != 1 {
		t.Fatalf("live %d, want 1", p.Live())
	}
}

func TestAPoolNeedsAWorker(t *testing.T) {
	if _, err := New(nil); err == nil {
		t.Fatal("want an error for no workers")
	}
}
