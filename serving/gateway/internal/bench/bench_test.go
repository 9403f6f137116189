package bench

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/config"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/yolo"
)

func TestLayoutsShareTheCoresOutBetweenCopiesForEveryBatchSize(t *testing.T) {
	got := Layouts(false, 4, []int{1, 8})
	l := func(workers, threads, batch int) config.Layout {
		return config.Layout{Workers: workers, Threads: threads, Batch: batch}
	}
	want := []config.Layout{l(1, 4, 1), l(1, 4, 8), l(2, 2, 1), l(2, 2, 8), l(4, 1, 1), l(4, 1, 8)}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("layout %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestLayoutsOnAGPUAreOneOrTwoCopiesWithoutThreads(t *testing.T) {
	for _, l := range Layouts(true, 16, []int{4}) {
		if l.Workers > 2 || l.Threads != 0 || l.Batch != 4 {
			t.Errorf("GPU layout %v", l)
		}
	}
	if n := len(Layouts(true, 16, []int{4})); n != 2 {
		t.Errorf("%d GPU layouts, want 2", n)
	}
}

func TestLayoutsOnOneCoreAreOneCopy(t *testing.T) {
	if got := Layouts(false, 1, []int{1}); len(got) != 1 || got[0] != (config.Layout{Workers: 1, Threads: 1, Batch: 1}) {
		t.Errorf("got %v", got)
	}
}

func TestFastestIsTheLayoutWhoseServerAnsweredMost(t *testing.T) {
	rs := []Result{
		{Layout: config.Layout{Workers: 1, Threads: 2, Batch: 8}, Engine: Figures{ImagesPerS: 90}, Server: Figures{ImagesPerS: 50}},
		{Layout: config.Layout{Workers: 2, Threads: 1, Batch: 1}, Engine: Figures{ImagesPerS: 60}, Server: Figures{ImagesPerS: 55}},
		{Layout: config.Layout{Workers: 2, Threads: 1, Batch: 8}, Engine: Figures{ImagesPerS: 70}, Server: Figures{ImagesPerS: 55}},
	}
	best, ok := Fastest(rs)
	if !ok || best.Layout != (config.Layout{Workers: 2, Threads: 1, Batch: 8}) {
		t.Errorf("fastest %v", best.Layout)
	}
	if _, ok := Fastest(nil); ok {
		t.Error("a fastest of nothing")
	}
}

func TestPercentileMatchesTheNearestRankOfASortedCopy(t *testing.T) {
	values := []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for q, want := range map[float64]float64{50: 5, 90: 9, 99: 10, 100: 10, 1: 1} {
		if got := Percentile(values, q); got != want {
			t.Errorf("p%v = %v, want %v", q, got, want)
		}
	}
	if values[0] != 5 {
		t.Error("the input was sorted in place")
	}
	if Percentile(nil, 99) != 0 {
		t.Error("p99 of nothing")
	}
}

// sleeper is an engine.Engine that takes a fixed time per batch, whatever its size.
type sleeper struct {
	per   time.Duration
	calls atomic.Int64
}

func (s *sleeper) Infer(ctx context.Context, _ []float32, n int) ([][]yolo.Output, error) {
	s.calls.Add(1)
	select {
	case <-time.After(s.per):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return make([][]yolo.Output, n), nil
}
func (s *sleeper) Close() error { return nil }

func TestEngineCountsEveryImageOfEveryBatchFromEveryCaller(t *testing.T) {
	e := &sleeper{per: 10 * time.Millisecond}
	f, err := Engine(context.Background(), e, 2, nil, 4, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// two callers, 4 images per 10 ms batch: at most 800 images a second, well above 100 on any machine
	if f.ImagesPerS > 800*1.05 || f.ImagesPerS < 100 {
		t.Errorf("%.0f images/s from 2 callers of 4-image 10 ms batches", f.ImagesPerS)
	}
	if f.P99MS < 10 {
		t.Errorf("p99 %.2f ms below the engine's 10 ms", f.P99MS)
	}
}

func TestServerCountsOnlyAnsweredImagesAndReportsFailures(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "image/png" || n.Add(1)%2 == 0 {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	images := []Image{{Name: "a.png", Data: []byte("x"), ContentType: "image/png"}}
	f, err := Server(context.Background(), srv.Client(), srv.URL, images, 2, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if f.Errors == 0 || f.ImagesPerS <= 0 {
		t.Errorf("figures %+v: every other call fails", f)
	}
}

func TestAMeasurementWithNoAnswerSaysWhy(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	images := []Image{{Name: "a.jpg", Data: []byte("x"), ContentType: "image/jpeg"}}
	_, err := Server(context.Background(), srv.Client(), srv.URL, images, 1, 100*time.Millisecond)
	if !errors.Is(err, ErrNothingAnswered) {
		t.Errorf("got %v", err)
	}
}
