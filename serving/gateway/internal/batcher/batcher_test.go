package batcher

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func double(_ context.Context, items []int) ([]int, error) {
	out := make([]int, len(items))
	for i, v := range items {
		out[i] = 2 * v
	}
	return out, nil
}

func TestEachItemGetsItsOwnResult(t *testing.T) {
	b := New(double, Options{MaxBatch: 4, MaxWait: 5 * time.Millisecond, MaxQueue: 64})
	defer b.Close()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			got, _, err := b.Submit(context.Background(), i)
			if err != nil || got != 2*i {
				t.Errorf("Submit(%d) = %d, %v", i, got, err)
			}
		}(i)
	}
	wg.Wait()
}

func TestConcurrentItemsShareBatchesUpToMaxBatch(t *testing.T) {
	var largest atomic.Int64
	slow := func(ctx context.Context, items []int) ([]int, error) {
		if int64(len(items)) > largest.Load() {
			largest.Store(int64(len(items)))
		}
		time.Sleep(5 * time.Millisecond)
		return double(ctx, items)
	}
	b := New(slow, Options{MaxBatch: 8, MaxWait: 20 * time.Millisecond, MaxQueue: 64})
	defer b.Close()
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) { defer wg.Done(); _, _, _ = b.Submit(context.Background(), i) }(i)
	}
	wg.Wait()
	if got := largest.Load(); got < 2 || got > 8 {
		t.Fatalf("largest batch = %d, want between 2 and 8", got)
	}
}

func TestLoneRequestOnIdleServerDoesNotWaitForABatch(t *testing.T) {
	b := New(double, Options{MaxBatch: 8, MaxWait: time.Second, MaxQueue: 8})
	defer b.Close()
	started := time.Now()
	if _, stats, err := b.Submit(context.Background(), 1); err != nil || stats.BatchSize != 1 {
		t.Fatalf("Submit: %v, batch %d", err, stats.BatchSize)
	}
	if waited := time.Since(started); waited > 500*time.Millisecond {
		t.Fatalf("a lone request waited %s for company", waited)
	}
}

func TestFullQueueIsRefusedAtOnce(t *testing.T) {
	release := make(chan struct{})
	blocked := func(ctx context.Context, items []int) ([]int, error) {
		<-release
		return double(ctx, items)
	}
	b := New(blocked, Options{MaxBatch: 1, MaxQueue: 2})
	defer b.Close()
	defer close(release)
	errs := make(chan error, 10)
	for i := 0; i < 10; i++ {
		go func(i int) {
			_, _, err := b.Submit(context.Background(), i)
			errs <- err
		}(i)
	}
	deadline := time.After(2 * time.Second)
	refused := 0
	for refused < 7 { // one running, two queued: the other seven are refused without waiting
		select {
		case err := <-errs:
			if !errors.Is(err, ErrOverloaded) {
				t.Fatalf("got %v before the queue drained, want ErrOverloaded", err)
			}
			refused++
		case <-deadline:
			t.Fatalf("only %d of 7 refused within 2 s", refused)
		}
	}
}

func TestCancelledRequestReturnsAtOnce(t *testing.T) {
	release := make(chan struct{})
	blocked := func(ctx context.Context, items []int) ([]int, error) { <-release; return double(ctx, items) }
	b := New(blocked, Options{MaxBatch: 1, MaxQueue: 4})
	defer b.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, _, err := b.Submit(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
}

func TestPanickingBatchBecomesAnErrorNotACrash(t *testing.T) {
	b := New(func(context.Context, []int) ([]int, error) { panic("boom") }, Options{MaxBatch: 2, MaxQueue: 2})
	defer b.Close()
	if _, _, err := b.Submit(context.Background(), 1); err == nil {
		t.Fatal("want an error from a panicking batch")
	}
}

func TestSubmitAfterCloseIsRefused(t *testing.T) {
	b := New(double, Options{MaxBatch: 2, MaxQueue: 2})
	b.Close()
	if _, _, err := b.Submit(context.Background(), 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}
